"""Open-Unmix checkpoints (one ``.pth`` state dict per target) -> one sepkit model file, and back.

Reading: ``torch.load(..., weights_only=True)`` only, which rebuilds tensors and plain containers
and refuses anything that would run code. The network's shapes are read from the state dict itself
(``input_mean`` gives ``max_bin``, ``fc1`` the channels and hidden size, ``fc3`` the bins, the
``lstm`` keys the layers and directions), every target must have the same, and the weights must
load into :class:`~sepkit_openunmix.network.UnmixNetwork` strictly. The three extra entries of
checkpoints saved by Open-Unmix 1.0 (``sample_rate``, ``stft.window``, ``transform.0.window``: its
STFT lived inside the model then) are checked (a Hann window, the sample rate) and dropped; any
other unknown entry is refused. The model file records each file's sha256, the published URL when
the file is one of Open-Unmix's, and the licence of the weights.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sepkit.errors import SepkitError

from . import __version__
from .published import UNKNOWN_LICENSE, Recognised, recognise
from .separator import DEFAULT_CONTEXT_FRAMES, DEFAULT_OUTPUT_FRAMES

#: Entries of Open-Unmix 1.0 checkpoints that belong to its STFT, not to the network.
LEGACY_KEYS = ("sample_rate", "stft.window", "transform.0.window")
NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
#: Windows per forward pass stored in converted models: a umxhq window is ~25 MB of input, and
#: four targets' activations at 16 windows would need several GB.
BATCH_SIZE = 4


class ConversionError(SepkitError):
    """A checkpoint that is not an Open-Unmix state dict, or targets that do not fit together."""


@dataclass(frozen=True)
class Architecture:
    """What a target's state dict says about its network."""

    num_bins: int
    max_bin: int
    channels: int
    hidden_size: int
    layers: int
    unidirectional: bool

    @property
    def n_fft(self) -> int:
        return 2 * (self.num_bins - 1)

    def describe(self) -> str:
        lstm = f"{self.layers}-layer {'LSTM' if self.unidirectional else 'BLSTM'}"
        return (
            f"{self.channels} channel(s), {self.num_bins} bins (max_bin {self.max_bin}), hidden size "
            f"{self.hidden_size}, {lstm}"
        )


@dataclass(frozen=True)
class Checkpoint:
    target: str
    path: Path
    sha256: str
    size: int
    state: dict[str, Any]
    architecture: Architecture
    sample_rate: int | None
    recognised: Recognised | None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_pairs(items: list[str]) -> dict[str, Path]:
    """``["vocals=a.pth", ...]`` -> ``{"vocals": Path("a.pth")}``, in order."""
    pairs: dict[str, Path] = {}
    for item in items:
        target, sep, file = item.partition("=")
        target = target.strip()
        if not sep or not target or not file:
            raise ConversionError(f"{item!r}: expected TARGET=FILE.pth, e.g. vocals=vocals-b62c91ce.pth")
        if not NAME.match(target) or target == "mixture":
            raise ConversionError(f"{item!r}: target names are lowercase letters, digits, '-' or '_' (and not 'mixture')")
        if target in pairs:
            raise ConversionError(f"target '{target}' is given twice")
        pairs[target] = Path(file).expanduser()
    if not pairs:
        raise ConversionError("no checkpoints given: pass TARGET=FILE.pth for every target")
    return pairs


