"""Random feature excerpts with the separator's context, drawn on the training device.

:class:`ExcerptDraws` is what every sampler shares (the draws, the augmentation, the resumable
state); :class:`ExcerptSampler` keeps every track's features resident on the device (the fast path,
``data.residency = "features"``) and :class:`~sepkit.data.streaming.StreamingSampler` keeps only
waveforms, in the audio cache on disk, and encodes each batch (``"stream"``).

In the resident sampler every track is encoded once; its features get ``window.context_before`` zero frames in front and
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

import abc
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import SepkitError, ShapeError
from ..representation import Representation
from ..separator import Window
from .tracks import TrackAudio

_DRAW_RANGE = 2**62


class ExcerptDraws(abc.ABC):
    """What every excerpt sampler draws, and so the statistics they share: a track uniformly at
    random, a start uniformly among those whose output region lies inside the track, and with a
    ``loudness`` range one gain per example from U(low, high). The draws come from one generator on
    ``draw_device`` whose state is the sampler's whole resumable state.

    ``tracks`` are ``[S, C, L]`` waveforms (numpy, torch or :class:`~sepkit.data.tracks.TrackAudio`),
    all with the same ``S`` and ``C``. Tracks too short for one output window are left out with a
    warning naming them (``names`` gives their names); none left is a :class:`ShapeError`.

    Subclasses say what they keep of the selected tracks in :meth:`_prepare`, and whether they draw
    on the training ``device`` (``draws_on_device``) or on the CPU.
    """

    #: Draw from a generator on the training device (else on the CPU, whatever the device).
    draws_on_device = True

    def __init__(
        self,
        tracks: Sequence[torch.Tensor | np.ndarray | TrackAudio],
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
        self.loudness = tuple(loudness) if loudness is not None else None
        names = list(names) if names is not None else [f"track {i}" for i in range(len(tracks))]
        if len(names) != len(tracks):
            raise ValueError(f"{len(names)} names for {len(tracks)} tracks")
        self.tracks, self.frames, self.names, self.skipped = self._select(tracks, names)
        first = self.tracks[0].shape
        self.stems, self.channels = int(first[0]), int(first[1])
        self.device = torch.device(device)
        self.draw_device = self.device if self.draws_on_device else torch.device("cpu")
        lengths = torch.tensor(self.frames, dtype=torch.long)
        #: Valid starts per track: the output region [start + before, start + before + out) in the track.
        self._draw_starts = (lengths - window.output_frames + 1).to(self.draw_device)
        self.generator = torch.Generator(device=self.draw_device)
        self.generator.manual_seed(int(seed))
        self._prepare()

    @abc.abstractmethod
    def _prepare(self) -> None:
        """Keep what the sampler needs of ``self.tracks`` (called once they are selected)."""

    @classmethod
    def from_loaded(cls, tracks: Sequence[Any], representation: Representation, window: Window, **options: Any):
        """From :class:`~sepkit.data.loading.LoadedTrack` objects (their names label the warnings)."""
        return cls([t.audio for t in tracks], representation, window, names=[t.name for t in tracks], **options)

    def _select(
        self, tracks: Sequence[Any], names: list[str]
    ) -> tuple[list[Any], list[int], list[str], list[str]]:
        """Check the tracks' layout; keep those with at least one output window of frames."""
        kept: list[Any] = []
        frames: list[int] = []
        kept_names: list[str] = []
        skipped: list[str] = []
        shape: tuple[int, int] | None = None
        needed = self.window.output_frames
        for track, name in zip(tracks, names):
            if not isinstance(track, TrackAudio):
                track = torch.as_tensor(track)
            if len(track.shape) != 3:
                raise ShapeError(f"{name}: tracks are [stems, channels, samples], got {list(track.shape)}")
            if shape is None:
                shape = (track.shape[0], track.shape[1])
            elif (track.shape[0], track.shape[1]) != shape:
                raise ShapeError(
                    f"{name}: {track.shape[0]} stems x {track.shape[1]} channels, the first track has "
                    f"{shape[0]} x {shape[1]}; every track of a sampler needs the same layout"
                )
            try:
                count = self.representation.num_frames(int(track.shape[-1]))
            except ShapeError:  # shorter than one frame
                count = 0
            if count < needed:
                skipped.append(name)
                continue
            kept.append(track)
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
                stacklevel=4,
            )
        return kept, frames, kept_names, skipped

    # -- drawing ------------------------------------------------------------------------------
    @property
    def num_tracks(self) -> int:
        return len(self.frames)

    @property
    def total_frames(self) -> int:
        """Frames of real audio over all tracks (padding excluded)."""
        return int(sum(self.frames))

    @property
    def num_stems(self) -> int:
        return self.stems

    def draw(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Random ``(track indices, starts)`` for a batch, on ``draw_device``; a start counts frames
        from the track's first padded frame, so the output region begins at track frame ``start``."""
        tracks = torch.randint(self.num_tracks, (batch_size,), generator=self.generator, device=self.draw_device)
        # Uniform integers below each track's count: a 62-bit draw modulo the count (bias < 2^-40).
        draws = torch.randint(_DRAW_RANGE, (batch_size,), generator=self.generator, device=self.draw_device)
        starts = torch.remainder(draws, self._draw_starts[tracks])
        return tracks, starts

    def draw_gains(self, size: int) -> torch.Tensor | None:
        """One loudness factor per example from U(low, high), drawn after the positions from the same
        generator; ``None`` without a ``loudness`` range."""
        if self.loudness is None:
            return None
        low, high = self.loudness
        return torch.rand(size, generator=self.generator, device=self.draw_device) * (high - low) + low

    def apply_gains(self, batch: torch.Tensor, gains: torch.Tensor | None) -> torch.Tensor:
        """The loudness augmentation: linear magnitudes times one factor per example (``gains``, from
        :meth:`draw_gains`); unchanged when ``gains`` is ``None``."""
        if gains is None:
            return batch
        gain = gains.to(batch.device).view(batch.shape[0], *([1] * (batch.dim() - 1)))
        return self.representation.from_linear(self.representation.to_linear(batch) * gain)

    def augment(self, batch: torch.Tensor) -> torch.Tensor:
        """:meth:`apply_gains` with gains drawn now, one per example of ``batch``."""
        return self.apply_gains(batch, self.draw_gains(batch.shape[0]))

    @abc.abstractmethod
    def excerpts(self, tracks: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """``[B, S, C, F, input_frames]`` excerpts at the given positions (see :meth:`draw`), on the
        training device."""

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch of random excerpts ``[B, S, C, F, window.input_frames]`` on the device,
        loudness-augmented when the sampler was given a ``loudness`` range."""
        return self.augment(self.excerpts(*self.draw(batch_size)))

    # -- resuming ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The random generator's state (a CPU uint8 tensor), for resuming exactly."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["generator"].to("cpu", torch.uint8)
        if saved.numel() != self.generator.get_state().numel():
            raise SepkitError(
                f"the training state's sampler drew on another kind of device than this one ({self.draw_device.type}): "
                "resume with the device and data.residency of the run that wrote it"
            )
        self.generator.set_state(saved)


class ExcerptSampler(ExcerptDraws):
    """Draws ``[B, S, C, F, window.input_frames]`` excerpts from encoded tracks kept on the device.

    ``tracks`` are ``[S, C, L]`` waveforms (numpy, torch or :class:`~sepkit.data.tracks.TrackAudio`,
    read one track at a time), all with the same ``S`` and ``C``. Tracks too short for one output
    window are left out with a warning naming them (``names`` gives their names); none left is a
    :class:`~sepkit.errors.ShapeError`.
    """

    def _prepare(self) -> None:
        representation, window = self.representation, self.window
        before, after = window.context_before, window.context_after
        lengths = torch.tensor(self.frames, dtype=torch.long)
        padded = lengths + before + after
        offsets = torch.cumsum(padded, 0) - padded
        # One allocation; each track is encoded on the device and copied into its slot, so the
        # peak memory is the buffer plus one track's features.
        self.buffer = torch.zeros(
            (self.stems, self.channels, representation.num_bins, int(padded.sum())), dtype=torch.float32, device=self.device
        )
        for track, name, offset, length in zip(self.tracks, self.names, offsets.tolist(), self.frames):
            encoded = self._encode(track)
            if encoded.shape[-1] != length or encoded.shape[-2] != representation.num_bins:
                raise ShapeError(
                    f"{name}: the representation encoded {encoded.shape[-1]} frames x {encoded.shape[-2]} bins, "
                    f"its num_frames/num_bins promise {length} x {representation.num_bins}"
                )
            self.buffer[..., offset + before : offset + before + length] = encoded
        self.tracks = []  # the features are what is kept
        self.lengths = lengths.to(self.device)
        self.offsets = offsets.to(self.device)
        self.num_starts = self._draw_starts

    @torch.no_grad()
    def _encode(self, track: Any) -> torch.Tensor:
        """``[S, C, L]`` -> ``[S, C, F, T]`` features on the device (the stems are the batch)."""
        waveform = torch.from_numpy(track.materialise()) if isinstance(track, TrackAudio) else torch.as_tensor(track)
        features, _ = self.representation.encode(waveform.to(self.device, dtype=torch.float32))
        return features.to(torch.float32)

    def excerpts(self, tracks: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """``[B, S, C, F, input_frames]`` excerpts at the given positions (see :meth:`draw`)."""
        positions = self.offsets[tracks] + starts
        windows = self.buffer.unfold(-1, self.window.input_frames, 1)  # [S, C, F, N, W], a view
        return windows.movedim(3, 0)[positions]  # one gather

    def __repr__(self) -> str:
        return (
            f"ExcerptSampler({self.num_tracks} tracks, {self.total_frames} frames, stems={self.num_stems}, "
            f"window={self.window.input_frames}->{self.window.output_frames}, device={self.device}, "
            f"loudness={self.loudness})"
        )
