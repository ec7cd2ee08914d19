"""How an input's channels meet a model's channels: mono lanes, a downmix, or an upmix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SepkitError


@dataclass(frozen=True)
class ChannelLayout:
    """How an input's channels meet a model's channels.

    ``lanes``: the model sees ``[lanes, model_channels, n]`` (a mono model separates every input
    channel as one batch lane). ``resampled_channels``: channels resampled on the way in (1 after a
    downmix); ``separated_channels``: channels of the separated audio before the final upmix.
    """

    mode: str
    input_channels: int
    model_channels: int

    @classmethod
    def choose(cls, input_channels: int, model_channels: int, channel_mode: str) -> "ChannelLayout":
        if input_channels == model_channels:
            return cls("same", input_channels, model_channels)
        if model_channels == 1:
            return cls("downmix" if channel_mode == "downmix" else "per-channel", input_channels, 1)
        if input_channels == 1:
            return cls("upmix", 1, model_channels)
        raise SepkitError(
            f"the model separates {model_channels}-channel audio; an input with {input_channels} "
            f"channels can be neither split into mono lanes nor duplicated (give it mono or "
            f"{model_channels}-channel audio)"
        )

    @property
    def resampled_channels(self) -> int:
        return 1 if self.mode == "downmix" else self.input_channels

    @property
    def separated_channels(self) -> int:
        return 1 if self.mode in ("downmix", "upmix") else self.input_channels

    def before_resampling(self, block: np.ndarray) -> np.ndarray:
        """``[n, C_in]`` -> ``[n, resampled_channels]``."""
        if self.mode == "downmix":
            return block.mean(axis=1, keepdims=True, dtype=np.float32)
        return block

    def to_lanes(self, block: np.ndarray) -> np.ndarray:
        """``[n, resampled_channels]`` -> ``[lanes, model_channels, n]``."""
        if self.mode == "per-channel":
            return np.ascontiguousarray(block.T[:, None, :])
        if self.mode == "upmix":
            return np.ascontiguousarray(np.repeat(block.T[None], self.model_channels, axis=1))
        return np.ascontiguousarray(block.T[None])

    def from_lanes(self, sources: np.ndarray) -> np.ndarray:
        """``[lanes, N, model_channels, n]`` -> ``[N, separated_channels, n]``."""
        if self.mode == "per-channel":
            return sources[:, :, 0].transpose(1, 0, 2)
        if self.mode == "upmix":
            return sources[0].mean(axis=1, keepdims=True, dtype=np.float32)
        return sources[0]

    def to_output(self, sources: np.ndarray) -> np.ndarray:
        """``[N, separated_channels, n]`` -> ``[N, input_channels, n]``."""
        if self.separated_channels == self.input_channels:
            return sources
        return np.repeat(sources, self.input_channels, axis=1)
