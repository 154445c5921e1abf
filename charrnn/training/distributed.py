"""Many processes, one run: PyTorch's own distributed engine, nothing home-made.

``torchrun --nproc_per_node=N -m charrnn train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`session` joins them into a process group
(gloo on CPU, NCCL on CUDA). The global batch's rows are split among the ranks and
``DistributedDataParallel`` averages the gradients, so N processes compute the same
step as one process with the whole batch. Rank 0 alone prints and writes files.

Every decision that changes what happens next — stop now, is the budget used up,
is this the best validation loss — is made from values shared by a collective, so
the ranks never disagree and never wait on each other forever.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import torch
import torch.distributed as dist

from charrnn.errors import CharRNNError, ConfigError

if TYPE_CHECKING:
    from charrnn.rundir import RunDir


@dataclass(frozen=True)
class Group:
    """This process's place among the processes of a run (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, batch_size: int) -> slice:
        """This rank's share of a global batch of ``batch_size`` rows."""
        if batch_size % self.world_size:
            raise ConfigError(
                f"--batch-size {batch_size} does not split evenly among {self.world_size} "
                "processes: use a multiple of the process count"
            )
        share = batch_size // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)

    def max(self, *values: float) -> list[float]:
        """The largest of each value over all ranks (identity in one process)."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.tolist()

    def mean(self, value: float) -> float:
        """The mean of ``value`` over all ranks."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._device())
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def from_main(self, value: float) -> float:
        """Rank 0's ``value``, on every rank."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._device())
        dist.broadcast(tensor, src=0)
        return float(tensor.item())

    def gather(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """The ranks' tensors concatenated along ``dim`` (rank order), on every rank."""
        if not self.enabled:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=dim)

    def any_tensor(self, flag: torch.Tensor) -> torch.Tensor:
        """``flag`` (a bool tensor) true on any rank, without reading it on the host."""
        if not self.enabled:
            return flag
        shared = flag.to(torch.float32)
        dist.all_reduce(shared, op=dist.ReduceOp.MAX)
        return shared > 0

    def agree(self, ok: bool) -> bool:
        """True when every rank is ``ok``: a failure on one rank stops them all."""
        if not self.enabled:
            return ok
        return self.max(0.0 if ok else 1.0)[0] == 0.0

    def rng_states(self, device: torch.device) -> dict[str, object]:
        """The random generators' states: every rank's (gathered), or this process's."""
        rng: dict[str, object] = {"torch": torch.get_rng_state()}
        if self.enabled:
            rng["torch_ranks"] = self.gather(torch.get_rng_state().unsqueeze(0), dim=0)
        elif device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return rng

    def restore_rng(self, rng: dict[str, object], device: torch.device) -> None:
        """Set this rank's generators from :meth:`rng_states` (as many ranks, or one)."""
        ranks = rng.get("torch_ranks")
        if isinstance(ranks, torch.Tensor) and len(ranks) == self.world_size:
            torch.set_rng_state(ranks[self.rank].clone())  # own storage
        elif isinstance(rng.get("torch"), torch.Tensor):
            torch.set_rng_state(rng["torch"])  # type: ignore[arg-type]
        if "cuda" in rng and device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])  # type: ignore[arg-type]

    def place(self, device: torch.device) -> torch.device:
        """The device this process trains on: under torchrun on GPUs, its own GPU."""
        if device.type == "cuda" and self.enabled:
            return torch.device("cuda", self.local_rank)
        return device

    def _device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def from_environment() -> Group:
    """The group torchrun describes in the environment (none: one process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None
    return Group(rank=rank, world_size=world, local_rank=local)


@contextmanager
def session(device_type: str) -> Iterator[Group]:
    """Join the process group torchrun set up (if any) for the length of a run."""
    group = from_environment()
    if not group.enabled or dist.is_initialized():
        yield group
        return
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl":
        gpus = torch.cuda.device_count()
        if group.local_rank >= gpus:
            raise ConfigError(
                f"process {group.local_rank} of this machine has no GPU of its own "
                f"({gpus} CUDA GPU(s) here): start at most {gpus} processes per machine "
                "(--nproc_per_node), or train on the CPU with --device cpu"
            )
        torch.cuda.set_device(group.local_rank)
    try:
        dist.init_process_group(backend=backend)
    except (RuntimeError, ValueError) as exc:
        raise CharRNNError(f"cannot join the {backend} process group: {exc}") from None
    try:
        yield group
        # Leave together: a rank that tears down while another still sends to it can
        # abort in gloo's background threads.
        dist.barrier()
    finally:
        # DistributedDataParallel's reducer sits in reference cycles, so it is freed
        # by the garbage collector, at any later moment; freed after the group is
        # destroyed, its threads abort the process ("terminate called without an
        # active exception": 3 of 12 resumed runs under load). Free it now.
        gc.collect()
        dist.destroy_process_group()


class PeerFailed(CharRNNError):
    """Another process of the run failed (it reports the reason itself)."""


def require_all(group: Group, error: BaseException | None) -> None:
    """Raise ``error`` here, or :class:`PeerFailed` where another rank failed."""
    if group.agree(error is None):
        return
    if error is not None:
        raise error
    raise PeerFailed("another process of this run failed; see its message")


T = TypeVar("T")


def main_first(group: Group, load: Callable[[], T]) -> T:
    """Rank 0 loads first (it may encode and cache the corpus); then the others, from
    its cache. In one process: just ``load()``."""
    result: T | None = None
    error: CharRNNError | None = None
    if group.is_main:
        try:
            result = load()
        except CharRNNError as exc:
            error = exc
    require_all(group, error)
    return result if result is not None else load()


def on_main(group: Group, action: Callable[[], None]) -> None:
    """Run a file operation on rank 0; every rank learns whether it worked."""
    error: CharRNNError | None = None
    if group.is_main:
        try:
            action()
        except CharRNNError as exc:
            error = exc
    require_all(group, error)


@contextmanager
def holding(
    group: Group, run_dir: RunDir, claim: Callable[[], None] | None = None
) -> Iterator[None]:
    """On rank 0: lock the run directory (making it if needed), then ``claim`` it for a
    new run and clear a killed run's temporaries, for as long as the run lasts. The lock
    comes first, so nothing is deleted under a live run. The other ranks learn if that
    failed."""
    with ExitStack() as stack:
        error: CharRNNError | None = None
        if group.is_main:
            try:
                run_dir.make()
                stack.enter_context(run_dir.lock())
                if claim is not None:
                    claim()
                run_dir.clean_temporaries()
            except CharRNNError as exc:
                error = exc
        require_all(group, error)
        yield
