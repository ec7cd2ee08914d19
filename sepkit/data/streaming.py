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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ShapeError
from ..representation import Representation
from ..separator import Window
from .sampler import ExcerptDraws
from ..component import trusted_values
from .tracks import StemPart, TrackAudio, assemble, is_identity


def _as_track_audio(track: Any) -> TrackAudio:
    """A waveform array as a :class:`TrackAudio` (one part per stem, gain 1, no clipping): assembling
    it reproduces the array exactly."""
    if isinstance(track, TrackAudio):
        return track
    array = np.ascontiguousarray(track.detach().cpu().numpy() if isinstance(track, torch.Tensor) else track, dtype=np.float32)
    stems, channels, length = array.shape
    return TrackAudio([[StemPart(array[s], 1.0)] for s in range(stems)], channels=channels, length=length, clip=False)


class StreamingSampler(ExcerptDraws):
    """Draws ``[B, S, C, F, window.input_frames]`` excerpts, encoding each batch on ``device``.

    ``tracks`` as for :class:`~sepkit.data.sampler.ExcerptSampler`; :class:`TrackAudio` tracks (a
    lazy load, :func:`~sepkit.data.loading.load_tracks` with ``lazy=True``) are read from the audio
    cache and never held in memory, arrays are read from memory.
    """

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
        super().__init__(
            tracks, representation, window, draw_device=torch.device("cpu"), seed=seed, loudness=loudness, names=names
        )
        self.device = torch.device(device)
        self.tracks = [_as_track_audio(t) for t in self.tracks]
        self.hop = representation.hop_length
        #: Frames of waveform read beyond each side of an excerpt's input frames.
        self.margin = representation.margin_frames
        self.segment_samples = (window.input_frames + 2 * self.margin) * self.hop
        self._frames = torch.tensor(self.frames, dtype=torch.long)
        groups: dict[tuple[Any, bool], int] = {}
        self._group = [groups.setdefault((t.signature, t.clip), len(groups)) for t in self.tracks]
        self._layouts = list(groups)
        self._pinned: list[torch.Tensor] = []
        self._copied: list[Any] = []
        self._next = 0

    # -- one batch ---------------------------------------------------------------------------
    def waveforms(self, tracks: torch.Tensor, starts: torch.Tensor) -> np.ndarray:
        """The excerpts' waveform segments ``[B, S, C, segment_samples]`` (host memory)."""
        batch = int(tracks.numel())
        out = self._host_buffer(batch)
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
            files = np.empty((len(indices), count, self.channels, self.segment_samples), dtype=np.float32)
        for row, (k, start) in enumerate(zip(indices, first_samples)):
            self.tracks[k].read_files(start, files[row])
        assemble(files, signature, clip, out=out)

    def _host_buffer(self, batch: int) -> np.ndarray:
        """Where a batch's waveforms are assembled: on CUDA one of two pinned buffers, reused once
        the copy out of it (issued a batch earlier) has finished."""
        shape = (batch, self.stems, self.channels, self.segment_samples)
        if self.device.type != "cuda":
            return np.empty(shape, dtype=np.float32)
        if not self._pinned or tuple(self._pinned[0].shape) != shape:
            self._pinned = [torch.empty(shape, dtype=torch.float32, pin_memory=True) for _ in range(2)]
            self._copied = [None, None]
        slot = self._next
        self._next = 1 - slot
        if self._copied[slot] is not None:
            self._copied[slot].synchronize()
        return self._pinned[slot].numpy()

    @torch.no_grad()
    def excerpts(self, tracks: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """``[B, S, C, F, input_frames]`` excerpts at the given positions (see :meth:`draw`)."""
        tracks, starts = tracks.cpu(), starts.cpu()
        host = self.waveforms(tracks, starts)
        batch, width = host.shape[0], self.window.input_frames
        waveform = torch.from_numpy(host).to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            event = torch.cuda.Event()
            event.record()
            self._copied[1 - self._next] = event
        with trusted_values():  # samples of loaded audio, whose values the loader checked
            features, _ = self.representation.encode(waveform.reshape(batch * self.stems, self.channels, self.segment_samples))
        if features.shape[-1] < self.margin + width:
            raise ShapeError(
                f"the representation encoded {features.shape[-1]} frames from {self.segment_samples} samples; "
                f"streaming needs at least {self.margin + width}"
            )
        features = features[..., self.margin : self.margin + width].to(torch.float32)
        frame = starts[:, None] - self.window.context_before + torch.arange(width)[None, :]  # track frame per column
        inside = (frame >= 0) & (frame < self._frames[tracks][:, None])
        features = features.reshape(batch, self.stems, self.channels, self.representation.num_bins, width)
        return torch.where(inside.to(self.device, non_blocking=True)[:, None, None, None, :], features, 0.0)

    def __repr__(self) -> str:
        return (
            f"StreamingSampler({self.num_tracks} tracks, {self.total_frames} frames, stems={self.num_stems}, "
            f"window={self.window.input_frames}->{self.window.output_frames}, device={self.device}, "
            f"loudness={self.loudness})"
        )
