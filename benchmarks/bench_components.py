"""Throughput of the paper's components: one U-Net training step and one Wasserstein-GP critic step.

    python benchmarks/bench_components.py                 # CPU (batch 8) and CUDA (batch 64) if present
    python benchmarks/bench_components.py --batch 64 --device cpu

FLOP convention (counted, not measured): the forward pass is counted analytically from the layer
shapes (a convolution costs 2 FLOPs per multiply-accumulate: ``2 * output elements * in_channels
* kernel area`` for a convolution, ``2 * input elements * out_channels * kernel area`` for a
transposed convolution, ``2 * in * out`` per example for a dense layer; biases, activations,
pooling and padding are not counted). A backward pass counts as 2x its forward pass (gradients for
the inputs and for the weights), so:

* U-Net step (forward + backward) = 3 x forward;
* Wasserstein-GP critic step = forwards on real, fake and interpolates (3F) + the input gradient at
  the interpolates with ``create_graph`` (1F) + backward through real and fake (2 x 2F) + backward
  through the interpolates' forward and input-gradient graph (2 x 2F) = 12F, with F the critic's
  forward on one batch.

PyTorch's own FLOP rules (``torch.utils.flop_counter``, applied to every aten op the step runs) give
an independent count of what is actually executed (e.g. no gradient for the first layer's input,
which nothing needs); both are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from sepkit.plugins import registry

PAPER_BINS, PAPER_SOURCES, PAPER_CHANNELS = 257, 2, 1
PAPER_OUTPUT_FRAMES = 66  # the paper U-Net's output frames: what each critic sees


def forward_flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass, from the shapes each conv/dense layer sees (see the module doc)."""
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.ConvTranspose2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            total += 2 * inputs[0].numel() * (module.out_channels // module.groups) * kernel
        elif isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            total += 2 * output.numel() * (module.in_channels // module.groups) * kernel
        elif isinstance(module, nn.Linear):
            total += 2 * inputs[0].numel() * module.out_features

    layers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, layers)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def time_step(step: Callable[[], None], device: torch.device, repeats: int, warmup: int) -> list[float]:
    """Seconds per call of ``step``, after ``warmup`` untimed calls."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return times


class ExecutedFlops(TorchDispatchMode):
    """FLOPs of the aten ops actually run, by PyTorch's own ``flop_registry`` (the rules of
    ``FlopCounterMode``, whose module tracking breaks ``autograd.grad`` inside it)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        rule = flop_registry.get(func._overloadpacket)
        if rule is not None:
            self.total += rule(*args, **kwargs, out_val=out)
        return out


def executed_flops(step: Callable[[], None]) -> int:
    with ExecutedFlops() as counter:
        step()
    return counter.total


def unet_step(device: torch.device, batch: int) -> tuple[Callable[[], None], int, nn.Module]:
    """The paper's U-Net, forward + backward of the supervised MSE loss; returns (step, FLOPs, model)."""
    unet = registry("separator").get("unet").cls
    model = unet({}, num_sources=PAPER_SOURCES, num_channels=PAPER_CHANNELS, num_bins=PAPER_BINS).to(device)
    w = model.window
    mixture = torch.rand(batch, PAPER_CHANNELS, PAPER_BINS, w.input_frames, device=device)
    target = torch.rand(batch, PAPER_SOURCES, PAPER_CHANNELS, PAPER_BINS, w.output_frames, device=device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        loss = (model(mixture) - target).square().mean()
        loss.backward()

    flops = 3 * batch * forward_flops(model, mixture[:1])
    return step, flops, model


def inline_wgan_gp_loss(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP as in the paper, written out for when the ``wasserstein-gp`` plugin is unavailable:
    mean D(fake) - mean D(real) + 10 * one-sided penalty on the input-gradient norm at random
    interpolates between fake examples and a shuffled real batch."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    shuffled = real[torch.randperm(real.shape[0], device=real.device)]
    points = (eps * fake + (1 - eps) * shuffled).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(points).sum(), points, create_graph=True)
    norms = torch.sqrt(grad.flatten(1).square().sum(dim=1) + 1e-12)
    return critic(fake).mean() - critic(real).mean() + 10.0 * torch.relu(norms - 1).square().mean()


def wgan_gp_loss(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor
) -> tuple[Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor], str]:
    """The critic loss of the ``wasserstein-gp`` plugin, or :func:`inline_wgan_gp_loss` if it is not
    implemented (the plugin is developed in parallel)."""
    from sepkit.errors import NotImplementedComponentError

    try:
        divergence_cls = registry("divergence").get("wasserstein-gp").cls
        divergence = divergence_cls(divergence_cls.parse_config({}))
        divergence.critic_loss(critic, real[:2], fake[:2])
    except NotImplementedComponentError:
        return inline_wgan_gp_loss, "inline WGAN-GP (the wasserstein-gp plugin is not implemented)"
    return (lambda c, r, f: divergence.critic_loss(c, r, f).loss), "the wasserstein-gp plugin"


