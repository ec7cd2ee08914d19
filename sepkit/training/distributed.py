"""Data-parallel training on torch.distributed: one process per device, started by ``torchrun``.

``torchrun --standalone --nproc_per_node=N -m sepkit run RECIPE`` starts N processes that each
train on their share of every batch (``training.batch_size`` is the global batch) and average their
gradients before every optimiser step; the networks and optimisers therefore stay identical in
every process. Gradients are averaged by one explicit all-reduce per step rather than by
DistributedDataParallel: the critics' gradient penalties differentiate through gradients (a double
backward), which DDP's bucketed hooks do not support, and the explicit reduction also carries the
step's non-finite flag, so that every process skips the same steps without a host synchronisation.

Only the first process (rank 0) validates, logs, plots and writes files; the others follow its
decisions (early stopping) through small broadcasts. NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable

import torch
import torch.distributed as dist

from ..errors import SepkitError

#: How long a process waits for the others at a collective: the first process validates and
#: evaluates alone while the others wait (torch's defaults are 10 to 30 minutes).
TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel run; ``world_size == 1`` is a plain run (every
    collective is then a no-op)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This process's device: CUDA device ``LOCAL_RANK`` when training on CUDA with several processes."""
        if self.enabled and device.type == "cuda":
            if device.index is not None and device.index != self.local_rank:
                raise SepkitError(
                    f"--device {device}: under torchrun every process trains on the CUDA device of its local rank; "
                    "use --device cuda (or limit the devices with CUDA_VISIBLE_DEVICES)"
                )
            return torch.device("cuda", self.local_rank)
        return device

    def _comm_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    # -- collectives ---------------------------------------------------------------------------
    def barrier(self) -> None:
        if self.enabled:
            if self.backend == "nccl":
                dist.barrier(device_ids=[torch.cuda.current_device()])
            else:
                dist.barrier()

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter], bad: torch.Tensor) -> torch.Tensor:
        """Replace every gradient by its mean over the processes; returns whether any process flagged
        its step as bad (``bad``: this process's flag, a bool tensor). One all-reduce per dtype of
        gradient; the flag rides along with the first, so nothing waits on the host."""
        if not self.enabled:
            return bad
        groups: dict[torch.dtype, list[torch.Tensor]] = {}
        for parameter in parameters:
            if parameter.grad is not None:
                groups.setdefault(parameter.grad.dtype, []).append(parameter.grad)
        flag = bad.reshape(1).to(torch.float32)
        if not groups:
            dist.all_reduce(flag)
            return flag[0] > 0
        any_bad = None
        for index, (dtype, grads) in enumerate(groups.items()):
            pieces = [g.reshape(-1) for g in grads]
            if index == 0:
                pieces.append(flag.to(dtype))
            flat = torch.cat(pieces)
            dist.all_reduce(flat)
            if index == 0:
                any_bad = flat[-1] > 0
            flat.div_(self.world_size)
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()
        assert any_bad is not None
        return any_bad

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the processes (in place; returned)."""
        if self.enabled:
            dist.all_reduce(tensor)
        return tensor

    def any(self, *flags: bool | torch.Tensor) -> list[bool]:
        """Each flag OR-ed over the processes: one small all-reduce and one host synchronisation."""
        device = self._comm_device() if self.enabled else None
        values = torch.stack([torch.as_tensor(f, dtype=torch.float32, device=device).reshape(()) for f in flags])
        return [v > 0 for v in self.sum_(values).tolist()]

    def mean(self, values: dict[str, torch.Tensor | float]) -> dict[str, float]:
        """Scalars (the same keys in every process) averaged over the processes, as floats."""
        if not values:
            return {}
        keys = list(values)
        device = self._comm_device() if self.enabled else None
        stacked = torch.stack([torch.as_tensor(values[k], dtype=torch.float64, device=device).reshape(()).detach() for k in keys])
        return dict(zip(keys, (self.sum_(stacked) / self.world_size).tolist()))

    def broadcast_values(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` in every process."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.broadcast(tensor, 0)
        return tensor.tolist()

    def broadcast_modules(self, *modules: torch.nn.Module) -> None:
        """Every process starts from rank 0's parameters and buffers."""
        if not self.enabled:
            return
        for module in modules:
            for tensor in module.state_dict().values():
                if tensor.device.type == self._comm_device().type:
                    dist.broadcast(tensor, 0)
                else:
                    copy = tensor.to(self._comm_device())
                    dist.broadcast(copy, 0)
                    tensor.copy_(copy)

    def gather_bytes(self, tensors: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Every process's ``tensors`` (the same names and sizes everywhere: random-generator states,
        seeds) as CPU tensors, by rank."""
        keys = sorted(tensors)
        local = [tensors[k].detach().to("cpu").contiguous() for k in keys]
        if not self.enabled:
            return [dict(zip(keys, local))]
        flat = torch.cat([t.reshape(-1).view(torch.uint8) for t in local]).to(self._comm_device())
        gathered = [torch.empty_like(flat) for _ in range(self.world_size)]
        dist.all_gather(gathered, flat)
        out = []
        for row in gathered:
            row, offset, entry = row.cpu(), 0, {}
            for key, template in zip(keys, local):
                size = template.numel() * template.element_size()
                entry[key] = row[offset : offset + size].view(template.dtype).reshape(template.shape).clone()
                offset += size
            out.append(entry)
        return out


def current() -> Distributed:
    """This process's :class:`Distributed`: from the initialised process group, else a plain run."""
    if not (dist.is_available() and dist.is_initialized()):
        return Distributed()
    return Distributed(
        rank=dist.get_rank(), world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")), backend=dist.get_backend(),
    )


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment(device: torch.device) -> Distributed:
    """Join the process group torchrun described in the environment (``WORLD_SIZE``, ``RANK``,
    ``LOCAL_RANK``, ``MASTER_ADDR``...): NCCL when training on CUDA, gloo otherwise. A plain
    process (no ``WORLD_SIZE`` above 1) gets a one-process :class:`Distributed`."""
    if not launched_by_torchrun():
        return Distributed()
    if dist.is_initialized():
        return current()
    if not dist.is_available():
        raise SepkitError("this torch was built without torch.distributed; train in one process (sepkit run)")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    options: dict = {"timeout": TIMEOUT}
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise SepkitError(
                f"local rank {local_rank} has no CUDA device ({torch.cuda.device_count()} visible): start at most "
                "as many processes per node as there are GPUs (--nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)
        options.update(backend="nccl", device_id=torch.device("cuda", local_rank))
    else:
        options.update(backend="gloo")
    dist.init_process_group(**options)
    atexit.register(_shutdown)
    return current()


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
