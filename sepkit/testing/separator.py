"""Contract suite for separators: what the trainer and the separation engine rely on.

Plugin authors call :func:`check_separator` from their own tests::

    from sepkit.testing.separator import check_separator

    def test_my_separator_contract():
        check_separator(MySeparator, {"layers": 2}, num_sources=3, num_channels=2, num_bins=33)

Every broken promise raises an ``AssertionError`` whose message names it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

from ..device import device_of
from ..errors import ShapeError
from ..separator import Separator, Window
from .common import check_independent_examples, check_parameter_gradients


def build_separator(
    separator: Separator | type[Separator],
    config: Any = None,
    *,
    num_sources: int,
    num_channels: int,
    num_bins: int,
) -> Separator:
    """``separator`` itself when it is an instance, else the class built from ``config``."""
    if isinstance(separator, Separator):
        return separator
    assert isinstance(separator, type) and issubclass(separator, Separator), (
        f"expected a sepkit.separator.Separator subclass or instance, got {separator!r}"
    )
    return separator(config, num_sources=num_sources, num_channels=num_channels, num_bins=num_bins)


def check_separator(
    separator: Separator | type[Separator],
    config: Any = None,
    *,
    num_sources: int = 2,
    num_channels: int = 1,
    num_bins: int = 33,
    batch_size: int = 2,
    device: str | torch.device | None = None,
    nan_is_error: bool = False,
    seed: int = 0,
) -> Separator:
    """Check the separator contract; return the separator that was checked.

    ``separator`` is a class (built from ``config`` and the sizes given) or an instance (its own
    sizes are used). ``device`` defaults to the device of its parameters; an instance is moved there.
    ``nan_is_error`` also requires a :class:`ShapeError` for NaN features.

    Checked: the declared :class:`Window` is consistent and matches the output; the output is
    ``[B, N, C, F, T_out]`` on the input's device, with the input's dtype, finite, and each example
    depends on its own input only (in eval mode); the input is not modified; every parameter gets a
    finite gradient; bad input (wrong rank, channels, bins, too few frames, an integer dtype) raises a
    one-line :class:`ShapeError`.
    """
    model = build_separator(
        separator, config, num_sources=num_sources, num_channels=num_channels, num_bins=num_bins
    )
    name = type(model).__name__
    device = torch.device(device) if device is not None else device_of(model)
    model.to(device)

    window = _check_window(model, name)
    n, c, f = model.num_sources, model.num_channels, model.num_bins
    if not isinstance(separator, Separator):
        assert (n, c, f) == (num_sources, num_channels, num_bins), (
            f"{name} was built for {num_sources} sources, {num_channels} channels, {num_bins} bins "
            f"but reports num_sources={n}, num_channels={c}, num_bins={f}"
        )

    generator = torch.Generator().manual_seed(seed)
    mixture = torch.rand(batch_size, c, f, window.input_frames, generator=generator).to(device)
    untouched = mixture.clone()

    output = model(mixture)
    _check_output(output, mixture, (batch_size, n, c, f, window.output_frames), name)
    assert torch.equal(mixture, untouched), f"{name}.forward modified its input in place"

    weights = torch.randn(output.shape, generator=generator).to(output.device)
    check_parameter_gradients(model, lambda: (output * weights).sum(), name, "a weighted sum of its output")
    check_independent_examples(model, mixture, name)
    _check_bad_inputs(model, mixture, name, nan_is_error)
    return model


def _check_output(output: object, mixture: torch.Tensor, expected: tuple[int, ...], name: str) -> None:
    """The declared shape ``[batch, sources, channels, bins, window.output_frames]``, the input's
    device and dtype, finite values."""
    assert isinstance(output, torch.Tensor), f"{name}.forward returned {type(output).__name__}, not a tensor"
    assert tuple(output.shape) == expected, (
        f"{name} output shape {list(output.shape)} does not match the declared "
        f"[batch, sources, channels, bins, window.output_frames] = {list(expected)}"
    )
    assert output.device == mixture.device, (
        f"{name} returned its output on {output.device}, input was on {mixture.device}"
    )
    assert output.dtype == mixture.dtype, f"{name} returned dtype {output.dtype} for input of dtype {mixture.dtype}"
    assert bool(torch.isfinite(output).all()), f"{name} returned NaN or infinite values for finite input"


def _check_window(model: Separator, name: str) -> Window:
    window = model.window
    assert isinstance(window, Window), f"{name}.window is {window!r}, not a sepkit.separator.Window"
    for field, value in dataclasses.asdict(window).items():
        least = 0 if field.startswith("context_") else 1
        assert isinstance(value, int) and value >= least, (
            f"{name}.window.{field} must be {'a non-negative' if least == 0 else 'a positive'} int, got {value!r}"
        )
    assert window.context_before + window.output_frames + window.context_after == window.input_frames, (
        f"{name}.window is inconsistent: {window}"
    )
    return window


def _check_bad_inputs(model: Separator, mixture: torch.Tensor, name: str, nan_is_error: bool) -> None:
    """Each bad input must raise a one-line ShapeError that names the expected size."""
    b, c, f, t = mixture.shape
    bad: list[tuple[str, Callable[[], torch.Tensor], int | None]] = [
        ("a 3-D tensor (no batch axis)", lambda: mixture[0], None),
        (f"{c + 1} channels instead of {c}", lambda: mixture.new_zeros(b, c + 1, f, t), c),
        (f"{f + 1} bins instead of {f}", lambda: mixture.new_zeros(b, c, f + 1, t), f),
    ]
    if t > 1:
        bad.append((f"{t - 1} frames instead of {t}", lambda: mixture[..., : t - 1], t))
    bad.append(("integer features", lambda: mixture.to(torch.int32), None))
    if nan_is_error:
        bad.append(("NaN features", lambda: torch.full_like(mixture, float("nan")), None))
    for what, make, expected in bad:
        expect_shape_error(model, make(), f"{name} given {what}", expected)


def expect_shape_error(
    model: torch.nn.Module, tensor: torch.Tensor, what: str, expected: int | None = None
) -> None:
    """``model(tensor)`` must raise a one-line ShapeError (mentioning ``expected`` when given)."""
    try:
        with torch.no_grad():
            model(tensor)
    except ShapeError as error:
        message = str(error)
        assert message.strip(), f"{what} raised a ShapeError with an empty message"
        assert "\n" not in message, f"{what} raised a ShapeError spanning several lines: {message!r}"
        if expected is not None:
            assert str(expected) in message, (
                f"{what} raised a ShapeError that does not name the expected size {expected}: {message!r}"
            )
        return
    except Exception as error:  # noqa: BLE001 - the contract is about which error is raised
        raise AssertionError(
            f"{what} raised {type(error).__name__} ({error}) instead of sepkit.errors.ShapeError"
        ) from error
    raise AssertionError(f"{what} was accepted; it must raise sepkit.errors.ShapeError")
