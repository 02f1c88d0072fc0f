"""Multi-GPU for one generation: xDiT Ulysses sequence parallelism, the attention split across a group of ranks.

Joining the group (torchrun's ranks, the process group, xDiT's environment) is the executor's part
(storyforge.executors.ranks); a backend is handed its `SequenceParallel` and splits its attention with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from storyforge.errors import StoryforgeError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

@dataclass(frozen=True)
class SequenceParallel:
    """A Ulysses group this process belongs to: `size` ranks split every generation's tokens."""

    size: int
    rank: int  # within the group
    device: str  # this rank's GPU, e.g. "cuda:1"
    group: Any  # the torch.distributed process group of the all-to-alls

    def from_first(self, value: T) -> T:
        """The group's first rank's `value` on every rank of the group (each must call it, in step)."""
        import torch.distributed as dist

        box: list[Any] = [value if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=dist.get_global_rank(self.group, 0) if self.group is not None else 0,
                                   group=self.group)
        return box[0]  # type: ignore[no-any-return]


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
