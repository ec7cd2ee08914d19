"""Contract suite for critics: what the divergences and the trainer rely on.

Plugin authors call :func:`check_critic` from their own tests::

    from sepkit.testing.critic import check_critic

    def test_my_critic_contract():
        check_critic(MyCritic, {"width": 8}, input_shape=(1, 33, 16))

Every broken promise raises an ``AssertionError`` whose message names it.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..critic import Critic
from ..device import device_of
from .common import check_independent_examples, check_parameter_gradients
from .separator import expect_shape_error


def build_critic(
    critic: Critic | type[Critic], config: Any = None, *, input_shape: tuple[int, int, int]
) -> Critic:
    """``critic`` itself when it is an instance, else the class built from ``config``."""
    if isinstance(critic, Critic):
        return critic
    assert isinstance(critic, type) and issubclass(critic, Critic), (
        f"expected a sepkit.critic.Critic subclass or instance, got {critic!r}"
    )
    return critic(config, input_shape=input_shape)


def check_critic(
    critic: Critic | type[Critic],
    config: Any = None,
    *,
    input_shape: tuple[int, int, int] = (1, 33, 16),
    batch_size: int = 3,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> Critic:
    """Check the critic contract; return the critic that was checked.

    ``critic`` is a class (built from ``config`` and ``input_shape``) or an instance (its own
    ``input_shape`` is used). ``device`` defaults to the device of its parameters; an instance is
    moved there.

    Checked: one finite score per example (``[B]``, on the input's device, with its dtype), each
    depending on its own example only (in eval mode); the gradient of the scores with respect to the
    input exists, is finite, not all zero and has a finite norm per example, and a gradient penalty
    built from it (``create_graph=True``, as Wasserstein-GP does) back-propagates finite gradients to
    every weight (parameters of 2 or more dims); the plain score gives every parameter a finite
    gradient; bad input (wrong rank, channels, bins, frames) raises a one-line
    :class:`sepkit.errors.ShapeError`.
    """
    model = build_critic(critic, config, input_shape=input_shape)
    name = type(model).__name__
    device = torch.device(device) if device is not None else device_of(model)
    model.to(device)
    shape = tuple(model.input_shape)
    assert len(shape) == 3 and all(isinstance(s, int) and s >= 1 for s in shape), (
        f"{name}.input_shape must be three positive ints (channels, bins, frames), got {shape!r}"
    )
    if not isinstance(critic, Critic):
        assert shape == tuple(input_shape), f"{name} was built for input_shape {input_shape} but reports {shape}"

    generator = torch.Generator().manual_seed(seed)
    features = torch.rand(batch_size, *shape, generator=generator).to(device)
    untouched = features.clone()

    scores = model(features)
    assert isinstance(scores, torch.Tensor), f"{name}.forward returned {type(scores).__name__}, not a tensor"
    assert tuple(scores.shape) == (batch_size,), (
        f"{name} returned scores of shape {list(scores.shape)}; expected one score per example, [{batch_size}]"
    )
    assert scores.device == features.device, (
        f"{name} returned scores on {scores.device}, input was on {features.device}"
    )
    assert scores.dtype == features.dtype, f"{name} returned dtype {scores.dtype} for input of dtype {features.dtype}"
    assert bool(torch.isfinite(scores).all()), f"{name} returned NaN or infinite scores for finite input"
    assert torch.equal(features, untouched), f"{name}.forward modified its input in place"

    check_parameter_gradients(model, lambda: model(features).mean(), name, "its mean score")
    _check_gradient_penalty(model, features, name)
    check_independent_examples(model, features, name)
    _check_bad_inputs(model, features, name)
    return model


def _check_gradient_penalty(model: Critic, features: torch.Tensor, name: str) -> None:
    """The Wasserstein-GP critic loss differentiates the input gradient's norm (double backward).

    Only weights (parameters of 2 or more dims) must receive a gradient from it: a bias that merely
    shifts the score does not change the input gradient.
    """

    def penalty() -> torch.Tensor:
        points = features.detach().clone().requires_grad_(True)
        scores = model(points)
        (grad,) = torch.autograd.grad(scores.sum(), points, create_graph=True, allow_unused=True)
        assert grad is not None, f"{name}: the score does not depend on the input (no input gradient)"
        assert grad.shape == points.shape, (
            f"{name}: input gradient has shape {list(grad.shape)}, input {list(points.shape)}"
        )
        assert bool(torch.isfinite(grad).all()), (
            f"{name}: the gradient of the score with respect to the input is not finite"
        )
        assert bool((grad != 0).any()), f"{name}: the score does not depend on the input (zero input gradient)"
        norms = grad.flatten(1).norm(dim=1)
        assert bool(torch.isfinite(norms).all()), f"{name}: input-gradient norms are not finite: {norms.tolist()}"
        # Two-sided so that the penalty has a gradient whatever the norms are.
        return ((norms - 1.0) ** 2).mean()

    check_parameter_gradients(model, penalty, name, "a gradient penalty (double backward)", weights_only=True)


def _check_bad_inputs(model: Critic, features: torch.Tensor, name: str) -> None:
    b, c, f, t = features.shape
    bad: list[tuple[str, Callable[[], torch.Tensor], int | None]] = [
        ("a 3-D tensor (no batch axis)", lambda: features[0], None),
        (f"{c + 1} channels instead of {c}", lambda: features.new_zeros(b, c + 1, f, t), c),
        (f"{f + 1} bins instead of {f}", lambda: features.new_zeros(b, c, f + 1, t), f),
        (f"{t + 1} frames instead of {t}", lambda: features.new_zeros(b, c, f, t + 1), t),
    ]
    for what, make, expected in bad:
        expect_shape_error(model, make(), f"{name} given {what}", expected)
