"""Checkpointing: what a training state holds, gathered from a trainer and fitted back into one,
and the model files a run keeps. The file format itself is :mod:`.state`.

The functions take the :class:`~.trainer.Trainer` whose parts they save or load: a training state
is, by definition, every part of it that the next update depends on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..errors import SepkitError
from ..model import save_model
from .optim import load_optimiser_state
from .state import load_state, save_state

if TYPE_CHECKING:
    from .trainer import Trainer

MODEL_FILE = "model.safetensors"
#: The model at the end of the latest epoch, whatever its validation: for diagnostics and for
#: comparing model selection rules (the paper keeps the best by validation loss, MODEL_FILE).
LAST_MODEL_FILE = "model-last.safetensors"
STATE_FILE = "train-state/state.safetensors"


def save_model_file(trainer: Trainer, validation: dict[str, Any] | None, file: str = MODEL_FILE) -> None:
    """The network that is validated (the weight average with ``training.ema``) as a model file."""
    save_model(
        trainer.output_dir / file, recipe=trainer.recipe, representation=trainer.representation,
        separator=trainer.inference_network,
        metadata={"variant": trainer.variant, "epoch": trainer.epoch, "updates": trainer.updates,
                  "validation": validation or {}},
    )


# ---------------------------------------------------------------------------- gathering
def networks_state(trainer: Trainer) -> dict[str, Any]:
    """The networks and their optimisers (live tensors: copy before keeping)."""
    return {
        "separator": trainer.separator.state_dict(),
        "optimiser": trainer.optimiser.state_dict(),
        "critics": {k: c.state_dict() for k, c in trainer.critics.items()},
        "critic_optimisers": {k: o.state_dict() for k, o in trainer.critic_optimisers.items()},
    }


def stabilisers_state(trainer: Trainer) -> dict[str, Any]:
    """The balanced weight's norms and the weight average (when ``training.ema`` is set)."""
    state: dict[str, Any] = {"adversarial_weight": trainer.adversarial_weight.state_dict()}
    if trainer.average is not None:
        state["average"] = trainer.average.state_dict()
    return state


def training_state(trainer: Trainer) -> dict[str, Any]:
    """Everything the next update depends on. With several processes every one takes part (each
    process's random streams are gathered), and the first writes it."""
    return {
        **networks_state(trainer),
        "samplers": {k: s.state_dict() for k, s in trainer.data.samplers().items()},
        "rng": rng_state(trainer.device),
        "counters": {
            "epoch": trainer.epoch, "update_in_epoch": trainer.update_in_epoch, "updates": trainer.updates,
            "best_validation": trainer.best_validation, "best_epoch": trainer.best_epoch,
            "bad_epochs": trainer.stopping.bad_epochs, "rollbacks": trainer.guard.rollbacks,
        },
        "history": trainer.history,
        "selection": trainer.selection.state_dict(),
        **stabilisers_state(trainer),
        "distributed": {"world_size": trainer.dist.world_size, "ranks": rank_states(trainer)},
    }


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    rng = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def rank_states(trainer: Trainer) -> list[dict[str, Any]]:
    """Every process's own random state and seeds, by rank (gathered: a collective)."""
    local = {f"rng.{k}": v for k, v in rng_state(trainer.device).items()}
    local.update({f"sampler.{k}": s.state_dict()["generator"] for k, s in trainer.data.samplers().items()})
    local.update({f"seed.{k}": torch.tensor([v], dtype=torch.int64) for k, v in trainer.data.seeds.items()})
    local["seed.torch"] = torch.tensor([trainer.torch_seed], dtype=torch.int64)
    ranks = []
    for entry in trainer.dist.gather_bytes(local):
        ranks.append({
            "rng": {k[4:]: v for k, v in entry.items() if k.startswith("rng.")},
            "samplers": {k[8:]: {"generator": v} for k, v in entry.items() if k.startswith("sampler.")},
            "seeds": {k[5:]: int(v[0]) for k, v in entry.items() if k.startswith("seed.")},
        })
    return ranks


