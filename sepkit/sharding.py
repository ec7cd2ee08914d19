"""Work shared out over processes: ``--jobs N`` worker processes on this machine, and one shard of
the work per process under torchrun (``RANK`` and ``WORLD_SIZE`` in the environment).

``sepkit separate`` (files) and ``sepkit evaluate`` (tracks) use both (docs/scaling.md):

* :class:`WorkerPool`: N spawn-started processes that each load the model **once** (the pool's
  ``setup``) and then run one task per file or track. Each computes with its share of the threads
  this process would use: ``max(1, T // N)``, T being ``torch.get_num_threads()`` here (so
  ``OMP_NUM_THREADS`` caps the whole pool). Workers are started with ``OMP_NUM_THREADS``,
  ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` set to that share (restored here when the pool
  ends), so their torch starts with it; sepkit never calls ``torch.set_num_threads`` (batched CPU
  solves go wrong after it in torch 2.13). :class:`Inline` runs the same tasks in this process (``--jobs 1``).
* :class:`Shard`: this process's place among torchrun's processes. Every process makes the same
  plan (the same files or tracks in the same order, the same output names), takes every
  ``world_size``-th item from ``rank`` on, and the first process gathers the results (gloo, over
  torchrun's ``MASTER_ADDR``/``MASTER_PORT``) to write the summary.

A task sees exactly what it would see in one process, so the results are identical to a single
process's whenever each process computes with the same number of threads (float sums in several
threads may round differently).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
import torch.distributed as dist

from .errors import SepkitError
from .model import Model, load_model
from .training.distributed import Distributed

T = TypeVar("T")
R = TypeVar("R")

#: How long a process waits for the others at a barrier or a gather (they may be separating long files).
TIMEOUT = timedelta(hours=2)
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


# -- torchrun: one shard per process ---------------------------------------------------------------


@dataclass(frozen=True)
class Shard(Distributed):
    """This process's share of a list: ``items[rank::world_size]``; ``world_size == 1`` is all of it.
    (A :class:`~sepkit.training.distributed.Distributed` place that joins torchrun's process group
    only when it first needs to wait for or gather from the others.)"""

    def take(self, items: Sequence[T]) -> list[T]:
        """Every ``world_size``-th item from ``rank`` on (round robin: shards differ by one item at most)."""
        return list(items[self.rank :: self.world_size])

    def device(self, device: torch.device) -> torch.device:
        """Under torchrun a CUDA process uses the device of its local rank (``--device cuda``)."""
        if self.enabled and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    def barrier(self) -> None:
        """Wait until every process got here (after planning, before anything is written)."""
        if self.enabled:
            _join_group()
            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value`` (any picklable object), by rank; ``[value]`` in a plain run."""
        if not self.enabled:
            return [value]
        _join_group()
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values


