"""Random feature excerpts with the separator's context, drawn on the training device.

Every track is encoded once; its features get ``window.context_before`` zero frames in front and
``window.context_after`` behind (zero features are silence for the built-in representations), and
all tracks are concatenated along time into one device tensor ``[S, C, F, T_total]``. A batch is
then one indexing operation on a strided view of that tensor: no Python loop over examples, no copy
beyond the batch itself.

Sampling: a track uniformly at random, then a start uniformly among those whose *output* region
(the central ``window.output_frames`` frames) lies inside the track; the context may reach into
the padding. Loudness augmentation (unpaired roles) scales linear magnitudes by a factor drawn
from U(low, high) per example.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ShapeError
from ..representation import Representation
from ..separator import Window

_DRAW_RANGE = 2**62


class ExcerptSampler:
    """Draws ``[B, S, C, F, window.input_frames]`` excerpts from encoded tracks.

    ``tracks`` are ``[S, C, L]`` waveforms (numpy or torch), all with the same ``S`` and ``C``.
    Tracks too short for one output window are left out with a warning naming them (``names``
    gives their names); none left is a :class:`~sepkit.errors.ShapeError`.
    """

    def __init__(
        self,
        tracks: Sequence[torch.Tensor | np.ndarray],
        representation: Representation,
        window: Window,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
        loudness: tuple[float, float] | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        if not tracks:
            raise ShapeError("the excerpt sampler needs at least one track")
        if loudness is not None and not 0 <= loudness[0] <= loudness[1]:
            raise ValueError(f"loudness range must satisfy 0 <= low <= high, got {loudness}")
        self.representation = representation
        self.window = window
        self.device = torch.device(device)
        self.loudness = tuple(loudness) if loudness is not None else None
        names = list(names) if names is not None else [f"track {i}" for i in range(len(tracks))]
        if len(names) != len(tracks):
            raise ValueError(f"{len(names)} names for {len(tracks)} tracks")

        waveforms, frames, self.names, self.skipped = self._select(tracks, names)
        before, after = window.context_before, window.context_after
        lengths = torch.tensor(frames, dtype=torch.long)
        padded = lengths + before + after
        offsets = torch.cumsum(padded, 0) - padded
        stems, channels = waveforms[0].shape[0], waveforms[0].shape[1]
        # One allocation; each track is encoded on the device and copied into its slot, so the
        # peak memory is the buffer plus one track's features.
        self.buffer = torch.zeros(
            (stems, channels, representation.num_bins, int(padded.sum())), dtype=torch.float32, device=self.device
        )
        for waveform, name, offset, length in zip(waveforms, self.names, offsets.tolist(), frames):
            encoded = self._encode(waveform)
            if encoded.shape[-1] != length or encoded.shape[-2] != representation.num_bins:
                raise ShapeError(
                    f"{name}: the representation encoded {encoded.shape[-1]} frames x {encoded.shape[-2]} bins, "
                    f"its num_frames/num_bins promise {length} x {representation.num_bins}"
                )
            self.buffer[..., offset + before : offset + before + length] = encoded
        self.lengths = lengths.to(self.device)
        self.offsets = offsets.to(self.device)
        #: Valid starts per track: the output region [start + before, start + before + out) in the track.
        self.num_starts = (lengths - window.output_frames + 1).to(self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    @classmethod
    def from_loaded(
        cls, tracks: Sequence[Any], representation: Representation, window: Window, **options: Any
    ) -> "ExcerptSampler":
        """From :class:`~sepkit.data.loading.LoadedTrack` objects (their names label the warnings)."""
        return cls([t.audio for t in tracks], representation, window, names=[t.name for t in tracks], **options)

    # -- construction ------------------------------------------------------------------------
    def _select(
        self, tracks: Sequence[torch.Tensor | np.ndarray], names: list[str]
    ) -> tuple[list[torch.Tensor], list[int], list[str], list[str]]:
        """Check the tracks' layout; keep those with at least one output window of frames."""
        kept: list[torch.Tensor] = []
        frames: list[int] = []
        kept_names: list[str] = []
        skipped: list[str] = []
        shape: tuple[int, int] | None = None
        needed = self.window.output_frames
        for track, name in zip(tracks, names):
            waveform = torch.as_tensor(track)
            if waveform.dim() != 3:
                raise ShapeError(f"{name}: tracks are [stems, channels, samples], got {list(waveform.shape)}")
            if shape is None:
                shape = (waveform.shape[0], waveform.shape[1])
            elif (waveform.shape[0], waveform.shape[1]) != shape:
                raise ShapeError(
                    f"{name}: {waveform.shape[0]} stems x {waveform.shape[1]} channels, the first track has "
                    f"{shape[0]} x {shape[1]}; every track of a sampler needs the same layout"
                )
            try:
                count = self.representation.num_frames(int(waveform.shape[-1]))
            except ShapeError:  # shorter than one frame
                count = 0
            if count < needed:
                skipped.append(name)
                continue
            kept.append(waveform)
            frames.append(count)
            kept_names.append(name)
        seconds = needed * self.representation.hop_length / self.representation.sample_rate
        listed = f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}"
        if not kept:
            raise ShapeError(
                f"no track is long enough for one excerpt: the separator's output window needs {needed} "
                f"frames ({seconds:.2f} s) and every track is shorter ({listed})"
            )
        if skipped:
            warnings.warn(
                f"{len(skipped)} track(s) shorter than one excerpt ({needed} output frames, {seconds:.2f} s) "
                f"left out: {listed}",
                stacklevel=3,
            )
        return kept, frames, kept_names, skipped

    @torch.no_grad()
    def _encode(self, waveform: torch.Tensor) -> torch.Tensor:
        """``[S, C, L]`` -> ``[S, C, F, T]`` features on the device (the stems are the batch)."""
        waveform = waveform.to(self.device, dtype=torch.float32)
        features, _ = self.representation.encode(waveform)
        return features.to(torch.float32)

    # -- sampling ----------------------------------------------------------------------------
    @property
    def num_tracks(self) -> int:
        return int(self.lengths.numel())

    @property
    def total_frames(self) -> int:
        """Frames of real audio over all tracks (padding excluded)."""
        return int(self.lengths.sum())

    @property
    def num_stems(self) -> int:
        return int(self.buffer.shape[0])

    def draw(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Random ``(track indices, starts)`` for a batch; a start counts frames from the track's
        first padded frame, so the output region begins at track frame ``start``."""
        tracks = torch.randint(self.num_tracks, (batch_size,), generator=self.generator, device=self.device)
        # Uniform integers below each track's count: a 62-bit draw modulo the count (bias < 2^-40).
        draws = torch.randint(_DRAW_RANGE, (batch_size,), generator=self.generator, device=self.device)
        starts = torch.remainder(draws, self.num_starts[tracks])
        return tracks, starts

    def excerpts(self, tracks: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """``[B, S, C, F, input_frames]`` excerpts at the given positions (see :meth:`draw`)."""
        positions = self.offsets[tracks] + starts
        windows = self.buffer.unfold(-1, self.window.input_frames, 1)  # [S, C, F, N, W], a view
        return windows.movedim(3, 0)[positions]  # one gather

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch of random excerpts ``[B, S, C, F, window.input_frames]`` on the device,
        loudness-augmented when the sampler was given a ``loudness`` range."""
        batch = self.excerpts(*self.draw(batch_size))
        if self.loudness is not None:
            low, high = self.loudness
            gain = torch.rand(batch_size, generator=self.generator, device=self.device) * (high - low) + low
            gain = gain.view(batch_size, *([1] * (batch.dim() - 1)))
            batch = self.representation.from_linear(self.representation.to_linear(batch) * gain)
        return batch

    # -- resuming ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The random generator's state (a CPU uint8 tensor), for resuming exactly."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].to("cpu", torch.uint8))

    def __repr__(self) -> str:
        return (
            f"ExcerptSampler({self.num_tracks} tracks, {self.total_frames} frames, stems={self.num_stems}, "
            f"window={self.window.input_frames}->{self.window.output_frames}, device={self.device}, "
            f"loudness={self.loudness})"
        )