def save_training_state(trainer: Trainer) -> None:
    """Gather the state (every process) and write it (the first)."""
    state = training_state(trainer)
    if trainer.dist.is_main:
        save_state(trainer.output_dir / STATE_FILE, state)


# ---------------------------------------------------------------------------- loading
def load_networks(trainer: Trainer, state: dict[str, Any]) -> None:
    """The networks, optimisers and stabilisers of ``state`` (a training state or a kept good state)."""
    trainer.separator.load_state_dict(state["separator"])
    load_optimiser_state(trainer.optimiser, state["optimiser"])
    if set(state["critics"]) != set(trainer.critics):
        raise SepkitError(f"the training state has critics {sorted(state['critics'])}, the recipe {sorted(trainer.critics)}")
    for k, critic in trainer.critics.items():
        critic.load_state_dict(state["critics"][k])
        load_optimiser_state(trainer.critic_optimisers[k], state["critic_optimisers"][k])
    load_stabilisers(trainer, state)


def load_stabilisers(trainer: Trainer, state: dict[str, Any]) -> None:
    """The weight average and the balanced weight's norms (absent from states of older runs)."""
    if "adversarial_weight" in state:
        trainer.adversarial_weight.load_state_dict(state["adversarial_weight"])
    if trainer.average is not None:
        if "average" not in state:
            raise SepkitError("the training state has no weight average but the recipe sets training.ema")
        trainer.average.load_state_dict(state["average"])


def load_training_state(trainer: Trainer, state: dict[str, Any]) -> None:
    """Fit a training state back into ``trainer``: a state that does not fit is a one-line error."""
    _check_world_size(trainer, state)
    own = state["distributed"]["ranks"][trainer.dist.rank] if "distributed" in state else state
    try:
        load_networks(trainer, state)
        for k, sampler in trainer.data.samplers().items():
            sampler.load_state_dict(own["samplers"][k])
        torch.set_rng_state(own["rng"]["cpu"])
        if "cuda" in own["rng"] and trainer.device.type == "cuda":
            torch.cuda.set_rng_state(own["rng"]["cuda"], trainer.device)
        counters = state["counters"]
    except SepkitError:
        raise
    except (KeyError, RuntimeError, ValueError) as exc:
        raise SepkitError(f"training state does not fit this recipe: {type(exc).__name__}: {exc}") from None
    _load_counters(trainer, counters, state)


def _check_world_size(trainer: Trainer, state: dict[str, Any]) -> None:
    written = int(state.get("distributed", {}).get("world_size", 1))
    if written != trainer.dist.world_size:
        how = "`sepkit run` (one process)" if written == 1 else f"{written} processes in all (torchrun --nproc_per_node={written} on one node)"
        raise SepkitError(
            f"the training state was written by {written} process(es) and this run has {trainer.dist.world_size}: "
            f"every process's excerpt stream is part of the state, so resume with {how}"
        )


def _load_counters(trainer: Trainer, c: dict[str, Any], state: dict[str, Any]) -> None:
    trainer.epoch, trainer.update_in_epoch, trainer.updates = c["epoch"], c["update_in_epoch"], c["updates"]
    trainer.best_validation, trainer.best_epoch = c["best_validation"], c["best_epoch"]
    trainer.stopping.bad_epochs, trainer.guard.rollbacks = c["bad_epochs"], c["rollbacks"]
    trainer.history = list(state.get("history", []))
    if "selection" in state:
        trainer.selection.load_state_dict(state["selection"])
    elif trainer.best_validation is not None:  # a state of an older sepkit: selection by the loss
        trainer.selection.best = {"validation-loss": (trainer.best_validation, trainer.best_epoch)}
        trainer.selection.bad_epochs = trainer.stopping.bad_epochs


def resume_training_state(trainer: Trainer) -> None:
    load_training_state(trainer, load_state(trainer.output_dir / STATE_FILE))