def shard_from_environment() -> Shard:
    """The shard torchrun's ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` describe (one shard when unset)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise SepkitError(
            f"RANK={os.environ.get('RANK')!r}, WORLD_SIZE={os.environ.get('WORLD_SIZE')!r}: expected whole numbers "
            "(torchrun sets them)"
        ) from None
    if world < 1 or not 0 <= rank < world:
        raise SepkitError(f"RANK={rank}, WORLD_SIZE={world}: expected 0 <= RANK < WORLD_SIZE")
    return Shard(rank=rank, world_size=world, local_rank=local)


def _join_group() -> None:
    """Join the process group torchrun described (gloo: only small Python objects travel)."""
    if dist.is_initialized():
        return
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise SepkitError(
            f"WORLD_SIZE is above 1 but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: "
            "start the processes with torchrun (docs/scaling.md)"
        )
    dist.init_process_group("gloo", timeout=TIMEOUT)
    atexit.register(_leave_group)


def _leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


# -- local worker processes ------------------------------------------------------------------------


def worker_threads(jobs: int) -> int:
    """Threads of each of ``jobs`` workers: an equal share of what this process would use."""
    return max(1, torch.get_num_threads() // max(1, jobs))


def worker_devices(device: torch.device, jobs: int) -> list[str]:
    """The device of each worker: ``cuda`` (no index) with several GPUs visible spreads the workers
    over them, round robin; any other device is shared by every worker."""
    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        return [f"cuda:{i % torch.cuda.device_count()}" for i in range(jobs)]
    return [str(device)] * jobs


@dataclass
class Done(Generic[T, R]):
    """One finished task: its item and its result, or the error that ended it (a worker that died,
    an exception the task did not handle)."""

    item: T
    result: R | None = None
    error: str | None = None


class Inline:
    """Tasks run here, one after another, with ``state`` (e.g. the caller's model). Exceptions go
    through to the caller (a Ctrl-C stops the run; what was done is kept by whoever consumed it)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.stopping = False

    def run(self, task: Callable[[Any, T], R], items: Iterable[T]) -> Iterator[Done[T, R]]:
        for item in items:
            if self.stopping:
                return
            yield Done(item, task(self.state, item))

    def stop(self) -> None:
        """Start no further item (see :meth:`WorkerPool.stop`)."""
        self.stopping = True

    def __enter__(self) -> "Inline":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_state: Any = None  # a worker process's state (its model), made once by the pool's setup


def _start_worker(devices: list[str], counter: Any, setup: Callable[..., Any], args: tuple) -> None:
    """A worker's entry point: its device, then ``setup(device, *args)`` once (its threads came with
    the environment it was started in: see :class:`WorkerPool`)."""
    global _state
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    _state = setup(devices[index % len(devices)], *args)


def _run_task(task: Callable[[Any, T], R], item: T) -> R:
    return task(_state, item)


class WorkerPool:
    """``jobs`` spawn-started processes, each running ``setup(device, *args)`` once (loading the
    model on its device) and then ``task(state, item)`` for the items it is given; at most
    ``in_flight`` items are handed out at a time, so memory stays bounded whatever the list's size."""

    def __init__(
        self, jobs: int, setup: Callable[..., Any], args: tuple = (), *, devices: Sequence[str], in_flight: int | None = None
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.jobs = jobs
        self.in_flight = in_flight or 2 * jobs
        # A spawned worker's torch reads its threads from the environment it starts in; workers are
        # started on demand, so the variables hold for the pool's life and are restored after it
        # (this process's torch is already running: its threads do not change).
        threads = str(worker_threads(jobs))
        self._saved_environment = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
        os.environ.update({name: threads for name in _THREAD_VARIABLES})
        self.executor = ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_start_worker,
            initargs=(list(devices), context.Value("i", 0), setup, args),
        )
        self.pending: dict[Future, Any] = {}
        self.stopping = False

    def run(self, task: Callable[[Any, T], R], items: Iterable[T]) -> Iterator[Done[T, R]]:
        """Results as they finish (not in item order)."""
        source = iter(items)
        while True:
            while not self.stopping and len(self.pending) < self.in_flight:
                item = next(source, _END)
                if item is _END:
                    break
                try:
                    self.pending[self.executor.submit(_run_task, task, item)] = item
                except RuntimeError as exc:  # the pool broke (a worker died): every later item fails
                    yield Done(item, error=f"failed in a worker process: {type(exc).__name__}: {exc}")
            if self.stopping:  # items not started are dropped; the running ones still report
                for future in [f for f in self.pending if f.cancel()]:
                    del self.pending[future]
            if not self.pending:
                return
            finished, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
            for future in finished:
                yield _done(self.pending.pop(future), future)

    def stop(self) -> None:
        """Start no further item: the items not started are dropped (the caller reports them as not
        attempted), the running ones finish and are still yielded."""
        self.stopping = True

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.executor.shutdown(wait=exc_type is None, cancel_futures=True)
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_END = object()


def _done(item: Any, future: Future) -> Done:
    try:
        return Done(item, future.result())
    except Exception as exc:  # a worker that died (out of memory...) fails its item only
        return Done(item, error=f"failed in a worker process: {type(exc).__name__}: {exc}")


def model_source(model: Any) -> Any:
    """What a worker needs to get ``model``: its file when it has one (each worker loads it once),
    else the object itself (sent to each worker once, when the worker starts)."""
    if isinstance(model, Model) and model.path is not None:
        return Path(model.path)
    return model


def worker_model(device: str, source: Any) -> Any:
    """A worker's model (the pool's ``setup``): loaded from its file on the worker's device, or as sent."""
    return load_model(source, device=device) if isinstance(source, Path) else source


def pool_or_inline(
    jobs: int, count: int, state: Any, setup: Callable[..., Any], args: tuple, *, devices: Sequence[str]
) -> Inline | WorkerPool:
    """:class:`Inline` with the caller's ``state`` for one job, else a :class:`WorkerPool` of
    ``jobs`` workers, or fewer when there are only ``count`` items (none: nothing to start)."""
    if jobs <= 1 or count == 0:
        return Inline(state)
    return WorkerPool(max(1, min(jobs, count)), setup, args, devices=devices)


__all__ = [
    "Done", "Inline", "Shard", "WorkerPool", "model_source", "pool_or_inline", "shard_from_environment", "worker_devices", "worker_model",
    "worker_threads",
]
