"""Multi-GPU for one generation: xDiT Ulysses sequence parallelism under torchrun, rank 0 writes."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from storyforge.errors import MissingExtra, StoryforgeError

if TYPE_CHECKING:
    import torch

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


@dataclass(frozen=True)
class SequenceParallel:
    """A Ulysses group this process belongs to: `size` ranks split every generation's tokens."""

    size: int
    rank: int  # within the group
    device: str  # this rank's GPU, e.g. "cuda:1"
    group: Any  # the torch.distributed process group of the all-to-alls


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


def check_size(parallel: SequenceParallel, heads: int, width: int, height: int, job_id: str) -> None:
    """Refuse, before any GPU work, a generation the group cannot split evenly (heads, or tokens per frame)."""
    n = parallel.size
    if heads % n:
        divisors = ", ".join(str(d) for d in range(2, heads + 1) if heads % d == 0)
        raise StoryforgeError(f"Ulysses sequence parallelism gives each GPU an equal share of the model's {heads} "
                              f"attention heads, which {n} GPUs cannot split; use torchrun --nproc_per_node with "
                              f"one of: {divisors}")
    tokens = (width // 16) * (height // 16)  # the VAE's 8x8 pixels per latent, then the 2x2 patches
    if tokens % n:
        raise StoryforgeError(f"{job_id}: at {width}x{height} a frame is {tokens} tokens, which {n} GPUs cannot "
                              f"split evenly; choose a resolution whose (width/16)*(height/16) is a multiple of {n}")


def shard_transformer(transformer: Any, parallel: SequenceParallel) -> None:
    """Make diffusers' SkyReelsV2Transformer3DModel compute every call across the group, Ulysses style.

    Each rank keeps 1/N of the tokens from the first block to the last (the per-token layers need nothing
    else); self-attention trades tokens for heads with one all-to-all, so each rank attends over the whole
    sequence for 1/N of the heads, with the causal block mask of asynchronous mode intact, and trades back.
    The tokens are gathered after the last block, so the output projection and the pipeline see a normal call.
    Cross-attention needs no exchange: every rank holds the whole prompt.
    """
    if getattr(transformer, "_storyforge_ulysses", None) is not None:
        return
    blocks = list(transformer.blocks)
    first, last = blocks[0], blocks[-1]

    def split_inputs(block: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(args) != 5:
            raise StoryforgeError("this diffusers version calls the SkyReels-V2 transformer blocks in a way the "
                                  "multi-GPU split does not know; use diffusers 0.35 to 0.42")
        hidden, encoder, modulation, rope, mask = args
        if block is first:
            hidden = _chunk(hidden, 1, parallel)
        if modulation.dim() == 4:  # Diffusion Forcing: one modulation per token, (batch, 6, tokens, dim)
            modulation = _chunk(modulation, 2, parallel)
        rope = tuple(_chunk(part, 1, parallel) for part in rope)  # (cos, sin), each (1, tokens, 1, dim)
        return hidden, encoder, modulation, rope, mask

    def gather_output(_block: Any, _args: Any, output: torch.Tensor) -> torch.Tensor:
        return _gather(output, 1, parallel)

    handles = [block.register_forward_pre_hook(split_inputs) for block in blocks]
    handles.append(last.register_forward_hook(gather_output))
    for block in blocks:
        block.attn1.set_processor(UlyssesSelfAttention(parallel, block.attn1.processor))
    transformer._storyforge_ulysses = handles


class UlyssesSelfAttention:
    """SkyReels-V2 self-attention on this rank's tokens, attending over all tokens for 1/N of the heads."""

    def __init__(self, parallel: SequenceParallel, replaced: Any):
        self.parallel = parallel
        self.replaced = replaced  # diffusers' processor: its attention backend is kept

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None,
                 rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        from diffusers.models.attention_dispatch import dispatch_attention_fn

        if attn.fused_projections:
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        # the q/k norms act on each token's whole inner dimension: the same on a share of the tokens
        query, key = attn.norm_q(query), attn.norm_k(key)
        query, key, value = (t.unflatten(2, (attn.heads, -1)) for t in (query, key, value))
        if rotary_emb is not None:  # this rank's slice of the positions, cut in the block's pre-hook
            query, key = _rotate(query, *rotary_emb), _rotate(key, *rotary_emb)
        query, key, value = (_tokens_to_heads(t, self.parallel) for t in (query, key, value))
        out = dispatch_attention_fn(query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False,
                                    backend=getattr(self.replaced, "_attention_backend", None))
        out = _heads_to_tokens(out, self.parallel).flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](out))  # type: ignore[no-any-return]


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding on interleaved pairs, as diffusers' SkyReels-V2 processor applies it."""
    import torch

    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos[..., 0::2] - x2 * sin[..., 1::2]
    out[..., 1::2] = x1 * sin[..., 1::2] + x2 * cos[..., 0::2]
    return out.type_as(x)


def _chunk(x: torch.Tensor, dim: int, parallel: SequenceParallel) -> torch.Tensor:
    if x.shape[dim] % parallel.size:
        raise StoryforgeError(f"a window of {x.shape[dim]} tokens cannot be split evenly across {parallel.size} GPUs")
    return x.chunk(parallel.size, dim=dim)[parallel.rank]


def _gather(x: torch.Tensor, dim: int, parallel: SequenceParallel) -> torch.Tensor:
    import torch
    import torch.distributed as dist

    x = x.contiguous()
    parts = [torch.empty_like(x) for _ in range(parallel.size)]
    dist.all_gather(parts, x, group=parallel.group)
    return torch.cat(parts, dim=dim)


def _tokens_to_heads(x: torch.Tensor, parallel: SequenceParallel) -> torch.Tensor:
    """(batch, tokens/N, heads, dim) on each rank -> (batch, tokens, heads/N, dim): rank j gets head group j."""
    import torch
    import torch.distributed as dist

    n = parallel.size
    batch, tokens, heads, dim = x.shape
    send = x.reshape(batch, tokens, n, heads // n, dim).permute(2, 0, 1, 3, 4).contiguous()
    received = torch.empty_like(send)
    dist.all_to_all_single(received, send, group=parallel.group)  # received[j]: rank j's tokens, my heads
    return received.permute(1, 0, 2, 3, 4).reshape(batch, n * tokens, heads // n, dim)


def _heads_to_tokens(x: torch.Tensor, parallel: SequenceParallel) -> torch.Tensor:
    """The inverse of _tokens_to_heads: (batch, tokens, heads/N, dim) -> (batch, tokens/N, heads, dim)."""
    import torch
    import torch.distributed as dist

    n = parallel.size
    batch, tokens, heads, dim = x.shape
    send = x.reshape(batch, n, tokens // n, heads, dim).permute(1, 0, 2, 3, 4).contiguous()
    received = torch.empty_like(send)
    dist.all_to_all_single(received, send, group=parallel.group)  # received[j]: my tokens, rank j's heads
    return received.permute(1, 2, 0, 3, 4).reshape(batch, tokens // n, n * heads, dim)
