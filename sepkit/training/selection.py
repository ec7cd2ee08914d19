"""Model selection and early stopping: which epoch's separator is kept, by which rule.

Every rule's best model is kept on disk (``model-by-<rule>.safetensors``) whatever rule the recipe
selects, so that the cost of a selection rule can be measured on the test set afterwards
(``sepkit report`` shows them side by side). The recipe's rule also drives early stopping (the
validation loss for ``last``, which has no notion of "better").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Rules with a score; "last" simply takes the latest epoch.
SCORED_RULES = ("validation-loss", "validation-sdr")
RULES = (*SCORED_RULES, "last")


def rule_file(rule: str) -> str:
    """The model file of a rule (``last``: ``model-last.safetensors``, as runs have always kept it)."""
    return "model-last.safetensors" if rule == "last" else f"model-by-{rule}.safetensors"


def subset_scores(validation: dict[str, Any], subsets: tuple[str, ...] | None) -> dict[str, float]:
    """The selection scores of one validation result over the tracks of ``subsets`` pooled
    (None: every track): the frame-weighted loss, and the mean over sources of each source's mean
    finite SDR."""
    if subsets is None:
        blocks = [validation]
    else:
        blocks = [validation["subsets"][name] for name in subsets]
    if len(blocks) == 1:  # also records written before summaries carried their weights
        sdr = list(blocks[0]["sdr"].values())
        return {"validation-loss": blocks[0]["loss"], "validation-sdr": sum(sdr) / max(len(sdr), 1)}
    frames = sum(b["frames"] for b in blocks)
    loss = sum(b["loss"] * b["frames"] for b in blocks) / max(frames, 1)
    per_source = []
    for source in blocks[0]["sdr"]:
        count = sum(b["sdr_tracks"][source] for b in blocks)
        per_source.append(sum(b["sdr"][source] * b["sdr_tracks"][source] for b in blocks) / max(count, 1))
    return {"validation-loss": loss, "validation-sdr": sum(per_source) / max(len(per_source), 1)}


def better(rule: str, new: float, old: float | None) -> bool:
    if old is None or old != old:  # NaN never stays best
        return True
    return new < old if rule == "validation-loss" else new > old


@dataclass
class Selection:
    """Best score and epoch per rule, and the early-stopping count of the recipe's rule."""

    rule: str
    subsets: tuple[str, ...] | None = None
    best: dict[str, tuple[float, int]] = field(default_factory=dict)
    bad_epochs: int = 0

    @property
    def stopping_rule(self) -> str:
        return "validation-loss" if self.rule == "last" else self.rule

    def observe(self, epoch: int, validation: dict[str, Any]) -> list[str]:
        """Record one epoch's validation; returns the rules whose best this epoch is."""
        scores = subset_scores(validation, self.subsets)
        improved = []
        for rule in SCORED_RULES:
            previous = self.best.get(rule)
            if better(rule, scores[rule], None if previous is None else previous[0]):
                self.best[rule] = (scores[rule], epoch)
                improved.append(rule)
        self.bad_epochs = 0 if self.stopping_rule in improved else self.bad_epochs + 1
        return improved + ["last"]

    def selected(self) -> tuple[float, int] | None:
        return self.best.get(self.stopping_rule)

    def state_dict(self) -> dict[str, Any]:
        return {"best": {k: list(v) for k, v in self.best.items()}, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = {k: (float(v[0]), int(v[1])) for k, v in state["best"].items()}
        self.bad_epochs = int(state["bad_epochs"])
