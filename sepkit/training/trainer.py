"""The generic N-source semi-supervised trainer.

It knows only the interfaces: any representation, separator, critics and divergence from the
registries, any number of sources, a critic for any subset of them. One separator update is, as in
the paper (Stoller, Ewert and Dixon, ICASSP 2018):

1. ``critic_iterations`` times: fresh unpaired mixtures, the separator's estimates (no gradient to
   the separator), fresh solo excerpts per critic; each critic steps on its divergence's loss.
2. A paired batch and a fresh unpaired mixture batch; the separator steps on
   ``supervised + alpha * sum of the divergences' separator losses + beta * additive penalty``.

Without critics the second step is supervised only; without paired data it is unsupervised only.

Nothing in an update waits for the device: a non-finite loss or gradient norm sets a flag on the
device that skips every optimiser step from there to the end of the update (:mod:`.optim`), and the
flag is read once, at the end; such an update counts as non-finite and changes nothing (critic
steps before the bad one are kept, as they were taken). With several processes (torchrun, see
:mod:`.distributed`) each draws its share of every batch and gradients are averaged before each step.
"""

from __future__ import annotations

import copy
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..build import build_critics, build_divergence, build_representation, build_separator
from ..component import trusted_values
from ..errors import SepkitError
from ..recipe.schema import Recipe
from .data import TrainingData, prepare_data, rank_seed
from ..device import resolve_device
from .distributed import Distributed, current as current_distributed
from .journal import Journal
from .losses import additive_penalty, supervised_loss
from .optim import adam, load_optimiser_state, step_unless
from .progress import TrainingProgress
from .selection import Selection, rule_file
from .stabilisers import AdversarialWeight, WeightAverage
from .state import load_state, save_state

MODEL_FILE = "model.safetensors"
#: The model at the end of the latest epoch, whatever its validation: for diagnostics and for
#: comparing model selection rules (the paper keeps the best by validation loss, MODEL_FILE).
LAST_MODEL_FILE = "model-last.safetensors"
STATE_FILE = "train-state/state.safetensors"


@dataclass
class TrainResult:
    variant: str
    output_dir: Path
    epochs: int
    updates: int
    best_epoch: int | None
    best_validation: float | None
    seconds: float
    stopped_by: str
    rollbacks: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class NonFiniteError(SepkitError):
    """Training diverged beyond recovery."""