def critic_step(device: torch.device, batch: int) -> tuple[Callable[[], None], int, str]:
    """One Wasserstein-GP step of the paper's critic on the U-Net's output shape (1 x 257 x 66)."""
    dcgan = registry("critic").get("dcgan").cls
    critic = dcgan({}, input_shape=(PAPER_CHANNELS, PAPER_BINS, PAPER_OUTPUT_FRAMES)).to(device)
    real = torch.rand(batch, PAPER_CHANNELS, PAPER_BINS, PAPER_OUTPUT_FRAMES, device=device)
    fake = torch.rand(batch, PAPER_CHANNELS, PAPER_BINS, PAPER_OUTPUT_FRAMES, device=device)
    loss_fn, source = wgan_gp_loss(critic, real, fake)

    def step() -> None:
        critic.zero_grad(set_to_none=True)
        loss_fn(critic, real, fake).backward()

    flops = 12 * batch * forward_flops(critic, real[:1])
    return step, flops, source


def report(name: str, device: torch.device, batch: int, flops: int, executed: int, times: list[float]) -> None:
    median = statistics.median(times)
    print(
        f"{name:<22} {device.type:<5} batch {batch:>3}  median {median * 1e3:9.1f} ms "
        f"(min {min(times) * 1e3:.1f}, {len(times)} runs)  {batch / median:9.1f} examples/s  "
        f"{flops / median / 1e9:8.1f} GFLOP/s  [step {flops / 1e9:.1f} GFLOP counted, "
        f"{executed / 1e9:.1f} GFLOP executed per torch.utils.flop_counter]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batch", type=int, default=None, help="batch size (default: 8 on CPU, 64 on CUDA, the paper's)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all")
    parser.add_argument("--only", choices=["all", "unet", "critic"], default="all")
    args = parser.parse_args()

    devices = [torch.device("cpu")] if args.device in ("all", "cpu") else []
    if args.device in ("all", "cuda"):
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        elif args.device == "cuda":
            parser.error("--device cuda: no CUDA device available")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads" + (
        f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))

    for device in devices:
        batch = args.batch or (64 if device.type == "cuda" else 8)
        # Executed FLOPs are counted on a one-example step and scaled: every layer is linear in batch.
        if args.only in ("all", "unet"):
            executed = batch * executed_flops(unet_step(device, 1)[0])
            step, flops, _ = unet_step(device, batch)
            times = time_step(step, device, args.repeats, args.warmup)
            report("unet fwd+bwd", device, batch, flops, executed, times)
        if args.only in ("all", "critic"):
            executed = batch * executed_flops(critic_step(device, 1)[0])
            step, flops, source = critic_step(device, batch)
            times = time_step(step, device, args.repeats, args.warmup)
            report("dcgan wgan-gp step", device, batch, flops, executed, times)
            print(f"  (critic loss: {source})")


if __name__ == "__main__":
    main()
