"""Adam steps that a non-finite loss or gradient skips without a host synchronisation.

Checking ``torch.isfinite(loss)`` in Python waits for the device to finish everything queued so
far; doing so for every critic step serialises the host and the GPU. The fused Adam kernel takes a
``found_inf`` flag on the device (the mechanism of ``torch.amp.GradScaler``) and leaves parameters,
moments and step counts untouched when it is set, so the trainer keeps one flag per update on the
device, skips every step from the first bad one on, and reads the flag once per update.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

#: Device types whose fused Adam kernel honours ``found_inf``.
_FUSED = ("cpu", "cuda", "mps", "xpu")


def adam(parameters: Iterable[torch.nn.Parameter], *, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.Adam:
    """Adam (fused where the device has the kernel, which :func:`step_unless` needs to skip on the device)."""
    return torch.optim.Adam(list(parameters), lr=lr, betas=betas, fused=device.type in _FUSED)


def step_unless(optimiser: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """``optimiser.step()`` unless the 0-dim bool tensor ``skip`` is true, decided on the device."""
    if not optimiser.param_groups[0].get("fused"):
        if not bool(skip):  # a device without the fused kernel: one synchronisation per step
            optimiser.step()
        return
    optimiser.found_inf = skip.to(torch.float32).reshape(())  # type: ignore[attr-defined]
    try:
        optimiser.step()
    finally:
        del optimiser.found_inf  # type: ignore[attr-defined]


def load_optimiser_state(optimiser: torch.optim.Optimizer, state: dict) -> None:
    """``optimiser.load_state_dict(state)`` keeping this optimiser's implementation (fused or not):
    a state saved by an older sepkit (non-fused Adam) resumes with the fused kernel, same arithmetic."""
    implementation = {key: optimiser.param_groups[0].get(key) for key in ("fused", "foreach")}
    optimiser.load_state_dict(state)
    for group in optimiser.param_groups:
        group.update(implementation)
        if implementation["fused"]:
            for parameter in group["params"]:
                entry = optimiser.state.get(parameter, {})
                if "step" in entry:
                    entry["step"] = entry["step"].to(parameter.device, torch.float32)
