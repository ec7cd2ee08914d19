"""Sample-rate conversion with soxr, whole-array or streamed block by block (bit-identical results)."""

from __future__ import annotations

import numpy as np
import soxr

#: soxr quality used everywhere in separation.
QUALITY = "HQ"


def resample(waveform: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``[C, L]`` float32 at ``from_rate`` -> ``[C, L']`` float32 at ``to_rate`` (a copy when rates differ)."""
    if int(from_rate) == int(to_rate):
        return np.ascontiguousarray(waveform, dtype=np.float32)
    frames_first = np.ascontiguousarray(np.asarray(waveform, dtype=np.float32).T)
    out = soxr.resample(frames_first, int(from_rate), int(to_rate), quality=QUALITY)
    return np.ascontiguousarray(out.reshape(-1, waveform.shape[0]).T)


class StreamResampler:
    """Resamples ``[n, C]`` blocks one after the other; the concatenated output equals :func:`resample`
    of the concatenated input (soxr keeps the filter state between blocks)."""

    def __init__(self, from_rate: int, to_rate: int, channels: int) -> None:
        self.channels = int(channels)
        self._stream = (
            None
            if int(from_rate) == int(to_rate)
            else soxr.ResampleStream(int(from_rate), int(to_rate), self.channels, dtype="float32", quality=QUALITY)
        )

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        block = np.ascontiguousarray(block, dtype=np.float32).reshape(-1, self.channels)
        if self._stream is None:
            return block
        return self._stream.resample_chunk(block, last=last).reshape(-1, self.channels)
