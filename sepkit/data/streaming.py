"""Random feature excerpts encoded per batch from waveforms that stay in the audio cache.

The resident sampler (:class:`~sepkit.data.sampler.ExcerptSampler`) encodes every track once and
keeps the features on the device: ``S x C x F x 4`` bytes per frame, about 30x the waveform for the
paper's STFT, which no device holds for a large corpus. :class:`StreamingSampler` keeps only the
tracks' plans (:class:`~sepkit.data.tracks.TrackAudio`: the decoded files of the audio cache on
disk) and per batch reads each excerpt's samples, assembles the stems, moves the batch to the
training device and encodes it there with one ``Representation.encode`` call.

Same statistics as the resident sampler, drawn by the same code (:class:`ExcerptDraws`): with the
same seed on the same kind of generator device it draws the same tracks, starts and gains, and its
excerpts equal the resident sampler's up to float rounding. Each excerpt's waveform segment starts
``margin`` frames before its first input frame and ends ``margin`` frames after its last (``margin``
covers the samples one frame depends on, :attr:`~sepkit.representation.Representation.margin_frames`), so every
kept frame is computed from exactly the samples the whole-track encoding used; samples outside the
track are zeros and frames outside it are zeroed, as the resident sampler's padding.

The draws come from a CPU generator whatever the device: the positions are needed on the host to
read the files, so drawing them on a GPU would cost a synchronisation per batch.

Speed (``benchmarks/bench_streaming.py``, docs/performance.md): on a CPU a batch is read, encoded,
masked and augmented a few excerpts at a time (:data:`CHUNK_SAMPLES` of waveform), into buffers
that are reused, so that every intermediate stays in the CPU's cache and no fresh memory is
faulted in per batch (allocating and touching tens of MB per call cost more than the FFTs
themselves); on CUDA a batch is one chunk, encoded with one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ShapeError
from ..representation import Representation
from ..separator import Window
from ..component import trusted_values
from .sampler import ExcerptDraws
from .tracks import StemPart, TrackAudio, assemble, is_identity

#: Samples of waveform (over the stems and channels of its excerpts) that one CPU chunk reads and
#: encodes: small enough for the chunk's STFT and features to stay in a core's cache (the paper's
#: setting: 6 segments of 41,984 samples, two paired excerpts or six mono ones); at least one
#: excerpt per chunk.
CHUNK_SAMPLES = 1 << 18


def _as_track_audio(track: Any) -> TrackAudio:
    """A waveform array as a :class:`TrackAudio` (one part per stem, gain 1, no clipping): assembling
    it reproduces the array exactly."""
    if isinstance(track, TrackAudio):
        return track
    array = np.ascontiguousarray(track.detach().cpu().numpy() if isinstance(track, torch.Tensor) else track, dtype=np.float32)
    stems, channels, length = array.shape
    return TrackAudio([[StemPart(array[s], 1.0)] for s in range(stems)], channels=channels, length=length, clip=False)


def _empty_in_layout(part: torch.Tensor, batch: int) -> torch.Tensor:
    """An empty ``[batch, ...]`` tensor shaped as ``part`` past its first dimension and laid out as it
    in memory (an STFT's features come bins-innermost, as a whole batch encoded at once would
    return them): copying the chunks in is then a plain copy, not a transposition."""
    order = sorted(range(1, part.dim()), key=lambda d: -part.stride(d))  # outermost first
    empty = part.new_empty((batch, *(part.shape[d] for d in order)))
    return empty.permute(0, *(1 + order.index(d) for d in range(1, part.dim())))


class StreamingSampler(ExcerptDraws):
    """Draws ``[B, S, C, F, window.input_frames]`` excerpts, encoding each batch on ``device``.

    ``tracks`` as for :class:`~sepkit.data.sampler.ExcerptSampler`; :class:`TrackAudio` tracks (a
    lazy load, :func:`~sepkit.data.loading.load_tracks` with ``lazy=True``) are read from the audio
    cache and never held in memory, arrays are read from memory.
    """

    draws_on_device = False

    def _prepare(self) -> None:
        self.tracks = [_as_track_audio(t) for t in self.tracks]
        self.hop = self.representation.hop_length
        #: Frames of waveform read beyond each side of an excerpt's input frames.
        self.margin = self.representation.margin_frames
        self.segment_samples = (self.window.input_frames + 2 * self.margin) * self.hop
        #: Excerpts read and encoded together on a CPU (a whole batch on CUDA).
        self.chunk = max(1, CHUNK_SAMPLES // (self.stems * self.channels * self.segment_samples))
        self._frames = torch.tensor(self.frames, dtype=torch.long)
        groups: dict[tuple[Any, bool], int] = {}
        self._group = [groups.setdefault((t.signature, t.clip), len(groups)) for t in self.tracks]
        self._layouts = list(groups)
        self._scratch: dict[str, np.ndarray] = {}
        self._pinned: list[torch.Tensor] = []
        self._copied: list[Any] = []
        self._next = 0

    # -- one batch ---------------------------------------------------------------------------
    def sample(self, batch_size: int) -> torch.Tensor:
        """As :meth:`ExcerptDraws.sample` (the same draws in the same order), with the loudness
        augmentation applied chunk by chunk as the excerpts are encoded."""
        tracks, starts = self.draw(batch_size)
        return self._excerpts(tracks, starts, self.draw_gains(batch_size))

    def excerpts(self, tracks: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """``[B, S, C, F, input_frames]`` excerpts at the given positions (see :meth:`draw`)."""
        return self._excerpts(tracks, starts, None)

    @torch.no_grad()
    def _excerpts(self, tracks: torch.Tensor, starts: torch.Tensor, gains: torch.Tensor | None) -> torch.Tensor:
        tracks, starts = tracks.cpu(), starts.cpu()
        batch, width = int(tracks.numel()), self.window.input_frames
        frame = starts[:, None] - self.window.context_before + torch.arange(width)[None, :]  # track frame per column
        inside = (frame >= 0) & (frame < self._frames[tracks][:, None])
        if batch == 0:
            return torch.empty((0, self.stems, self.channels, self.representation.num_bins, width), device=self.device)
        if self.device.type != "cpu":  # one chunk: one host-to-device copy, one encode
            shape = (batch, self.stems, self.channels, self.segment_samples)
            host = self._pinned_buffer(shape) if self.device.type == "cuda" else np.empty(shape, dtype=np.float32)
            return self._chunk(tracks, starts, inside, gains, host)
        out = None
        for low in range(0, batch, self.chunk):
            high = min(low + self.chunk, batch)
            host = self._buffer("waveform", (high - low, self.stems, self.channels, self.segment_samples))
            part = self._chunk(tracks[low:high], starts[low:high], inside[low:high], None if gains is None else gains[low:high], host)
            if out is None:
                out = _empty_in_layout(part, batch)
            out[low:high] = part
        return out

    def _chunk(
        self, tracks: torch.Tensor, starts: torch.Tensor, inside: torch.Tensor, gains: torch.Tensor | None, host: np.ndarray
    ) -> torch.Tensor:
        """Excerpts ``[k, S, C, F, input_frames]`` of ``k`` positions, their waveforms read into ``host``
        ``[k, S, C, segment_samples]``; frames outside the track zeroed, then ``gains`` applied (in the
        order of the resident sampler: padding, then the augmentation). For a representation whose
        features are spectrogram magnitudes (``Representation.magnitude_spectrogram``) the gains
        scale the waveform before it is encoded: the same features to float rounding."""
        count, width = int(tracks.numel()), self.window.input_frames
        self.waveforms(tracks, starts, out=host)
        waveform = torch.from_numpy(host).to(self.device, non_blocking=self.device.type == "cuda")
        if self.device.type == "cuda":
            event = torch.cuda.Event()
            event.record()
            self._copied[1 - self._next] = event
        if gains is not None and self.representation.magnitude_spectrogram:
            # The magnitudes of a spectrogram, linear in the waveform, scale with it: the loudness
            # augmentation applied to the waveform, without expm1 and log1p passes over the features.
            waveform.mul_(gains.to(self.device).view(count, 1, 1, 1))
            gains = None
        with trusted_values():  # samples of loaded audio, whose values the loader checked
            features, _ = self.representation.encode(waveform.reshape(count * self.stems, self.channels, self.segment_samples))
        if features.shape[-1] < self.margin + width:
            raise ShapeError(
                f"the representation encoded {features.shape[-1]} frames from {self.segment_samples} samples; "
                f"streaming needs at least {self.margin + width}"
            )
        features = features[..., self.margin : self.margin + width].to(torch.float32)
        features = features.reshape(count, self.stems, self.channels, self.representation.num_bins, width)
        if not bool(inside.all()):  # an excerpt reaching into the padding: rare, decided on the host
            features = torch.where(inside.to(self.device, non_blocking=True)[:, None, None, None, :], features, 0.0)
        return self.apply_gains(features, gains)

    def waveforms(self, tracks: torch.Tensor, starts: torch.Tensor, out: np.ndarray | None = None) -> np.ndarray:
        """The excerpts' waveform segments ``[B, S, C, segment_samples]`` (host memory; into ``out``
        when given)."""
        batch = int(tracks.numel())
        if out is None:
            out = np.empty((batch, self.stems, self.channels, self.segment_samples), dtype=np.float32)
        first_samples = ((starts - self.window.context_before - self.margin) * self.hop).tolist()
        indices = tracks.tolist()
        if len(self._layouts) == 1:
            self._assemble(indices, first_samples, self._layouts[0], out)
            return out
        for group, layout in enumerate(self._layouts):  # tracks whose stems derive differently
            members = [b for b, k in enumerate(indices) if self._group[k] == group]
            if members:
                part = np.empty((len(members), *out.shape[1:]), dtype=np.float32)
                self._assemble([indices[b] for b in members], [first_samples[b] for b in members], layout, part)
                out[members] = part
        return out

    def _assemble(self, indices: list[int], first_samples: list[int], layout: tuple[Any, bool], out: np.ndarray) -> None:
        signature, clip = layout
        if is_identity(signature):  # the files are the stems: read straight into the batch
            files = out
        else:
            count = 1 + max((index for parts in signature for index, _ in parts), default=0)
            files = self._buffer("files", (len(indices), count, self.channels, self.segment_samples))
        for row, (k, start) in enumerate(zip(indices, first_samples)):
            self.tracks[k].read_files(start, files[row])
        assemble(files, signature, clip, out=out)

    def _buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A host buffer reused from chunk to chunk (the first ``shape[0]`` rows of one allocated for
        a whole chunk), so its pages are faulted in once, not per batch."""
        rows = max(shape[0], self.chunk)
        buffer = self._scratch.get(name)
        if buffer is None or buffer.shape[1:] != shape[1:] or buffer.shape[0] < rows:
            buffer = self._scratch[name] = np.empty((rows, *shape[1:]), dtype=np.float32)
        return buffer[: shape[0]]

    def _pinned_buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        """Where a batch's waveforms are assembled on CUDA: one of two pinned buffers, reused once
        the copy out of it (issued a batch earlier) has finished."""
        if not self._pinned or tuple(self._pinned[0].shape) != shape:
            self._pinned = [torch.empty(shape, dtype=torch.float32, pin_memory=True) for _ in range(2)]
            self._copied = [None, None]
        slot = self._next
        self._next = 1 - slot
        if self._copied[slot] is not None:
            self._copied[slot].synchronize()
        return self._pinned[slot].numpy()

    def __repr__(self) -> str:
        return (
            f"StreamingSampler({self.num_tracks} tracks, {self.total_frames} frames, stems={self.num_stems}, "
            f"window={self.window.input_frames}->{self.window.output_frames}, device={self.device}, "
            f"loudness={self.loudness})"
        )
