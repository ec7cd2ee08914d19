"""Magnitude STFT representation (placeholder until the components issue lands)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from sepkit.component import ComponentConfig
from sepkit.errors import NotImplementedComponentError
from sepkit.representation import Representation


class MagnitudeSTFTConfig(ComponentConfig):
    n_fft: PositiveInt = Field(512, description="FFT size (bins = n_fft // 2 + 1).")
    hop_length: PositiveInt = Field(256, description="Samples between frames.")
    window: Literal["hann", "hamming", "blackman", "rectangular"] = Field("hann", description="Analysis window.")
    center: bool = Field(True, description="Centre frames (zero padding of n_fft // 2 at both ends).")
    normalisation: Literal["log1p", "none"] = Field("log1p", description="log(1 + magnitude), or raw magnitudes.")


class MagnitudeSTFT(Representation):
    Config = MagnitudeSTFTConfig

    def __init__(self, config, *, sample_rate):
        super().__init__(config, sample_rate=sample_rate)
        raise NotImplementedComponentError("magnitude-stft is not implemented yet")
