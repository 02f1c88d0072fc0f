"""Torchrun's ranks: this process's place in a launch, the process group a split generation runs in, and rank 0's
word shared with the others. Executors use it; the render loop and the backends never ask which rank they are."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from storyforge.backends.multigpu import SequenceParallel
from storyforge.errors import MissingExtra, StoryforgeError

T = TypeVar("T")
# Run the split on CPU over gloo, without xfuser: slow, for checking the plumbing on a machine without GPUs.
CPU_VARIABLE = "STORYFORGE_MULTIGPU_CPU"


@dataclass(frozen=True)
class Ranks:
    """This process's place in a torchrun launch: one process of one without torchrun."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1  # processes on this machine, each of which needs its own GPU

    @property
    def parallel(self) -> bool:
        return self.world_size > 1


def ranks(environ: Mapping[str, str] | None = None) -> Ranks:
    """WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE as torchrun sets them (defaults: a single process)."""
    env = os.environ if environ is None else environ

    def number(name: str, default: int) -> int:
        value = env.get(name, "").strip()
        if not value:
            return default
        try:
            return int(value)
        except ValueError:
            raise StoryforgeError(f"{name}={value!r} is not a whole number; it is set by torchrun, "
                                  "so launch with torchrun --nproc_per_node=N or unset it") from None

    world_size = number("WORLD_SIZE", 1)
    rank = number("RANK", 0)
    local_rank = number("LOCAL_RANK", rank)
    local_world_size = number("LOCAL_WORLD_SIZE", world_size)
    if world_size < 1 or not 0 <= rank < world_size or not 0 <= local_rank < local_world_size:
        raise StoryforgeError(f"RANK={rank}, LOCAL_RANK={local_rank} and WORLD_SIZE={world_size} do not fit "
                              "together; they are set by torchrun, so launch with torchrun --nproc_per_node=N "
                              "or unset them")
    return Ranks(world_size, rank, local_rank, local_world_size)


def is_writer() -> bool:
    """Whether this process writes cache entries, clips and the film: rank 0 of a torchrun launch, or the only one."""
    return ranks().rank == 0


def coupled() -> bool:
    """Whether other ranks run this render in step with this one: a process group of more than one is up."""
    dist = sys.modules.get("torch.distributed")  # never imports torch: no process group without it
    return bool(dist is not None and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1)


def share(value: T) -> T:
    """Rank 0's `value` on every rank while a process group is up (every rank must call it, in step), else `value`.

    A render is the same loop on every rank; where only rank 0 can know something (what the cache holds, the
    decoded pixels an extension continues from), the other ranks take its answer, so they never diverge.
    """
    if not coupled():
        return value
    import torch.distributed as dist

    box: list[Any] = [value if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[no-any-return]


def setup(where: Ranks | None = None) -> SequenceParallel:
    """Join the torchrun launch as one rank of an xDiT Ulysses group of WORLD_SIZE GPUs; refuse what cannot work.

    As SkyReels-V2's generate_video_df.py --use_usp does: an NCCL process group, then xDiT's distributed
    environment and one sequence-parallel group of every rank, all of it Ulysses (no ring).
    """
    where = where or ranks()
    n = where.world_size
    if os.environ.get(CPU_VARIABLE, "").strip() == "1":
        return _setup_cpu()
    if importlib.util.find_spec("xfuser") is None:
        raise MissingExtra("xfuser", "multigpu",
                           f"splitting one generation across {n} GPUs (torchrun --nproc_per_node={n})")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < where.local_world_size:
        found = {0: "no CUDA GPU is visible", 1: "only 1 CUDA GPU is visible"}.get(
            count, f"only {count} CUDA GPUs are visible")
        advice = (f"start at most {count} (torchrun --nproc_per_node={count})" if count > 1
                  else "run without torchrun")
        raise StoryforgeError(f"torchrun started {where.local_world_size} processes on this machine and the "
                              f"skyreels-df backend needs one CUDA GPU for each, but {found}; {advice}")
    import torch.distributed as dist
    from xfuser.core.distributed import (
        get_sequence_parallel_rank,
        get_sequence_parallel_world_size,
        get_sp_group,
        init_distributed_environment,
        initialize_model_parallel,
    )

    torch.cuda.set_device(where.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl")
    init_distributed_environment(rank=dist.get_rank(), world_size=dist.get_world_size())
    initialize_model_parallel(sequence_parallel_degree=dist.get_world_size(), ring_degree=1,
                              ulysses_degree=dist.get_world_size())
    return SequenceParallel(get_sequence_parallel_world_size(), get_sequence_parallel_rank(),
                            f"cuda:{where.local_rank}", get_sp_group().device_group)


def _setup_cpu() -> SequenceParallel:
    """Every rank in one Ulysses group over gloo: what initialize_model_parallel builds, on CPU."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return SequenceParallel(dist.get_world_size(), dist.get_rank(), "cpu", dist.group.WORLD)