def _load(path: Path) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise ConversionError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler raises many types for bad bytes; weights_only refusals too
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConversionError(
            f"{path}: not a checkpoint that loads without running code ({reason[:160]}); sepkit reads "
            "Open-Unmix state dicts with torch.load(weights_only=True) only"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]  # a training checkpoint (.chkpnt): its weights only
    if not isinstance(data, dict) or not data:
        raise ConversionError(f"{path}: holds a {type(data).__name__}, not an Open-Unmix state dict")
    bad = [k for k, v in data.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ConversionError(f"{path}: entry {bad[0]!r} is not a tensor; not an Open-Unmix state dict")
    return data


def _shape(state: dict[str, Any], key: str, rank: int, path: Path) -> tuple[int, ...]:
    if key not in state:
        raise ConversionError(f"{path}: no '{key}' entry; not an Open-Unmix state dict")
    shape = tuple(state[key].shape)
    if len(shape) != rank:
        raise ConversionError(f"{path}: '{key}' has shape {list(shape)}, expected {rank} dimension(s)")
    return shape


def infer_architecture(state: dict[str, Any], path: Path) -> Architecture:
    """The network sizes a state dict implies (its consistency is checked by the strict load)."""
    (max_bin,) = _shape(state, "input_mean", 1, path)
    hidden, inputs = _shape(state, "fc1.weight", 2, path)
    (num_bins,) = _shape(state, "output_mean", 1, path)
    if max_bin < 1 or inputs % max_bin:
        raise ConversionError(f"{path}: fc1 takes {inputs} inputs, not a multiple of max_bin {max_bin}")
    layers = 0
    while f"lstm.weight_ih_l{layers}" in state:
        layers += 1
    if layers == 0:
        raise ConversionError(f"{path}: no 'lstm.weight_ih_l0' entry; not an Open-Unmix state dict")
    unidirectional = "lstm.weight_ih_l0_reverse" not in state
    if num_bins < 2:
        raise ConversionError(f"{path}: output_mean has {num_bins} bin(s); an STFT has at least 2")
    return Architecture(num_bins, max_bin, inputs // max_bin, hidden, layers, unidirectional)


def _legacy(state: dict[str, Any], architecture: Architecture, path: Path) -> int | None:
    """Check and remove Open-Unmix 1.0's STFT entries; returns the stored sample rate, if any."""
    import torch

    sample_rate = None
    if "sample_rate" in state:
        value = state.pop("sample_rate")
        if value.numel() != 1 or not math.isfinite(float(value)) or float(value) <= 0:
            raise ConversionError(f"{path}: 'sample_rate' entry {value.tolist()} is not a sample rate")
        sample_rate = int(round(float(value)))
    for key in LEGACY_KEYS[1:]:
        if key not in state:
            continue
        window = state.pop(key).detach().float()
        hann = torch.hann_window(architecture.n_fft)
        if window.shape != hann.shape or not torch.allclose(window, hann, atol=1e-6):
            raise ConversionError(
                f"{path}: '{key}' is not the periodic Hann window of {architecture.n_fft} samples that the "
                f"{architecture.num_bins} output bins imply; sepkit's magnitude-stft would not match it"
            )
    return sample_rate


def read_checkpoint(target: str, path: Path) -> Checkpoint:
    """Read, check and identify one target's checkpoint (network entries only in ``state``)."""
    import torch

    state = dict(_load(path))
    architecture = infer_architecture(state, path)
    sample_rate = _legacy(state, architecture, path)
    if not architecture.unidirectional and architecture.hidden_size % 2:
        raise ConversionError(f"{path}: hidden size {architecture.hidden_size} is odd; a BLSTM splits it in two")
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ConversionError(f"{path}: '{key}' holds NaN or infinite values")
    network = _network(architecture)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split()).replace("Error(s) in loading state_dict for UnmixNetwork: ", "")
        raise ConversionError(f"{path}: does not fit Open-Unmix's layout ({architecture.describe()}): {detail[:240]}") from None
    digest = sha256_of(path)
    return Checkpoint(
        target=target,
        path=path,
        sha256=digest,
        size=path.stat().st_size,
        state=state,
        architecture=architecture,
        sample_rate=sample_rate,
        recognised=recognise(digest),
    )


def _network(a: Architecture):  # type: ignore[no-untyped-def]
    from .network import UnmixNetwork

    return UnmixNetwork(
        num_bins=a.num_bins, max_bin=a.max_bin, channels=a.channels, hidden_size=a.hidden_size,
        layers=a.layers, unidirectional=a.unidirectional, dropout=0.0,
    )


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert` wrote."""

    output: Path
    checkpoints: tuple[Checkpoint, ...]
    sources: tuple[str, ...]
    sample_rate: int
    hop_length: int
    license: str
    parameters: int


def license_text(checkpoints: tuple[Checkpoint, ...] | list[Checkpoint]) -> str:
    """The terms of the weights: each recognised published model's, else the unknown-origin note."""
    parts: list[str] = []
    for checkpoint in checkpoints:
        text = checkpoint.recognised.model.license if checkpoint.recognised else UNKNOWN_LICENSE
        if text not in parts:
            parts.append(text)
    return "; ".join(parts)


def converted_recipe(
    architecture: Architecture,
    sources: list[str],
    *,
    sample_rate: int,
    hop_length: int,
    residual: bool,
    output_frames: int,
    context_frames: int,
    name: str = "open-unmix",
) -> dict[str, Any]:
    """The recipe data of a converted model: magnitude-stft with Open-Unmix's STFT, the open-unmix separator."""
    return {
        "name": name,
        "description": "Open-Unmix checkpoints converted by sepkit-openunmix",
        "sources": sources,
        "audio": {"sample_rate": sample_rate, "channels": architecture.channels, "clip": False},
        "representation": {
            "type": "magnitude-stft", "n_fft": architecture.n_fft, "hop_length": hop_length,
            "window": "hann", "center": True, "normalisation": "none",
        },
        "separator": {
            "type": "open-unmix", "hidden_size": architecture.hidden_size, "nb_layers": architecture.layers,
            "unidirectional": architecture.unidirectional, "max_bin": architecture.max_bin, "residual": residual,
            "output_frames": output_frames, "context_frames": context_frames,
        },
        "training": {"early_stopping": False},
        "evaluation": {"batch_size": BATCH_SIZE},
    }


def convert(
    files: dict[str, Path],
    output: Path,
    *,
    residual: str | None = None,
    sample_rate: int | None = None,
    hop_length: int | None = None,
    output_frames: int = DEFAULT_OUTPUT_FRAMES,
    context_frames: int = DEFAULT_CONTEXT_FRAMES,
    overwrite: bool = False,
    urls: dict[str, str] | None = None,
) -> Conversion:
    """Convert one checkpoint per target into the sepkit model file ``output`` (written atomically).

    ``residual`` names an extra last source, the mixture minus the targets. ``sample_rate`` defaults
    to the checkpoints' own (Open-Unmix 1.0 files store it), else 44100; ``hop_length`` to a quarter
    of the FFT size (Open-Unmix's music models; its 16 kHz speech model uses half). ``urls`` records
    where files were downloaded from (published files are recognised by their hash anyway).
    """
    from sepkit.build import build_representation, build_separator
    from sepkit.model import save_model
    from sepkit.recipe import recipe_from_dict

    output = Path(output)
    if output.exists() and not overwrite:
        raise ConversionError(f"{output} exists; pass --overwrite to replace it")
    if output.is_dir():
        raise ConversionError(f"{output} is a folder; give the model file's path")
    if residual is not None and (not NAME.match(residual) or residual == "mixture" or residual in files):
        raise ConversionError(f"--residual {residual!r}: needs a new source name (lowercase), not one of the targets")
    checkpoints = tuple(read_checkpoint(target, path) for target, path in files.items())
    first = checkpoints[0]
    for checkpoint in checkpoints[1:]:
        if checkpoint.architecture != first.architecture:
            raise ConversionError(
                f"{checkpoint.path} ({checkpoint.architecture.describe()}) does not match {first.path} "
                f"({first.architecture.describe()}); every target must have the same network"
            )
    stored = {c.sample_rate for c in checkpoints if c.sample_rate is not None}
    if len(stored) > 1:
        raise ConversionError(f"the checkpoints were saved at different sample rates: {sorted(stored)} Hz")
    if sample_rate is not None and stored and stored != {sample_rate}:
        raise ConversionError(f"--sample-rate {sample_rate}: the checkpoints say they work at {stored.pop()} Hz")
    rate = sample_rate or (stored.pop() if stored else 44100)
    hop = hop_length or first.architecture.n_fft // 4
    sources = [c.target for c in checkpoints] + ([residual] if residual else [])
    raw = converted_recipe(
        first.architecture, sources, sample_rate=rate, hop_length=hop, residual=residual is not None,
        output_frames=output_frames, context_frames=context_frames,
    )
    recipe = recipe_from_dict(raw, check_data=False).base
    representation = build_representation(recipe)
    separator = build_separator(recipe, representation)
    for network, checkpoint in zip(separator.targets, checkpoints):
        network.load_state_dict(checkpoint.state, strict=True)
    license = license_text(checkpoints)
    urls = dict(urls or {})
    metadata = {
        "converted_from": {
            "format": "Open-Unmix state dicts (one per target)",
            "converter": f"sepkit-openunmix {__version__}",
            "files": {c.target: _provenance(c, urls.get(c.target)) for c in checkpoints},
            "residual": residual,
        },
        "license": license,
    }
    save_model(output, recipe=recipe, representation=representation, separator=separator, metadata=metadata)
    return Conversion(
        output=output, checkpoints=checkpoints, sources=tuple(sources), sample_rate=rate, hop_length=hop,
        license=license, parameters=separator.num_parameters(),
    )


def _provenance(checkpoint: Checkpoint, url: str | None) -> dict[str, Any]:
    known = checkpoint.recognised
    record: dict[str, Any] = {
        "file": checkpoint.path.name,
        "sha256": checkpoint.sha256,
        "bytes": checkpoint.size,
        "url": url or (known.file.url if known else None),
    }
    if known is not None:
        record["published"] = f"{known.model.name} {known.file.target}"
        record["identified_by"] = "full sha256" if known.by == "sha256" else "sha256 prefix in the published file name"
    return record


def openunmix_state_dicts(separator: Any) -> list[dict[str, Any]]:
    """The separator's networks as Open-Unmix state dicts (source order; the residual has none):
    the keys are Open-Unmix's, so ``openunmix.model.OpenUnmix(...).load_state_dict(d)`` takes them."""
    return [{k: v.detach().clone() for k, v in network.state_dict().items()} for network in separator.targets]
