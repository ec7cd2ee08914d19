"""Loading a model file into a :class:`Model`: its representation and separator rebuilt through the
plugin registries from the stored recipe, the weights read with safetensors (never unpickled), and
separation with the model's own defaults. The file format itself is :mod:`sepkit.model_file`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file

from .build import build_representation, build_separator
from .device import device_of, resolve_device
from .errors import PluginError, SepkitError
from .model_file import FORMAT, FORMAT_VERSION, check_finite, check_header, model_recipe, read_header, save_model, stored_json
from .recipe.schema import Recipe
from .separation.defaults import DEFAULT_PRECISION
from .separation.engine import BLOCK_SECONDS, DEFAULT_CHUNK_SECONDS, EngineOptions, PipelineSpec, output_names, run_pipeline
from .separation.windows import DEFAULT_OVERLAP

if TYPE_CHECKING:
    from .representation import Representation
    from .separator import Separator

#: The format's functions most callers want, importable from here as before.
__all__ = ["FORMAT", "FORMAT_VERSION", "Model", "load_model", "model_recipe", "read_header", "save_model"]


def load_model(path: str | os.PathLike[str], *, device: "str | torch.device" = "cpu") -> "Model":
    """Read a model file and rebuild its representation and separator through the registries.

    Every problem (missing file, not safetensors, not a sepkit model, a component whose plugin is
    not installed, weights that do not fit) is a one-line :class:`SepkitError` naming the file.
    """
    path = Path(path)
    target = resolve_device(device)  # an unavailable device fails before any work
    header = read_header(path)
    components = stored_json(header, "components", path)
    components = components if isinstance(components, dict) else {}
    recipe = model_recipe(stored_json(header, "recipe", path), components=components, where=str(path))
    check_header(header, recipe, path)
    metadata = stored_json(header, "metadata", path)
    try:
        representation = build_representation(recipe)
        separator = build_separator(recipe, representation)
    except (PluginError, SepkitError) as exc:
        raise SepkitError(f"{path}: cannot rebuild the model: {exc}") from None
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise SepkitError(f"{path}: corrupt model file: cannot read the weights: {exc}") from None
    check_finite(state, path)
    try:
        separator.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise SepkitError(
            f"{path}: the weights do not fit separator '{recipe.separator.type}': {detail[:300]}"
        ) from None
    separator.eval()
    model = Model(
        recipe=recipe,
        representation=representation,
        separator=separator,
        components=components,
        metadata=metadata if isinstance(metadata, dict) else {},
        path=path,
    )
    return model.to(target)


# -- the model -------------------------------------------------------------------------------------


class Model:
    """A loaded separator with its representation: ``separate(waveform, sample_rate)`` -> stems.

    ``metadata`` is the caller's metadata stored at save time (training metrics...); ``components``
    names each component and the distribution that provided it; ``recipe`` is the resolved recipe.
    """
    def __init__(
        self,
        *,
        recipe: "Recipe",
        representation: "Representation",
        separator: "Separator",
        components: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        path: Path | None = None,
    ) -> None:
        self.recipe = recipe
        self.representation = representation
        self.separator = separator
        self.components = dict(components or {})
        self.metadata = dict(metadata or {})
        self.path = path

    @property
    def sources(self) -> list[str]:
        return list(self.recipe.sources)

    @property
    def sample_rate(self) -> int:
        return int(self.recipe.audio.sample_rate)

    @property
    def channels(self) -> int:
        return int(self.recipe.audio.channels)

    @property
    def channel_mode(self) -> str:
        """How a mono model treats multichannel input by default: ``per-channel`` or ``downmix``."""
        mode = self.metadata.get("channel_mode", "per-channel")
        return mode if mode in ("per-channel", "downmix") else "per-channel"

    @property
    def device(self) -> "torch.device":
        return device_of(self.separator)

    def to(self, device: "str | torch.device") -> "Model":
        """Move the separator to ``device`` (``auto`` picks CUDA, MPS or CPU); returns self.

        On the CPU the separator's weights are stored channels-last, which makes 2-D convolutions
        about twice as fast there; results are unchanged up to float rounding.
        """
        device = resolve_device(device)
        self.separator.to(device)
        if device.type == "cpu":
            self.separator.to(memory_format=torch.channels_last)
        else:
            self.separator.to(memory_format=torch.contiguous_format)
        return self

    def options(
        self,
        *,
        overlap: float | None = None,
        batch_size: int | None = None,
        wiener: bool = False,
        channel_mode: str | None = None,
        chunk_seconds: float | None = None,
        precision: str | None = None,
        **after: Any,
    ) -> "EngineOptions":
        """Engine options with this model's defaults filled in (batch size from the recipe's evaluation).

        ``after``: the other fields of :class:`~sepkit.separation.engine.EngineOptions`
        (``high_band``, ``two_stems``, ``silence_db``, ``shifts``, ``seed``).
        """
        known = {f.name for f in dataclasses.fields(EngineOptions)}
        unknown = sorted(set(after) - known)
        if unknown:
            raise SepkitError(f"unknown separation option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return EngineOptions(
            overlap=DEFAULT_OVERLAP if overlap is None else overlap,
            batch_size=batch_size or self.recipe.evaluation.batch_size,
            wiener=wiener,
            channel_mode=channel_mode or self.channel_mode,  # type: ignore[arg-type]
            chunk_seconds=chunk_seconds or DEFAULT_CHUNK_SECONDS,
            precision=precision or DEFAULT_PRECISION,
            **after,
        )

    def pipeline_spec(self) -> "PipelineSpec":
        return PipelineSpec(
            representation=self.representation,
            separator=self.separator,
            sources=tuple(self.sources),
            sample_rate=self.sample_rate,
            channels=self.channels,
            clip=bool(self.recipe.audio.clip),
            channel_mode=self.channel_mode,
        )

    def separate(
        self,
        waveform: "np.ndarray | torch.Tensor",
        sample_rate: int,
        *,
        options: EngineOptions | None = None,
        **keywords: Any,
    ) -> dict[str, "np.ndarray"]:
        """``[C, L]`` (or ``[L]``) audio at ``sample_rate`` -> ``{source: float32 [C, L]}`` (or ``[L]``)
        at the input's own rate and channel count.

        ``keywords`` are those of :meth:`options` (``overlap``, ``batch_size``, ``wiener``,
        ``channel_mode``, ``chunk_seconds``, ``precision`` and the other fields of
        :class:`~sepkit.separation.engine.EngineOptions`), with this model's defaults;
        ``overlap`` defaults to :data:`~sepkit.separation.windows.DEFAULT_OVERLAP` (0 gives the
        paper's non-overlapping windows). This is the model's own estimate (``high_band="drop"``);
        :func:`sepkit.separate` returns stems that add up to the input. ``options``: engine options
        made once by :meth:`options`, used as they are (instead of the keywords), for callers that
        separate many inputs the same way.
        """
        audio = _waveform(waveform, sample_rate)
        frames_first = audio.reshape(1, -1).T if audio.ndim == 1 else audio.T  # [L, C] view
        length, channels = frames_first.shape
        block = max(1, int(BLOCK_SECONDS * sample_rate))
        if options is None:
            options = self.options(**keywords)
        elif keywords:
            raise SepkitError("Model.separate: give either options= or the option keywords, not both")
        names = output_names(self.sources, options)
        outputs = {s: np.empty((channels, length), dtype=np.float32) for s in names}
        position = 0

        def sink(stems: np.ndarray) -> None:
            nonlocal position
            n = stems.shape[-1]
            for source, stem in zip(names, stems):
                outputs[source][:, position : position + n] = stem
            position += n

        run_pipeline(
            self.pipeline_spec(),
            (frames_first[i : i + block] for i in range(0, length, block)),
            sample_rate=int(sample_rate),
            channels=channels,
            sink=sink,
            options=options,
        )
        if audio.ndim == 1:
            return {s: v[0] for s, v in outputs.items()}
        return outputs

    def __repr__(self) -> str:
        return (
            f"Model({self.recipe.representation.type} -> {self.recipe.separator.type}, sources={self.sources}, "
            f"{self.sample_rate} Hz, {self.channels} channel(s), device={self.device})"
        )


def _waveform(waveform: "np.ndarray | torch.Tensor", sample_rate: int) -> np.ndarray:
    """``waveform`` as a float numpy array ``[C, L]`` or ``[L]`` with samples, or a one-line error."""
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().to("cpu").numpy()
    audio = np.asarray(waveform)
    if audio.ndim not in (1, 2):
        raise SepkitError(f"separate expects a waveform [channels, samples] or [samples], got shape {list(audio.shape)}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise SepkitError(
            f"separate expects floating-point samples in [-1, 1], got {audio.dtype} "
            "(convert integer PCM first, e.g. x / 32768 for int16)"
        )
    if int(sample_rate) <= 0:
        raise SepkitError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
    if audio.size == 0:
        raise SepkitError(f"separate: the waveform {list(audio.shape)} has no samples")
    return audio
