"""The generic N-source semi-supervised trainer.

It knows only the interfaces: any representation, separator, critics and divergence from the
registries, any number of sources, a critic for any subset of them. One separator update is, as in
the paper (Stoller, Ewert and Dixon, ICASSP 2018):

1. ``critic_iterations`` times: fresh unpaired mixtures, the separator's estimates (no gradient to
   the separator), fresh solo excerpts per critic; each critic steps on its divergence's loss.
2. A paired batch and a fresh unpaired mixture batch; the separator steps on
   ``supervised + alpha * sum of the divergences' separator losses + beta * additive penalty``.

Without critics the second step is supervised only; without paired data it is unsupervised only.
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
from ..errors import SepkitError
from ..recipe.schema import Recipe
from .data import TrainingData, prepare_data
from ..device import resolve_device
from .journal import Journal
from .losses import additive_penalty, supervised_loss
from .progress import TrainingProgress
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
    ) -> None:
        self.recipe = recipe
        self.variant = variant
        self.output_dir = Path(output_dir)
        self.cfg = recipe.training
        self.device = resolve_device(device or self.cfg.device)
        self.progress_enabled = progress
        torch.manual_seed(self.cfg.seed)
        self.representation = build_representation(recipe)
        self.separator = build_separator(recipe, self.representation).to(self.device)
        self.window = self.separator.window
        self.critics = {k: c.to(self.device) for k, c in build_critics(recipe, self.separator).items()}
        self.divergence = build_divergence(recipe) if self.critics else None
        betas = tuple(self.cfg.betas)
        self.optimiser = torch.optim.Adam(self.separator.parameters(), lr=self.cfg.learning_rate, betas=betas)
        self.critic_optimisers = {
            k: torch.optim.Adam(c.parameters(), lr=self.cfg.critic_learning_rate, betas=betas)
            for k, c in self.critics.items()
        }
        self.source_index = {s: i for i, s in enumerate(recipe.sources)}
        self.data = data if data is not None else prepare_data(
            recipe, self.representation, self.window, self.device, cache_dir=cache_dir, progress=progress
        )
        if self.data.paired is None and not self.critics:
            raise SepkitError("nothing to train on: no paired data and no critics")
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
        self.metrics = Journal(self.output_dir / "metrics.jsonl")
        self.validation_log = Journal(self.output_dir / "validation.jsonl")

    # ------------------------------------------------------------------ set-up helpers
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
    def _critic_steps(self, log: dict[str, float]) -> bool:
        assert self.divergence is not None and self.data.mixtures is not None
        batch = self.cfg.batch_size
        for _ in range(self.cfg.critic_iterations):
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
                if not torch.isfinite(loss):
                    return False
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(critic.parameters(), float("inf"))
                if not torch.isfinite(norm):
                    optimiser.zero_grad(set_to_none=True)
                    return False
                optimiser.step()
                log[f"critic_loss.{source}"] = log.get(f"critic_loss.{source}", 0.0) + loss.detach()
                log[f"divergence.{source}"] = log.get(f"divergence.{source}", 0.0) + result.estimate.float()
                log[f"grad_norm.critic.{source}"] = norm.detach()
        n = max(self.cfg.critic_iterations, 1)
        for source in self.critics:
            for key in (f"critic_loss.{source}", f"divergence.{source}"):
                if key in log:
                    log[key] = log[key] / n
        return True

    def _separator_step(self, log: dict[str, float]) -> bool:
        cfg = self.cfg
        total = torch.zeros((), device=self.device)
        self.optimiser.zero_grad(set_to_none=True)
        with self.autocast():
            if self.data.paired is not None:
                batch = self.data.paired.sample(cfg.batch_size)
                estimates = self._forward(batch[:, 0]).float()
                sup = supervised_loss(estimates, self._crop(batch[:, 1:]))
                total = total + sup
                log["loss.supervised"] = sup.detach()
            if self.critics:
                assert self.divergence is not None and self.data.mixtures is not None
                mixtures = self.data.mixtures.sample(cfg.batch_size)[:, 0]
                estimates = self._forward(mixtures).float()
                adversarial = torch.zeros((), device=self.device)
                for source in self.critics:
                    term = self.divergence.separator_loss(self._critic_forward[source], estimates[:, self.source_index[source]])
                    log[f"loss.adversarial.{source}"] = term.detach()
                    adversarial = adversarial + term
                penalty = additive_penalty(self.representation, self._crop(mixtures), estimates)
                total = total + cfg.alpha * adversarial + cfg.beta * penalty
                log["loss.adversarial"] = adversarial.detach()
                log["loss.additive"] = penalty.detach()
        if not torch.isfinite(total):
            return False
        total.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.separator.parameters(), float("inf"))
        if not torch.isfinite(norm):
            self.optimiser.zero_grad(set_to_none=True)
            return False
        self.optimiser.step()
        log["loss.total"] = total.detach()
        log["grad_norm.separator"] = norm.detach()
        return True

    def _examples_per_update(self) -> int:
        b = self.cfg.batch_size
        n = (b if self.data.paired is not None else 0)
        if self.critics:
            n += b + self.cfg.critic_iterations * b * (1 + len(self.critics))
        return n

    def train_update(self) -> dict[str, float] | None:
        """One separator update (with its critic iterations); ``None`` if a loss was not finite."""
        self.separator.train()
        for critic in self.critics.values():
            critic.train()
        log: dict[str, Any] = {}
        ok = True
        if self.critics and self.cfg.critic_iterations > 0:
            ok = self._critic_steps(log)
        if ok:
            for critic in self.critics.values():
                critic.requires_grad_(False)
            try:
                ok = self._separator_step(log)
            finally:
                for critic in self.critics.values():
                    critic.requires_grad_(True)
        if not ok:
            for optimiser in (self.optimiser, *self.critic_optimisers.values()):
                optimiser.zero_grad(set_to_none=True)
            return None
        return log

    # ------------------------------------------------------------------ validation
    @torch.inference_mode()
    def validate(self) -> dict[str, Any]:
        """Supervised loss over non-overlapping windows of every validation track, and a cheap SDR."""
        from ..evaluation.bss_eval import simple_sdr
        from ..separation.windows import separate_features

        self.separator.eval()
        total_loss, total_frames = 0.0, 0
        sdr_sum = torch.zeros(len(self.recipe.sources), dtype=torch.float64)
        sdr_count = torch.zeros(len(self.recipe.sources), dtype=torch.float64)
        for track in self.data.validation:
            estimates = separate_features(
                self.separator, track.mixture, overlap=0.0, batch_size=self.recipe.evaluation.batch_size
            )
            frames = track.mixture.shape[-1]
            total_loss += float(supervised_loss(estimates[None], track.targets[None])) * frames
            total_frames += frames
            waveforms = self.representation.decode(estimates[None], track.context, track.length)[0]
            sdr = simple_sdr(track.references.double(), waveforms.double(), dims=(-2, -1))
            finite = torch.isfinite(sdr)
            sdr_sum += torch.where(finite, sdr, torch.zeros_like(sdr)).cpu().double()
            sdr_count += finite.cpu().double()
        loss = total_loss / max(total_frames, 1)
        sdr_mean = (sdr_sum / sdr_count.clamp(min=1)).tolist()
        return {"loss": loss, "sdr": dict(zip(self.recipe.sources, sdr_mean)), "tracks": len(self.data.validation)}

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
        }
        if self.device.type == "cuda":
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load(self, state: dict[str, Any]) -> None:
        try:
            self.separator.load_state_dict(state["separator"])
            self.optimiser.load_state_dict(state["optimiser"])
            if set(state["critics"]) != set(self.critics):
                raise SepkitError(
                    f"the training state has critics {sorted(state['critics'])}, the recipe {sorted(self.critics)}"
                )
            for k, critic in self.critics.items():
                critic.load_state_dict(state["critics"][k])
                self.critic_optimisers[k].load_state_dict(state["critic_optimisers"][k])
            for k, sampler in self.data.samplers().items():
                sampler.load_state_dict(state["samplers"][k])
            torch.set_rng_state(state["rng"]["cpu"])
            if "cuda" in state["rng"] and self.device.type == "cuda":
                torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
            c = state["counters"]
        except SepkitError:
            raise
        except (KeyError, RuntimeError, ValueError) as exc:
            raise SepkitError(f"training state does not fit this recipe: {type(exc).__name__}: {exc}") from None
        self.epoch, self.update_in_epoch, self.updates = c["epoch"], c["update_in_epoch"], c["updates"]
        self.best_validation, self.best_epoch = c["best_validation"], c["best_epoch"]
        self.bad_epochs, self.rollbacks = c["bad_epochs"], c["rollbacks"]
        self.history = list(state.get("history", []))

    def save_state(self) -> None:
        save_state(self.output_dir / STATE_FILE, self.state())

    def resume(self) -> None:
        self.load(load_state(self.output_dir / STATE_FILE))
        self.metrics.truncate_after(self.updates)
        self.validation_log.truncate_after(self.updates)

    def _remember_good(self) -> None:
        self._last_good = copy.deepcopy({
            "separator": self.separator.state_dict(), "optimiser": self.optimiser.state_dict(),
            "critics": {k: c.state_dict() for k, c in self.critics.items()},
            "critic_optimisers": {k: o.state_dict() for k, o in self.critic_optimisers.items()},
        })

    def _roll_back(self, progress: TrainingProgress) -> None:
        if self._last_good is None:
            raise NonFiniteError("training diverged (non-finite losses) before any good state was kept")
        good = self._last_good
        self.separator.load_state_dict(good["separator"])
        self.optimiser.load_state_dict(good["optimiser"])
        for k in self.critics:
            self.critics[k].load_state_dict(good["critics"][k])
            self.critic_optimisers[k].load_state_dict(good["critic_optimisers"][k])
        self.rollbacks += 1
        self.nonfinite = 0
        progress.message(
            f"[{self.variant}] {self.cfg.max_nonfinite} non-finite steps: rolled back to the last good "
            f"state (rollback {self.rollbacks}); sampling continues with fresh batches"
        )
        self.metrics.write({"step": self.updates, "epoch": self.epoch, "event": "rollback", "rollbacks": self.rollbacks})

    # ------------------------------------------------------------------ the loop
    def _save_model(self, validation: dict[str, Any] | None, file: str = MODEL_FILE) -> None:
        from ..model import save_model

        save_model(
            self.output_dir / file, recipe=self.recipe, representation=self.representation,
            separator=self.separator,
            metadata={"variant": self.variant, "epoch": self.epoch, "updates": self.updates,
                      "validation": validation or {}},
        )

    def _end_epoch(self, progress: TrainingProgress, seconds: float) -> bool:
        """Validate, keep the best model, decide early stopping. Returns True to stop."""
        record: dict[str, Any] = {"epoch": self.epoch, "step": self.updates, "seconds": seconds}
        stop = False
        if self.data.validation:
            validation_started = time.perf_counter()
            validation = self.validate()
            record.update({"loss": validation["loss"], "sdr": validation["sdr"],
                           "validation_seconds": time.perf_counter() - validation_started})
            improved = self.best_validation is None or validation["loss"] < self.best_validation
            if improved:
                self.best_validation, self.best_epoch, self.bad_epochs = validation["loss"], self.epoch, 0
                self._save_model(validation)
            else:
                self.bad_epochs += 1
            record.update({"best": improved, "bad_epochs": self.bad_epochs})
            self._save_model(validation, LAST_MODEL_FILE)
            if self.cfg.early_stopping and self.bad_epochs > self.cfg.patience:
                stop = True
            sdr = "  ".join(f"{k} {v:.2f} dB" for k, v in validation["sdr"].items())
            progress.message(
                f"[{self.variant}] epoch {self.epoch}: validation loss {validation['loss']:.5f}"
                f"{' (best)' if improved else f' (best {self.best_validation:.5f} at epoch {self.best_epoch})'}"
                f"  simple SDR {sdr}"
            )
        else:
            self.best_epoch = self.epoch
            self._save_model(None)
            self._save_model(None, LAST_MODEL_FILE)
        self.validation_log.write(record)
        self.history.append(record)
        return stop

    def _request_stop(self, *_: Any) -> None:
        """First Ctrl-C: finish the current update, save the state, stop. Second: stop at once
        (the state of the last epoch end stays on disk)."""
        if self._interrupted:
            raise KeyboardInterrupt
        self._interrupted = True
        print("\nstopping after this update to save the training state (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def fit(self, *, resume: bool = False, stop_after_updates: int | None = None) -> TrainResult:
        """Train to the early-stopping end (or ``max_epochs``). ``stop_after_updates`` simulates a kill
        (state saved as on Ctrl-C), for tests."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self.resume()
        started = time.perf_counter()
        cfg = self.cfg
        previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._request_stop)
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
                        if self._interrupted or (stop_after_updates is not None and self.updates >= stop_after_updates):
                            self.save_state()
                            stopped_by = "interrupted"
                            raise _Stop
                        log = self.train_update()
                        if log is None:
                            self.nonfinite += 1
                            self.metrics.write({"step": self.updates, "epoch": self.epoch + 1, "event": "nonfinite", "count": self.nonfinite})
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
                            values = {k: float(v) for k, v in log.items()}
                            elapsed = time.perf_counter() - window_started
                            record = {
                                "step": self.updates, "epoch": self.epoch + 1,
                                "examples_per_second": window_updates * self._examples_per_update() / max(elapsed, 1e-9),
                                "updates_per_second": window_updates / max(elapsed, 1e-9),
                                "learning_rate": self.optimiser.param_groups[0]["lr"],
                                **values,
                            }
                            self.metrics.write(record)
                            window_started, window_updates = time.perf_counter(), 0
                            shown = {k.replace("loss.", ""): v for k, v in values.items() if k.startswith("loss.") and k.count(".") == 1}
                            progress.update(self.update_in_epoch, shown, self.updates * cfg.critic_iterations * bool(self.critics))
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
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if stopped_by == "max_epochs" and self._stopped_early():
            stopped_by = "early stopping"
        self._plot()
        return TrainResult(
            variant=self.variant, output_dir=self.output_dir, epochs=self.epoch, updates=self.updates,
            best_epoch=self.best_epoch, best_validation=self.best_validation,
            seconds=time.perf_counter() - started, stopped_by=stopped_by, rollbacks=self.rollbacks,
            history=self.history,
        )

    def _stopped_early(self) -> bool:
        return bool(self.cfg.early_stopping and self.data.validation and self.bad_epochs > self.cfg.patience)

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