class Trainer:
    """Trains one variant of a recipe into ``output_dir``."""

    def __init__(
        self,
        recipe: Recipe,
        output_dir: Path,
        *,
        variant: str = "default",
        device: str | None = None,
        progress: bool = True,
        data: TrainingData | None = None,
        cache_dir: Path | None = None,
        distributed: Distributed | None = None,
    ) -> None:
        self.recipe = recipe
        self.variant = variant
        self.output_dir = Path(output_dir)
        self.cfg = recipe.training
        self.dist = distributed if distributed is not None else current_distributed()
        self.device = self.dist.device(resolve_device(device or self.cfg.device))
        self.progress_enabled = progress and self.dist.is_main
        self.batch_size = self._local_batch_size()
        torch.manual_seed(self.cfg.seed)  # the same networks in every process
        self.representation = build_representation(recipe)
        self.separator = build_separator(recipe, self.representation).to(self.device)
        self.window = self.separator.window
        self.critics = {k: c.to(self.device) for k, c in build_critics(recipe, self.separator).items()}
        self.dist.broadcast_modules(self.separator, *self.critics.values())
        self.divergence = build_divergence(recipe) if self.critics else None
        betas = tuple(self.cfg.betas)
        critic_betas = tuple(self.cfg.critic_betas or self.cfg.betas)
        self.optimiser = adam(self.separator.parameters(), lr=self.cfg.learning_rate, betas=betas, device=self.device)
        self.critic_optimisers = {
            k: adam(c.parameters(), lr=self.cfg.critic_learning_rate, betas=critic_betas, device=self.device)
            for k, c in self.critics.items()
        }
        self.critic_iterations = self._critic_iterations()
        self.adversarial_weight = AdversarialWeight(self.cfg, self.device, combine=self._combine_norms)
        self.average = WeightAverage(self.separator, self.cfg.ema) if self.cfg.ema else None
        self.selection = Selection(self.cfg.select, self.cfg.select_subset)
        self.source_index = {s: i for i, s in enumerate(recipe.sources)}
        self.data = data if data is not None else self._prepare_data(cache_dir)
        #: The seed of this process's own random stream (penalty interpolates...): rank-derived.
        self.torch_seed = rank_seed(self.cfg.seed, self.dist.rank)
        if self.dist.rank > 0:
            torch.manual_seed(self.torch_seed)
        if self.data.paired is None and not self.critics:
            raise SepkitError("nothing to train on: no paired data and no critics")
        self._check_settings()
        self.autocast = self._autocast_context()
        self._forward = self.separator
        self._critic_forward = dict(self.critics)
        if self.cfg.compile:
            self._forward = torch.compile(self.separator)
            self._critic_forward = {k: torch.compile(c) for k, c in self.critics.items()}
        # counters
        self.epoch = 0
        self.update_in_epoch = 0
        self.updates = 0
        self.best_validation: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.nonfinite = 0
        self.rollbacks = 0
        self.history: list[dict[str, Any]] = []
        self._last_good: dict[str, Any] | None = None
        self._interrupted = False
        self._stop_agreed = False  # an interrupt, agreed by every process at the last update's end
        self.metrics = Journal(self.output_dir / "metrics.jsonl")
        self.validation_log = Journal(self.output_dir / "validation.jsonl")

    # ------------------------------------------------------------------ set-up helpers
    def _local_batch_size(self) -> int:
        """Examples per batch in this process: ``training.batch_size`` is the global batch."""
        world = self.dist.world_size
        if self.cfg.batch_size % world:
            raise SepkitError(
                f"training.batch_size = {self.cfg.batch_size} is the global batch and must divide evenly among "
                f"the {world} processes; use a multiple of {world}"
            )
        return self.cfg.batch_size // world

    def _prepare_data(self, cache_dir: Path | None) -> TrainingData:
        """This process's samplers (rank-derived seeds); validation tracks only in the first process.
        With several processes, the first on each node loads first, so that it alone decodes into the
        audio cache and the others read what it wrote."""
        def load() -> TrainingData:
            return prepare_data(
                self.recipe, self.representation, self.window, self.device, cache_dir=cache_dir,
                progress=self.progress_enabled, rank=self.dist.rank, validation=self.dist.is_main,
            )

        if not self.dist.enabled:
            return load()
        if self.dist.local_rank == 0:
            data = load()
            self.dist.barrier()
            return data
        self.dist.barrier()
        return load()

    def _combine_norms(self, norms: torch.Tensor) -> torch.Tensor:
        """The balanced weight's output-gradient norms of the global batch from each process's: the
        global loss is the mean of the processes' losses, so its gradient is each process's / world."""
        if not self.dist.enabled:
            return norms
        return self.dist.sum_(norms.square()).sqrt() / self.dist.world_size

    def _critic_iterations(self) -> int:
        """``training.critic_iterations``, or the divergence's own default for "auto"."""
        iterations = self.cfg.critic_iterations
        if iterations != "auto":
            return int(iterations)
        return self.divergence.default_critic_iterations if self.divergence is not None else 0

    def _check_settings(self) -> None:
        """Settings that only make sense with the data this recipe actually loaded."""
        cfg = self.cfg
        if cfg.adversarial_weighting == "balanced" and self.critics and self.data.paired is None:
            raise SepkitError(
                'training.adversarial_weighting = "balanced" balances the adversarial term against the '
                'supervised one and needs paired data; use "fixed" for unsupervised-only training'
            )
        subsets = sorted({t.subset for t in self.data.validation})
        if cfg.select_subset is not None and self.dist.is_main and cfg.select_subset not in subsets:
            raise SepkitError(
                f"training.select_subset = {cfg.select_subset!r} is not a validation subset; "
                f"the validation tracks' subsets are {subsets or 'none (no data.validation)'}"
            )

    @property
    def inference_network(self) -> torch.nn.Module:
        """What is validated and saved: the weight average when ``training.ema`` is set."""
        return self.average.average if self.average is not None else self.separator

    def _autocast_context(self) -> Callable[[], Any]:
        if self.cfg.precision == "bf16":
            if self.device.type != "cuda":
                raise SepkitError("training.precision = \"bf16\" needs a CUDA device")
            return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
        import contextlib

        return contextlib.nullcontext

    def _crop(self, features: torch.Tensor) -> torch.Tensor:
        """The output region (``window.output_frames`` central frames) of input-sized features."""
        w = self.window
        return features[..., w.context_before : w.context_before + w.output_frames]

    # ------------------------------------------------------------------ one update
    def _step(
        self, optimiser: torch.optim.Optimizer, parameters: list[torch.nn.Parameter], loss: torch.Tensor,
        max_norm: float | None, ok: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Backward, average the gradients over processes, clip, step unless this or an earlier step
        of the update was not finite. Returns the gradient norm (before clipping) and the new flag."""
        loss.backward()
        bad = self.dist.average_gradients(parameters, ~torch.isfinite(loss))
        norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm or float("inf"))
        ok = ok & ~bad & torch.isfinite(norm)
        step_unless(optimiser, ~ok)
        return norm, ok

    def _critic_steps(self, log: dict[str, Any], ok: torch.Tensor | None = None) -> torch.Tensor:
        """``critic_iterations`` steps of every critic; returns the update's finite flag (on the device)."""
        assert self.divergence is not None and self.data.mixtures is not None
        batch = self.batch_size
        ok = torch.ones((), dtype=torch.bool, device=self.device) if ok is None else ok
        for _ in range(self.critic_iterations):
            mixtures = self.data.mixtures.sample(batch)[:, 0]
            with torch.no_grad(), self.autocast():
                estimates = self._forward(mixtures).float()
            for source, critic in self.critics.items():
                real = self._crop(self.data.solo[source].sample(batch)[:, 0])
                fake = estimates[:, self.source_index[source]]
                optimiser = self.critic_optimisers[source]
                optimiser.zero_grad(set_to_none=True)
                with self.autocast():
                    result = self.divergence.critic_loss(self._critic_forward[source], real, fake)
                loss = result.loss.float()
                norm, ok = self._step(optimiser, list(critic.parameters()), loss, self.cfg.critic_max_grad_norm, ok)
                log[f"critic_loss.{source}"] = log.get(f"critic_loss.{source}", 0.0) + loss.detach()
                log[f"divergence.{source}"] = log.get(f"divergence.{source}", 0.0) + result.estimate.float()
                log[f"grad_norm.critic.{source}"] = norm.detach()
        n = max(self.critic_iterations, 1)
        for source in self.critics:
            for key in (f"critic_loss.{source}", f"divergence.{source}"):
                if key in log:
                    log[key] = log[key] / n
        return ok

    def _separator_step(self, log: dict[str, Any], ok: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        total = torch.zeros((), device=self.device)
        supervised: tuple[torch.Tensor, torch.Tensor] | None = None
        self.optimiser.zero_grad(set_to_none=True)
        with self.autocast():
            if self.data.paired is not None:
                batch = self.data.paired.sample(self.batch_size)
                estimates = self._forward(batch[:, 0]).float()
                sup = supervised_loss(estimates, self._crop(batch[:, 1:]))
                total = total + sup
                supervised = (sup, estimates)
                log["loss.supervised"] = sup.detach()
            if self.critics:
                assert self.divergence is not None and self.data.mixtures is not None
                mixtures = self.data.mixtures.sample(self.batch_size)[:, 0]
                estimates = self._forward(mixtures).float()
                adversarial = torch.zeros((), device=self.device)
                for source in self.critics:
                    term = self.divergence.separator_loss(self._critic_forward[source], estimates[:, self.source_index[source]])
                    log[f"loss.adversarial.{source}"] = term.detach()
                    adversarial = adversarial + term
                penalty = additive_penalty(self.representation, self._crop(mixtures), estimates)
                weight = self.adversarial_weight(self.updates, supervised, (adversarial, estimates))
                total = total + weight * adversarial + cfg.beta * penalty
                log["loss.adversarial"] = adversarial.detach()
                log["loss.additive"] = penalty.detach()
                log["adversarial_weight"] = weight.detach()
        norm, ok = self._step(self.optimiser, list(self.separator.parameters()), total, cfg.max_grad_norm, ok)
        log["loss.total"] = total.detach()
        log["grad_norm.separator"] = norm.detach()
        return ok

    def _examples_per_update(self) -> int:
        b = self.cfg.batch_size
        n = (b if self.data.paired is not None else 0)
        if self.critics:
            n += b + self.critic_iterations * b * (1 + len(self.critics))
        return n

    def train_update(self) -> dict[str, Any] | None:
        """One separator update (with its critic iterations); ``None`` if a loss or gradient was not
        finite (in any process), in which case no step from the first bad one on was taken. The one
        host synchronisation of an update is here, at its end (with several processes it also agrees
        on a Ctrl-C)."""
        self.separator.train()
        for critic in self.critics.values():
            critic.train()
        log: dict[str, Any] = {}
        weight_state = self.adversarial_weight.state_dict()
        ok = torch.ones((), dtype=torch.bool, device=self.device)
        with trusted_values():  # the flag catches non-finite values; no component waits to check them
            if self.critics and self.critic_iterations > 0:
                ok = self._critic_steps(log, ok)
            for critic in self.critics.values():
                critic.requires_grad_(False)
            try:
                ok = self._separator_step(log, ok)
            finally:
                for critic in self.critics.values():
                    critic.requires_grad_(True)
        bad, self._stop_agreed = self.dist.any(~ok, self._interrupted) if self.dist.enabled else (not bool(ok), False)
        if bad:
            for optimiser in (self.optimiser, *self.critic_optimisers.values()):
                optimiser.zero_grad(set_to_none=True)
            self.adversarial_weight.load_state_dict(weight_state)
            return None
        if self.average is not None:
            self.average.update(self.separator, self.updates)
        return log

    # ------------------------------------------------------------------ validation
    @torch.inference_mode()
    def validate(self) -> dict[str, Any]:
        """Supervised loss over non-overlapping windows of every validation track, and a cheap SDR,
        over all tracks and per subset (``training.select_subset`` selects on one of them)."""
        from ..evaluation.bss_eval import simple_sdr
        from ..separation.windows import separate_features

        network = self.inference_network
        network.eval()
        sources = len(self.recipe.sources)
        totals: dict[str | None, dict[str, Any]] = {}

        def block(subset: str | None) -> dict[str, Any]:
            return totals.setdefault(subset, {
                "loss": 0.0, "frames": 0, "sdr_sum": torch.zeros(sources, dtype=torch.float64),
                "sdr_count": torch.zeros(sources, dtype=torch.float64)})

        for track in self.data.validation:
            estimates = separate_features(
                network, track.mixture, overlap=0.0, batch_size=self.recipe.evaluation.batch_size
            )
            frames = track.mixture.shape[-1]
            loss = float(supervised_loss(estimates[None], track.targets[None])) * frames
            waveforms = self.representation.decode(estimates[None], track.context, track.length)[0]
            sdr = simple_sdr(track.references.double(), waveforms.double(), dims=(-2, -1)).cpu().double()
            finite = torch.isfinite(sdr)
            for b in (block(None), block(track.subset)):
                b["loss"] += loss
                b["frames"] += frames
                b["sdr_sum"] += torch.where(finite, sdr, torch.zeros_like(sdr))
                b["sdr_count"] += finite.double()

        def summary(b: dict[str, Any]) -> dict[str, Any]:
            sdr = (b["sdr_sum"] / b["sdr_count"].clamp(min=1)).tolist()
            return {"loss": b["loss"] / max(b["frames"], 1), "sdr": dict(zip(self.recipe.sources, sdr))}

        result = summary(block(None))
        result["tracks"] = len(self.data.validation)
        result["subsets"] = {k: summary(v) for k, v in totals.items() if k is not None}
        return result

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "separator": self.separator.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "critics": {k: c.state_dict() for k, c in self.critics.items()},
            "critic_optimisers": {k: o.state_dict() for k, o in self.critic_optimisers.items()},
            "samplers": {k: s.state_dict() for k, s in self.data.samplers().items()},
            "rng": {"cpu": torch.get_rng_state()},
            "counters": {
                "epoch": self.epoch, "update_in_epoch": self.update_in_epoch, "updates": self.updates,
                "best_validation": self.best_validation, "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs, "rollbacks": self.rollbacks,
            },
            "history": self.history,
            "selection": self.selection.state_dict(),
            "adversarial_weight": self.adversarial_weight.state_dict(),
        }
        if self.average is not None:
            state["average"] = self.average.state_dict()
        state["rng"] = self._rng_state()
        state["distributed"] = {"world_size": self.dist.world_size, "ranks": self._rank_states()}
        return state

    def _rng_state(self) -> dict[str, torch.Tensor]:
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return rng

    def _rank_states(self) -> list[dict[str, Any]]:
        """Every process's own random state and seeds, by rank (gathered: a collective)."""
        local = {f"rng.{k}": v for k, v in self._rng_state().items()}
        local.update({f"sampler.{k}": s.state_dict()["generator"] for k, s in self.data.samplers().items()})
        local.update({f"seed.{k}": torch.tensor([v], dtype=torch.int64) for k, v in self.data.seeds.items()})
        local["seed.torch"] = torch.tensor([self.torch_seed], dtype=torch.int64)
        ranks = []
        for entry in self.dist.gather_bytes(local):
            ranks.append({
                "rng": {k[4:]: v for k, v in entry.items() if k.startswith("rng.")},
                "samplers": {k[8:]: {"generator": v} for k, v in entry.items() if k.startswith("sampler.")},
                "seeds": {k[5:]: int(v[0]) for k, v in entry.items() if k.startswith("seed.")},
            })
        return ranks

    def load(self, state: dict[str, Any]) -> None:
        written = int(state.get("distributed", {}).get("world_size", 1))
        if written != self.dist.world_size:
            how = "`sepkit run` (one process)" if written == 1 else f"{written} processes in all (torchrun --nproc_per_node={written} on one node)"
            raise SepkitError(
                f"the training state was written by {written} process(es) and this run has {self.dist.world_size}: "
                f"every process's excerpt stream is part of the state, so resume with {how}"
            )
        own = state["distributed"]["ranks"][self.dist.rank] if "distributed" in state else state
        try:
            self.separator.load_state_dict(state["separator"])
            load_optimiser_state(self.optimiser, state["optimiser"])
            if set(state["critics"]) != set(self.critics):
                raise SepkitError(
                    f"the training state has critics {sorted(state['critics'])}, the recipe {sorted(self.critics)}"
                )
            for k, critic in self.critics.items():
                critic.load_state_dict(state["critics"][k])
                load_optimiser_state(self.critic_optimisers[k], state["critic_optimisers"][k])
            for k, sampler in self.data.samplers().items():
                sampler.load_state_dict(own["samplers"][k])
            self._load_stabilisers(state)
            torch.set_rng_state(own["rng"]["cpu"])
            if "cuda" in own["rng"] and self.device.type == "cuda":
                torch.cuda.set_rng_state(own["rng"]["cuda"], self.device)
            c = state["counters"]
        except SepkitError:
            raise
        except (KeyError, RuntimeError, ValueError) as exc:
            raise SepkitError(f"training state does not fit this recipe: {type(exc).__name__}: {exc}") from None
        self.epoch, self.update_in_epoch, self.updates = c["epoch"], c["update_in_epoch"], c["updates"]
        self.best_validation, self.best_epoch = c["best_validation"], c["best_epoch"]
        self.bad_epochs, self.rollbacks = c["bad_epochs"], c["rollbacks"]
        self.history = list(state.get("history", []))
        if "selection" in state:
            self.selection.load_state_dict(state["selection"])
        elif self.best_validation is not None:  # a state of an older sepkit: selection by the loss
            self.selection.best = {"validation-loss": (self.best_validation, self.best_epoch)}
            self.selection.bad_epochs = self.bad_epochs

    def _load_stabilisers(self, state: dict[str, Any]) -> None:
        """The weight average and the balanced weight's norms (absent from states of older runs)."""
        if "adversarial_weight" in state:
            self.adversarial_weight.load_state_dict(state["adversarial_weight"])
        if self.average is not None:
            if "average" not in state:
                raise SepkitError("the training state has no weight average but the recipe sets training.ema")
            self.average.load_state_dict(state["average"])

    def save_state(self) -> None:
        """Write the training state (the first process; every process takes part in gathering it)."""
        state = self.state()
        if self.dist.is_main:
            save_state(self.output_dir / STATE_FILE, state)

    def resume(self) -> None:
        self.load(load_state(self.output_dir / STATE_FILE))
        if self.dist.is_main:
            self.metrics.truncate_after(self.updates)
            self.validation_log.truncate_after(self.updates)

    def _log(self, journal: Journal, record: dict[str, Any]) -> None:
        if self.dist.is_main:
            journal.write(record)

    def _remember_good(self) -> None:
        self._last_good = copy.deepcopy({
            "separator": self.separator.state_dict(), "optimiser": self.optimiser.state_dict(),
            "critics": {k: c.state_dict() for k, c in self.critics.items()},
            "critic_optimisers": {k: o.state_dict() for k, o in self.critic_optimisers.items()},
            "adversarial_weight": self.adversarial_weight.state_dict(),
            **({"average": self.average.state_dict()} if self.average is not None else {}),
        })

    def _roll_back(self, progress: TrainingProgress) -> None:
        if self._last_good is None:
            raise NonFiniteError("training diverged (non-finite losses) before any good state was kept")
        good = self._last_good
        self.separator.load_state_dict(good["separator"])
        load_optimiser_state(self.optimiser, good["optimiser"])
        for k in self.critics:
            self.critics[k].load_state_dict(good["critics"][k])
            load_optimiser_state(self.critic_optimisers[k], good["critic_optimisers"][k])
        self._load_stabilisers(good)
        self.rollbacks += 1
        self.nonfinite = 0
        progress.message(
            f"[{self.variant}] {self.cfg.max_nonfinite} non-finite steps: rolled back to the last good "
            f"state (rollback {self.rollbacks}); sampling continues with fresh batches"
        )
        self._log(self.metrics, {"step": self.updates, "epoch": self.epoch, "event": "rollback", "rollbacks": self.rollbacks})

    # ------------------------------------------------------------------ the loop
    def _save_model(self, validation: dict[str, Any] | None, file: str = MODEL_FILE) -> None:
        from ..model import save_model

        save_model(
            self.output_dir / file, recipe=self.recipe, representation=self.representation,
            separator=self.inference_network,
            metadata={"variant": self.variant, "epoch": self.epoch, "updates": self.updates,
                      "validation": validation or {}},
        )

    def _end_epoch(self, progress: TrainingProgress, seconds: float) -> bool:
        """Validate, keep each selection rule's best model, decide early stopping (the first process;
        the others learn its decision). Returns True to stop."""
        stop = self._validate_and_save(progress, seconds) if self.dist.is_main else False
        if self.dist.enabled:
            flag, self.bad_epochs = self.dist.broadcast_values([float(stop), float(self.bad_epochs)])
            stop, self.bad_epochs = bool(flag), int(self.bad_epochs)
        return stop

    def _validate_and_save(self, progress: TrainingProgress, seconds: float) -> bool:
        record: dict[str, Any] = {"epoch": self.epoch, "step": self.updates, "seconds": seconds}
        stop = False
        if self.data.validation:
            validation_started = time.perf_counter()
            validation = self.validate()
            record.update({"loss": validation["loss"], "sdr": validation["sdr"], "subsets": validation["subsets"],
                           "validation_seconds": time.perf_counter() - validation_started})
            improved_rules = self.selection.observe(self.epoch, validation)
            for rule in improved_rules:
                self._save_model(validation, rule_file(rule))
            selected = self.cfg.select in improved_rules
            if selected:
                self._save_model(validation)
            self.best_validation, self.best_epoch = self.selection.selected() or (None, None)
            self.bad_epochs = self.selection.bad_epochs
            improved = self.selection.stopping_rule in improved_rules
            record.update({"best": improved, "bad_epochs": self.bad_epochs, "best_by": improved_rules})
            if self.cfg.early_stopping and self.bad_epochs > self.cfg.patience:
                stop = True
            progress.message(self._validation_line(validation, improved))
        else:
            self.best_epoch = self.epoch
            self._save_model(None)
            self._save_model(None, LAST_MODEL_FILE)
        self.validation_log.write(record)
        self.history.append(record)
        return stop

    def _validation_line(self, validation: dict[str, Any], improved: bool) -> str:
        rule, subset = self.selection.stopping_rule, self.cfg.select_subset
        what = rule if subset is None else f"{rule} on {subset}"
        best = "(best)" if improved else f"(best {self.best_validation:.5g} at epoch {self.best_epoch})"
        sdr = "  ".join(f"{k} {v:.2f} dB" for k, v in validation["sdr"].items())
        return (f"[{self.variant}] epoch {self.epoch}: validation loss {validation['loss']:.5f}  simple SDR "
                f"{sdr}  {what} {best}")

    def _request_stop(self, *_: Any) -> None:
        """First Ctrl-C: finish the current update, save the state, stop. Second: stop at once
        (the state of the last epoch end stays on disk)."""
        if self._interrupted:
            raise KeyboardInterrupt
        self._interrupted = True
        if not self.dist.is_main:
            return
        print("\nstopping after this update to save the training state (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def fit(self, *, resume: bool = False, stop_after_updates: int | None = None) -> TrainResult:
        """Train to the early-stopping end (or ``max_epochs``). ``stop_after_updates`` simulates a kill
        (state saved as on Ctrl-C), for tests. With several processes every one of them calls this;
        they stop together (a Ctrl-C or SIGTERM is agreed on at the end of an update)."""
        if self.dist.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self.resume()
        started = time.perf_counter()
        cfg = self.cfg
        # torchrun passes a Ctrl-C on as SIGINT, a scheduler's preemption (SLURM) comes as SIGTERM
        handled = (signal.SIGINT, signal.SIGTERM) if self.dist.enabled else (signal.SIGINT,)
        previous: dict[int, Any] | None = {sig: signal.getsignal(sig) for sig in handled}
        try:
            for sig in handled:
                signal.signal(sig, self._request_stop)
        except ValueError:  # not the main thread
            previous = None
        stopped_by = "max_epochs"
        try:
            with TrainingProgress(self.variant, cfg.updates_per_epoch, enabled=self.progress_enabled) as progress:
                if self._finished():
                    stopped_by = "already finished"
                while not self._finished():
                    if self.update_in_epoch == 0 or self._last_good is None:
                        self._remember_good()
                    progress.start_epoch(self.epoch + 1, self.update_in_epoch)
                    epoch_started = time.perf_counter()
                    window_started, window_updates = time.perf_counter(), 0
                    while self.update_in_epoch < cfg.updates_per_epoch:
                        interrupted = self._stop_agreed if self.dist.enabled else self._interrupted
                        if interrupted or (stop_after_updates is not None and self.updates >= stop_after_updates):
                            self.save_state()
                            stopped_by = "interrupted"
                            raise _Stop
                        log = self.train_update()
                        if log is None:
                            self.nonfinite += 1
                            self._log(self.metrics, {"step": self.updates, "epoch": self.epoch + 1, "event": "nonfinite", "count": self.nonfinite})
                            if self.nonfinite >= cfg.max_nonfinite:
                                if self.rollbacks >= cfg.max_nonfinite:
                                    raise NonFiniteError(
                                        f"training diverged: {self.rollbacks} rollbacks did not help; "
                                        "lower the learning rates or alpha (see docs/training.md)"
                                    )
                                self._roll_back(progress)
                            continue
                        self.nonfinite = 0
                        self.updates += 1
                        self.update_in_epoch += 1
                        window_updates += 1
                        if self.updates % cfg.log_every == 0 or self.update_in_epoch == cfg.updates_per_epoch:
                            values = self.dist.mean(log)  # over the processes: the global batch's
                            elapsed = time.perf_counter() - window_started
                            record = {
                                "step": self.updates, "epoch": self.epoch + 1,
                                "examples_per_second": window_updates * self._examples_per_update() / max(elapsed, 1e-9),
                                "updates_per_second": window_updates / max(elapsed, 1e-9),
                                "learning_rate": self.optimiser.param_groups[0]["lr"],
                                **values,
                            }
                            self._log(self.metrics, record)
                            window_started, window_updates = time.perf_counter(), 0
                            shown = {k.replace("loss.", ""): v for k, v in values.items() if k.startswith("loss.") and k.count(".") == 1}
                            progress.update(self.update_in_epoch, shown, self.updates * self.critic_iterations * bool(self.critics))
                    self.epoch += 1
                    self.update_in_epoch = 0
                    stop = self._end_epoch(progress, time.perf_counter() - epoch_started)
                    self.save_state()
                    if stop:
                        stopped_by = "early stopping"
                        break
        except _Stop:
            pass
        finally:
            for sig, handler in (previous or {}).items():
                signal.signal(sig, handler)
        if stopped_by == "max_epochs" and self._stopped_early():
            stopped_by = "early stopping"
        if self.dist.is_main:
            self._plot()
        return TrainResult(
            variant=self.variant, output_dir=self.output_dir, epochs=self.epoch, updates=self.updates,
            best_epoch=self.best_epoch, best_validation=self.best_validation,
            seconds=time.perf_counter() - started, stopped_by=stopped_by, rollbacks=self.rollbacks,
            history=self.history,
        )

    def _stopped_early(self) -> bool:
        return bool(self.cfg.early_stopping and self.recipe.data.validation and self.bad_epochs > self.cfg.patience)

    def _finished(self) -> bool:
        return self.epoch >= self.cfg.max_epochs or self._stopped_early()

    def _plot(self) -> None:
        from .plots import plot_training_curves

        try:
            plot_training_curves(self.metrics.read(), self.validation_log.read(), self.output_dir / "training-curves.png", title=self.variant)
        except Exception as exc:  # a plot must never lose a finished run
            print(f"warning: could not plot the training curves: {exc}")


class _Stop(Exception):
    pass

