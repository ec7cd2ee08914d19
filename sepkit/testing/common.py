"""Checks shared by the separator and critic contract suites."""

from __future__ import annotations

from typing import Callable

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


def check_parameter_gradients(
    model: nn.Module,
    loss: Callable[[], torch.Tensor],
    name: str,
    what: str,
    *,
    weights_only: bool = False,
) -> None:
    """Every parameter (with ``weights_only``: every parameter of 2 or more dims) gets a finite
    gradient from ``loss``, and not all of them are zero."""
    model.zero_grad(set_to_none=True)
    try:
        loss().backward()
    except AssertionError:
        raise
    except RuntimeError as error:
        raise AssertionError(f"{name}: back-propagating {what} failed: {error}") from error
    missing, broken = [], []
    total = 0.0
    for pname, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.grad is None:
            if not weights_only or parameter.dim() >= 2:
                missing.append(pname)
        elif not bool(torch.isfinite(parameter.grad).all()):
            broken.append(pname)
        else:
            total += float(parameter.grad.abs().sum())
    model.zero_grad(set_to_none=True)
    assert not missing, f"{name} parameters got no gradient from {what}: {', '.join(missing)}"
    assert not broken, f"{name} parameters got NaN or infinite gradients from {what}: {', '.join(broken)}"
    if any(p.requires_grad for p in model.parameters()):
        assert total > 0.0, f"{name}: every parameter gradient from {what} is zero"
