"""How to separate: :class:`EngineOptions`, validated once, when they are made.

No torch here: the command line builds and checks them before anything slow is loaded. Everything
downstream (the pipeline, the streaming separator, the window plan) takes them as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..errors import SepkitError
from .defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_OVERLAP,
    DEFAULT_PRECISION,
    check_precision,
)
from .recombine import SILENCE_DB

ChannelMode = Literal["per-channel", "downmix"]
CHANNEL_MODES: tuple[str, ...] = ("per-channel", "downmix")


def check_overlap(overlap: float) -> float:
    """The one check of a window overlap: a fraction in [0, 1)."""
    overlap = float(overlap)
    if not (0.0 <= overlap < 1.0) or math.isnan(overlap):
        raise SepkitError(f"overlap must be in [0, 1) (0: the paper's non-overlapping windows), got {overlap}")
    return overlap


@dataclass(frozen=True)
class EngineOptions:
    """How to separate; every field is checked here, once.

    ``overlap``: fraction of each output window shared with the next (0: the paper's layout).
    ``batch_size``: windows per forward pass. ``wiener``: apply the soft-mask Wiener post-filter
    (:mod:`sepkit.separation.wiener`). ``channel_mode``: for a mono model and a multichannel input,
    ``per-channel`` separates every channel on its own (as a batch; stereo stays stereo) and
    ``downmix`` separates the mean of the channels and writes it to every channel; ``None`` takes the
    model's own setting (metadata key ``channel_mode``, else per-channel). ``chunk_seconds``: length
    of the chunks a long input is cut into (the result does not depend on it). ``precision``: the
    separator's arithmetic, ``fp32``, ``bf16`` or ``auto`` (bf16 where the device has fast bf16, see
    :mod:`sepkit.separation.precision`).

    After the model (:mod:`sepkit.separation.recombine`): ``high_band``: what happens to what the
    model does not hear, ``drop`` (the model's own estimates: the default here, and what
    ``sepkit evaluate`` scores), ``share`` (the stems add up to the input: the band above the model's
    Nyquist frequency shared out by each source's top-octave power, the rest of the residual by
    power; the default of ``sepkit separate`` and :func:`sepkit.separate`) or a source name (that
    source gets the whole high band). ``two_stems``: a source name, to get that source and the input
    minus it. ``silence_db``: input below this level (RMS per 10 ms, dBFS) gives silent stems (None:
    off). ``shifts``: test-time augmentation, the average of that many passes over the input delayed
    by random fractions of a window (1: one plain pass); ``seed`` picks the delays.

    What depends on the model (``wiener`` needs a magnitude spectrogram, ``two_stems`` and a
    source-named ``high_band`` need that source) is checked when the options meet it:
    :func:`sepkit.separation.engine.check_compatible`.
    """

    overlap: float = DEFAULT_OVERLAP
    batch_size: int = DEFAULT_BATCH_SIZE
    wiener: bool = False
    channel_mode: ChannelMode | None = None
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS
    precision: str = DEFAULT_PRECISION
    high_band: str = "drop"
    two_stems: str | None = None
    silence_db: float | None = SILENCE_DB
    shifts: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        check_overlap(self.overlap)
        check_precision(self.precision)
        if isinstance(self.shifts, bool) or not isinstance(self.shifts, int) or self.shifts < 1:
            raise SepkitError(f"shifts must be a whole number of passes, at least 1, got {self.shifts!r}")
        if self.silence_db is not None and not (-200.0 <= float(self.silence_db) <= 0.0):
            raise SepkitError(f"silence_db must be between -200 and 0 dBFS (or None), got {self.silence_db}")
        if not isinstance(self.high_band, str) or not self.high_band:
            raise SepkitError(f"high_band must be share, drop or a source name, got {self.high_band!r}")
        if int(self.batch_size) < 1:
            raise SepkitError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.channel_mode is not None and self.channel_mode not in CHANNEL_MODES:
            raise SepkitError(f"channel_mode must be one of {', '.join(CHANNEL_MODES)}, got {self.channel_mode!r}")
        if not (self.chunk_seconds > 0) or math.isinf(self.chunk_seconds):
            raise SepkitError(f"chunk_seconds must be a positive number, got {self.chunk_seconds}")
