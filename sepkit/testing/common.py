"""Checks shared by the separator and critic contract suites."""

from __future__ import annotations

import torch
from torch import nn


def check_independent_examples(model: nn.Module, inputs: torch.Tensor, name: str) -> None:
    """In eval mode, example 1 of a batch must get the same output alone as in the batch."""
    if inputs.shape[0] < 2:
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            batched = model(inputs)
            alone = model(inputs[1:2])
    finally:
        model.train(was_training)
    scale = float(batched.abs().max()) + 1e-6
    assert torch.allclose(batched[1:2], alone, rtol=1e-4, atol=1e-5 * scale), (
        f"{name} in eval mode gives example 1 a different output alone than in a batch: "
        "examples must not influence each other"
    )
