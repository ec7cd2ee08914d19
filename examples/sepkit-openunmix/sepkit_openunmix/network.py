"""One Open-Unmix target network, written from the paper's description and the published shapes.

Open-Unmix (Stöter, Uhlich, Liutkus and Mitsufuji, JOSS 2019) estimates one source with one network:

  linear magnitudes [B, C, F, T]
  -> keep the first ``max_bin`` bins, shift and scale them with learned per-bin vectors
  -> per frame: dense (C * max_bin -> H, no bias), batch norm, tanh
  -> a stacked LSTM over the frames (bidirectional: H / 2 units per direction)
  -> the LSTM output concatenated with its input (2H), dense to H, batch norm, ReLU
  -> dense to C * F (every bin again), batch norm, learned per-bin output scale and offset
  -> ReLU: a non-negative mask, multiplied with the input magnitudes

The module and parameter names are those of Open-Unmix's state dicts (``fc1``, ``bn1``, ``lstm``,
``fc2``, ``bn2``, ``fc3``, ``bn3``, ``input_mean``, ``input_scale``, ``output_scale``,
``output_mean``), so a published checkpoint loads into it unchanged. As there, ``input_mean`` holds
the *negated* mean and ``input_scale`` the *reciprocal* of the scale (the input is
``(x + input_mean) * input_scale``), and ``output_mean`` starts at one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class UnmixNetwork(nn.Module):
    """``[B, C, F, T]`` linear magnitudes -> ``[B, C, F, T]`` magnitudes of one source."""

    def __init__(
        self,
        *,
        num_bins: int,
        max_bin: int,
        channels: int,
        hidden_size: int,
        layers: int,
        unidirectional: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.num_bins = num_bins
        self.max_bin = max_bin
        self.channels = channels
        self.hidden_size = hidden_size
        self.fc1 = nn.Linear(max_bin * channels, hidden_size, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden_size)
        self.lstm = nn.LSTM(
            input_size=hidden_size,
            hidden_size=hidden_size if unidirectional else hidden_size // 2,
            num_layers=layers,
            bidirectional=not unidirectional,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.fc2 = nn.Linear(2 * hidden_size, hidden_size, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden_size)
        self.fc3 = nn.Linear(hidden_size, num_bins * channels, bias=False)
        self.bn3 = nn.BatchNorm1d(num_bins * channels)
        self.input_mean = nn.Parameter(torch.zeros(max_bin))
        self.input_scale = nn.Parameter(torch.ones(max_bin))
        self.output_scale = nn.Parameter(torch.ones(num_bins))
        self.output_mean = nn.Parameter(torch.ones(num_bins))

    def forward(self, magnitudes: torch.Tensor, keep: slice = slice(None)) -> torch.Tensor:
        """The source's magnitudes at the frames ``keep`` (every frame still feeds the LSTM).

        Cutting the frames right after the LSTM spares the two dense output layers the context
        frames, which a windowed separator throws away anyway.
        """
        batch, channels, _, _ = magnitudes.shape
        frames = magnitudes.permute(0, 3, 1, 2)  # [B, T, C, F]: one feature vector per frame
        steps = frames.shape[1]
        x = (frames[..., : self.max_bin] + self.input_mean) * self.input_scale
        x = self.bn1(self.fc1(x.reshape(batch * steps, channels * self.max_bin)))
        x = torch.tanh(x).reshape(batch, steps, self.hidden_size)
        recurrent, _ = self.lstm(x)
        x = torch.cat([x, recurrent], dim=-1)[:, keep]
        kept = x.shape[1]
        x = F.relu(self.bn2(self.fc2(x.reshape(batch * kept, 2 * self.hidden_size))))
        x = self.bn3(self.fc3(x)).reshape(batch, kept, channels, self.num_bins)
        mask = F.relu(x * self.output_scale + self.output_mean)
        return (mask * frames[:, keep]).permute(0, 2, 3, 1)
