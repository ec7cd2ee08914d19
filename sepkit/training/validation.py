"""Validation at an epoch's end: the supervised loss and a cheap SDR of every validation track."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..evaluation.bss_eval import simple_sdr
from ..representation import Representation
from ..separation.windows import separate_features
from .data import ValidationTrack
from .losses import supervised_loss


class _Totals:
    """Frame-weighted loss and finite-SDR sums of one group of tracks (all, or one subset)."""

    def __init__(self, sources: int) -> None:
        self.loss = 0.0
        self.frames = 0
        self.sdr_sum = torch.zeros(sources, dtype=torch.float64)
        self.sdr_count = torch.zeros(sources, dtype=torch.float64)

    def add(self, loss: float, frames: int, sdr: torch.Tensor) -> None:
        finite = torch.isfinite(sdr)
        self.loss += loss
        self.frames += frames
        self.sdr_sum += torch.where(finite, sdr, torch.zeros_like(sdr))
        self.sdr_count += finite.double()

    def summary(self, sources: Sequence[str]) -> dict[str, Any]:
        sdr = (self.sdr_sum / self.sdr_count.clamp(min=1)).tolist()
        # The weights (frames, finite SDRs per source) let selection pool several subsets exactly.
        return {
            "loss": self.loss / max(self.frames, 1), "sdr": dict(zip(sources, sdr)),
            "frames": self.frames, "sdr_tracks": dict(zip(sources, self.sdr_count.long().tolist())),
        }


@torch.inference_mode()
def validate(
    network: torch.nn.Module, tracks: Sequence[ValidationTrack], representation: Representation,
    sources: Sequence[str], *, batch_size: int,
) -> dict[str, Any]:
    """Supervised loss over non-overlapping windows of every track, and a cheap SDR, over all
    tracks and per subset (``training.select_subset`` selects on one or several)."""
    network.eval()
    totals: dict[str | None, _Totals] = {}
    for track in tracks:
        estimates = separate_features(network, track.mixture, overlap=0.0, batch_size=batch_size)
        frames = track.mixture.shape[-1]
        loss = float(supervised_loss(estimates[None], track.targets[None])) * frames
        waveforms = representation.decode(estimates[None], track.context, track.length)[0]
        sdr = simple_sdr(track.references.double(), waveforms.double(), dims=(-2, -1)).cpu().double()
        for key in (None, track.subset):
            totals.setdefault(key, _Totals(len(sources))).add(loss, frames, sdr)
    result = totals.get(None, _Totals(len(sources))).summary(sources)
    result["tracks"] = len(tracks)
    result["subsets"] = {k: v.summary(sources) for k, v in totals.items() if k is not None}
    return result
