"""The ``open-unmix`` separator: one :class:`UnmixNetwork` per source, run over windows of frames.

Open-Unmix runs its bidirectional LSTM over a whole track: in principle every output frame depends
on every input frame. sepkit's engine needs a finite window, so this separator declares one
honestly: ``context_frames`` on each side (only before, for a unidirectional model) of
``output_frames`` frames that it returns. Frames further away than the context do not reach the
output; how much that changes the result against a whole-track pass (the "seam cost") is measured
in ``benchmarks/bench_openunmix.py`` and stated in docs/pretrained.md. The windows run as a batch,
which on a CPU is also much faster than one long sequential LSTM pass.

``residual = true`` makes the last source the mixture minus the others (magnitudes, floored at 0),
as Open-Unmix's ``--residual`` does for e.g. vocals + accompaniment from a vocals network alone.
"""

from __future__ import annotations

import torch
from pydantic import Field, NonNegativeInt, PositiveInt, model_validator
from torch import nn

from sepkit import ComponentConfig, ConfigValues, SepkitError, Separator, TomlOptional, Window

from .network import UnmixNetwork

#: Frames of context on each side by default: about 5.9 s at 44.1 kHz with a hop of 1024.
DEFAULT_CONTEXT_FRAMES = 256
#: Frames returned per window by default: about 23.8 s at 44.1 kHz with a hop of 1024.
DEFAULT_OUTPUT_FRAMES = 1024


class OpenUnmixConfig(ComponentConfig):
    hidden_size: PositiveInt = Field(512, description="Width of the dense layers and of the LSTM (umxhq 512, umxl 1024).")
    nb_layers: PositiveInt = Field(3, description="Stacked LSTM layers.")
    unidirectional: bool = Field(False, description="A causal (one-direction) LSTM; the window then has no context after.")
    max_bin: TomlOptional[PositiveInt] = Field(
        None, description="Bins the network reads (the rest are still masked); false: all (umxhq/umxl: 1487, 16 kHz)."
    )
    dropout: float = Field(0.4, ge=0.0, lt=1.0, description="Dropout between LSTM layers while training.")
    residual: bool = Field(False, description="The last source is the mixture minus the others (no network of its own).")
    output_frames: PositiveInt = Field(DEFAULT_OUTPUT_FRAMES, description="Frames returned per window.")
    context_frames: NonNegativeInt = Field(
        DEFAULT_CONTEXT_FRAMES, description="Frames of context the LSTM sees on each side of the output."
    )

    @model_validator(mode="after")
    def _even_hidden_size(self) -> "OpenUnmixConfig":
        if not self.unidirectional and self.hidden_size % 2:
            raise ValueError(f"hidden_size {self.hidden_size} must be even for a bidirectional LSTM (half per direction)")
        return self


class OpenUnmix(Separator):
    """``[B, C, F, T_in]`` linear magnitudes -> ``[B, N, C, F, T_out]``; networks in ``targets`` (by source order)."""

    Config = OpenUnmixConfig
    config: OpenUnmixConfig

    def __init__(self, config: ConfigValues, *, num_sources: int, num_channels: int, num_bins: int) -> None:
        super().__init__(config, num_sources=num_sources, num_channels=num_channels, num_bins=num_bins)
        config = self.config
        max_bin = config.max_bin or num_bins
        if max_bin > num_bins:
            raise SepkitError(f"open-unmix: max_bin {max_bin} is above the representation's {num_bins} bins")
        if config.residual and num_sources < 2:
            raise SepkitError("open-unmix: residual = true needs at least two sources (the last is the residual)")
        self.max_bin = max_bin
        networks = num_sources - 1 if config.residual else num_sources
        self.targets = nn.ModuleList(
            UnmixNetwork(
                num_bins=num_bins,
                max_bin=max_bin,
                channels=num_channels,
                hidden_size=config.hidden_size,
                layers=config.nb_layers,
                unidirectional=config.unidirectional,
                dropout=config.dropout,
            )
            for _ in range(networks)
        )
        before = config.context_frames
        after = 0 if config.unidirectional else config.context_frames
        self._window = Window(
            input_frames=before + config.output_frames + after,
            output_frames=config.output_frames,
            context_before=before,
            context_after=after,
            input_bins=max_bin,
            output_bins=num_bins,
        )

    @property
    def window(self) -> Window:
        return self._window

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        self.check_input(mixture)
        w = self._window
        keep = slice(w.context_before, w.context_before + w.output_frames)
        estimates = [network(mixture, keep) for network in self.targets]
        if self.config.residual:
            rest = mixture[..., keep] - torch.stack(estimates, dim=1).sum(dim=1)
            estimates.append(rest.clamp_min(0.0))
        return torch.stack(estimates, dim=1)
