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

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..build import build_critics, build_divergence, build_representation, build_separator
from ..component import trusted_values
from ..device import resolve_device
from ..errors import SepkitError
from ..recipe.schema import Recipe
from .checkpoint import (
    LAST_MODEL_FILE, MODEL_FILE, STATE_FILE, load_networks, load_training_state, networks_state,
    resume_training_state, save_model_file, save_training_state, stabilisers_state, training_state,
)
from .data import TrainingData, prepare_data, rank_seed
from .distributed import Distributed, current as current_distributed
from .guard import NonFiniteError, NonFiniteGuard
from .journal import METRICS_FILE, VALIDATION_FILE, Journal
from .loggers import Loggers, NoLoggers, RunInfo
from .losses import additive_penalty, supervised_loss
from .metrics import RateWindow
from .optim import adam, step_unless
from .plots import plot_training_curves
from .progress import TrainingProgress
from .selection import Selection, rule_file
from .stabilisers import AdversarialWeight, WeightAverage
from .stopping import EarlyStopping, stop_signals
from .validation import validate

__all__ = ["LAST_MODEL_FILE", "MODEL_FILE", "STATE_FILE", "NonFiniteError", "TrainResult", "Trainer"]


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


class Trainer:
    """Trains one variant of a recipe into ``output_dir``: the set-up, one update and the loop are
    here; checkpoints, validation, early stopping, the non-finite guard and logging have their own
    modules (:mod:`.checkpoint`, :mod:`.validation`, :mod:`.stopping`, :mod:`.guard`, :mod:`.loggers`)."""

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
        # before any data is loaded: an unknown logger or a missing package is an error at once
        self.loggers = Loggers(self.cfg.loggers) if self.dist.is_main else NoLoggers(self.cfg.loggers)
        self._build_networks()
        self.data = data if data is not None else self._prepare_data(cache_dir)
        #: The seed of this process's own random stream (penalty interpolates...): rank-derived.
        self.torch_seed = rank_seed(self.cfg.seed, self.dist.rank)
        if self.dist.rank > 0:
            torch.manual_seed(self.torch_seed)
        if self.data.paired is None and not self.critics:
            raise SepkitError("nothing to train on: no paired data and no critics")
        self._check_settings()
        self.autocast = self._autocast_context()
        self._compile()
        self.epoch = 0
        self.update_in_epoch = 0
        self.updates = 0
        self.best_validation: float | None = None
        self.best_epoch: int | None = None
        self.history: list[dict[str, Any]] = []
        self.stopping = EarlyStopping(self.cfg.patience, self.cfg.early_stopping and bool(recipe.data.validation))
        self.guard = NonFiniteGuard(self.cfg.max_nonfinite)
        self._interrupted = False
        self._stop_agreed = False  # an interrupt, agreed by every process at the last update's end

    # ------------------------------------------------------------------ set-up helpers
    def _build_networks(self) -> None:
        """The components, their optimisers and the stabilisers, from the recipe's seed: the same
        networks in every process (and rank 0's parameters broadcast to the others)."""
        cfg, recipe = self.cfg, self.recipe
        torch.manual_seed(cfg.seed)
        self.representation = build_representation(recipe)
        self.separator = build_separator(recipe, self.representation).to(self.device)
        self.window = self.separator.window
        self.critics = {k: c.to(self.device) for k, c in build_critics(recipe, self.separator).items()}
        self.dist.broadcast_modules(self.separator, *self.critics.values())
        self.divergence = build_divergence(recipe) if self.critics else None
        betas = tuple(cfg.betas)
        critic_betas = tuple(cfg.critic_betas or cfg.betas)
        self.optimiser = adam(self.separator.parameters(), lr=cfg.learning_rate, betas=betas, device=self.device)
        self.critic_optimisers = {
            k: adam(c.parameters(), lr=cfg.critic_learning_rate, betas=critic_betas, device=self.device)
            for k, c in self.critics.items()
        }
        self.critic_iterations = self._critic_iterations()
        self.adversarial_weight = AdversarialWeight(cfg, self.device, combine=self._combine_norms)
        self.average = WeightAverage(self.separator, cfg.ema) if cfg.ema else None
        self.selection = Selection(cfg.select, cfg.selection_subsets)
        self.source_index = {s: i for i, s in enumerate(recipe.sources)}

    def _compile(self) -> None:
        """What an update calls: the networks, or with ``training.compile`` their compiled forms."""
        self._forward = self.separator
        self._critic_forward = dict(self.critics)
        if self.cfg.compile:
            self._forward = torch.compile(self.separator)
            self._critic_forward = {k: torch.compile(c) for k, c in self.critics.items()}

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
        unknown = [name for name in cfg.selection_subsets or () if name not in subsets]
        if unknown and self.dist.is_main:
            raise SepkitError(
                f"training.select_subset = {', '.join(map(repr, unknown))} is not a validation subset; "
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
    def validate(self) -> dict[str, Any]:
        """Supervised loss and a cheap SDR of the validation tracks (:func:`.validation.validate`)."""
        return validate(self.inference_network, self.data.validation, self.representation, self.recipe.sources,
                        batch_size=self.recipe.evaluation.batch_size)

    # ------------------------------------------------------------------ state (see .checkpoint)
    def state(self) -> dict[str, Any]:
        return training_state(self)

    def load(self, state: dict[str, Any]) -> None:
        load_training_state(self, state)

    def save_state(self) -> None:
        """Write the training state (the first process; every process takes part in gathering it)."""
        save_training_state(self)

    def resume(self) -> None:
        resume_training_state(self)

    def _save_model(self, validation: dict[str, Any] | None, file: str = MODEL_FILE) -> None:
        save_model_file(self, validation, file)

    @property
    def metrics(self) -> Journal:
        """The run's metrics.jsonl (written by the ``jsonl`` logger), for reading."""
        return Journal(self.output_dir / METRICS_FILE)

    @property
    def validation_log(self) -> Journal:
        """The run's validation.jsonl (written by the ``jsonl`` logger), for reading."""
        return Journal(self.output_dir / VALIDATION_FILE)

    # ------------------------------------------------------------------ the non-finite guard
    def _keep_good_state(self) -> None:
        self.guard.keep({**networks_state(self), **stabilisers_state(self)})

    def _skip_nonfinite(self, progress: TrainingProgress) -> None:
        """A non-finite update changed nothing: log it, and after too many in a row roll back."""
        count = self.guard.failed()
        self.loggers.log_metrics({"step": self.updates, "epoch": self.epoch + 1, "event": "nonfinite", "count": count})
        if not self.guard.must_roll_back():
            return
        load_networks(self, self.guard.roll_back())
        progress.message(
            f"[{self.variant}] {self.cfg.max_nonfinite} non-finite steps: rolled back to the last good "
            f"state (rollback {self.guard.rollbacks}); sampling continues with fresh batches"
        )
        self.loggers.log_metrics({"step": self.updates, "epoch": self.epoch, "event": "rollback", "rollbacks": self.guard.rollbacks})

    # ------------------------------------------------------------------ an epoch's end
    def _end_epoch(self, progress: TrainingProgress, seconds: float) -> bool:
        """Validate, keep each selection rule's best model, decide early stopping (the first process;
        the others learn its decision). Returns True to stop."""
        stop = self._validate_and_save(progress, seconds) if self.dist.is_main else False
        if self.dist.enabled:
            flag, bad_epochs = self.dist.broadcast_values([float(stop), float(self.stopping.bad_epochs)])
            stop, self.stopping.bad_epochs = bool(flag), int(bad_epochs)
        return stop

    def _validate_and_save(self, progress: TrainingProgress, seconds: float) -> bool:
        record: dict[str, Any] = {"epoch": self.epoch, "step": self.updates, "seconds": seconds}
        stop = False
        if self.data.validation:
            stop = self._select(record, progress)
        else:
            self.best_epoch = self.epoch
            self._save_model(None)
            self._save_model(None, LAST_MODEL_FILE)
        self.loggers.log_validation(record)
        self.history.append(record)
        return stop

    def _select(self, record: dict[str, Any], progress: TrainingProgress) -> bool:
        """Validate, save the model of every rule this epoch is best by, count epochs without
        improvement into ``record``; returns whether early stopping ends training here."""
        validation_started = time.perf_counter()
        validation = self.validate()
        record.update({"loss": validation["loss"], "sdr": validation["sdr"], "subsets": validation["subsets"],
                       "validation_seconds": time.perf_counter() - validation_started})
        improved_rules = self.selection.observe(self.epoch, validation)
        for rule in improved_rules:
            self._save_model(validation, rule_file(rule))
        if self.cfg.select in improved_rules:
            self._save_model(validation)
        self.best_validation, self.best_epoch = self.selection.selected() or (None, None)
        stop = self.stopping.step(self.selection.bad_epochs)
        improved = self.selection.stopping_rule in improved_rules
        record.update({"best": improved, "bad_epochs": self.stopping.bad_epochs, "best_by": improved_rules})
        progress.message(self._validation_line(validation, improved))
        return stop

    def _validation_line(self, validation: dict[str, Any], improved: bool) -> str:
        rule, subsets = self.selection.stopping_rule, self.cfg.selection_subsets
        what = rule if subsets is None else f"{rule} on {' + '.join(subsets)}"
        best = "(best)" if improved else f"(best {self.best_validation:.5g} at epoch {self.best_epoch})"
        sdr = "  ".join(f"{k} {v:.2f} dB" for k, v in validation["sdr"].items())
        return (f"[{self.variant}] epoch {self.epoch}: validation loss {validation['loss']:.5f}  simple SDR "
                f"{sdr}  {what} {best}")

    # ------------------------------------------------------------------ the loop
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
        run = RunInfo(self.output_dir, self.variant, self.updates if resume else None, self.recipe)
        with self.loggers.running(run), stop_signals(self._request_stop, sigterm=self.dist.enabled):
            with TrainingProgress(self.variant, self.cfg.updates_per_epoch, enabled=self.progress_enabled) as progress:
                stopped_by = self._train_epochs(progress, stop_after_updates)
        if self.dist.is_main:
            self._plot()
        return TrainResult(
            variant=self.variant, output_dir=self.output_dir, epochs=self.epoch, updates=self.updates,
            best_epoch=self.best_epoch, best_validation=self.best_validation,
            seconds=time.perf_counter() - started, stopped_by=stopped_by, rollbacks=self.guard.rollbacks,
            history=self.history,
        )

    def _train_epochs(self, progress: TrainingProgress, stop_after_updates: int | None) -> str:
        """Epochs to the end; returns why training stopped."""
        if self._finished():
            return "already finished"
        while not self._finished():
            if self.update_in_epoch == 0 or not self.guard.has_good_state:
                self._keep_good_state()
            progress.start_epoch(self.epoch + 1, self.update_in_epoch)
            epoch_started = time.perf_counter()
            if not self._train_epoch(progress, stop_after_updates):
                self.save_state()
                return "interrupted"
            self.epoch += 1
            self.update_in_epoch = 0
            stop = self._end_epoch(progress, time.perf_counter() - epoch_started)
            self.save_state()
            if stop:
                return "early stopping"
        return "early stopping" if self.stopping.should_stop else "max_epochs"

    def _train_epoch(self, progress: TrainingProgress, stop_after_updates: int | None) -> bool:
        """The epoch's remaining updates; False when asked to stop first (Ctrl-C, SIGTERM, a test's
        ``stop_after_updates``)."""
        cfg = self.cfg
        window = RateWindow()
        while self.update_in_epoch < cfg.updates_per_epoch:
            interrupted = self._stop_agreed if self.dist.enabled else self._interrupted
            if interrupted or (stop_after_updates is not None and self.updates >= stop_after_updates):
                return False
            log = self.train_update()
            if log is None:
                self._skip_nonfinite(progress)
                continue
            self.guard.passed()
            self.updates += 1
            self.update_in_epoch += 1
            window.count()
            if self.updates % cfg.log_every == 0 or self.update_in_epoch == cfg.updates_per_epoch:
                self._log_metrics(log, window, progress)
        return True

    def _log_metrics(self, log: dict[str, Any], window: RateWindow, progress: TrainingProgress) -> None:
        """One metrics record (every process takes part: the values are the global batch's) and the
        progress display."""
        values = self.dist.mean(log)  # over the processes: the global batch's
        self.loggers.log_metrics({
            "step": self.updates, "epoch": self.epoch + 1, **window.rates(self._examples_per_update()),
            "learning_rate": self.optimiser.param_groups[0]["lr"], **values,
        })
        window.reset()
        shown = {k.replace("loss.", ""): v for k, v in values.items() if k.startswith("loss.") and k.count(".") == 1}
        progress.update(self.update_in_epoch, shown, self.updates * self.critic_iterations * bool(self.critics))

    def _finished(self) -> bool:
        return self.epoch >= self.cfg.max_epochs or self.stopping.should_stop

    def _plot(self) -> None:
        """training-curves.png from the jsonl logs (none when the recipe leaves that logger out)."""
        if "jsonl" not in self.loggers.names:
            return
        try:
            plot_training_curves(self.metrics.read(), self.validation_log.read(), self.output_dir / "training-curves.png", title=self.variant)
        except Exception as exc:  # a plot must never lose a finished run
            print(f"warning: could not plot the training curves: {exc}")
