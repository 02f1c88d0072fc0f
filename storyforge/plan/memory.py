"""GPU memory a render needs, computed from the models' architectures in plain integers (no torch).

A SkyReels-V2 DF render holds, on the GPU:

- **weights**: the transformer, the umT5 text encoder (both in the backend's bf16) and the Wan VAE (float32),
  counted parameter by parameter from the checkpoints' configurations (`transformer/config.json`,
  `text_encoder/config.json`); the counts are checked against diffusers' and transformers' own modules in tests.
- **activations** of one transformer call on the largest window (L tokens, width d, feed-forward f). Diffusion
  forcing gives every token its own timestep, so the modulation is per token: diffusers keeps a `timestep_proj`
  of 6 x L x d and each block adds its float32 shift/scale/gate (6 x L x d); with the hidden states, the float32
  norms and the two L x f feed-forward tensors, the peak of a call is

      L x (8 d a + 11 d 4 + 2 f a) bytes            (a: bytes of the weights' dtype, 2 for bf16)

  measured on CPU in float32 (a = 4: L x (19 d + 2 f) x 4) for the tiny model and for 1.3B-wide layers, within
  ACTIVATION_TOLERANCE (tests/plan/test_memory.py). Attention itself adds O(L d) with flash attention.
- **VAE decode** of one latent frame (4 video frames) at a time, as storyforge decodes: the Wan VAE decoder's peak
  is VAE_DECODE_BYTES_PER_PIXEL per output pixel in float32 (measured, linear in pixels), or that of one tile
  when the VAE decodes in tiles.

CPU offload changes what is resident at once: `model` (enable_model_cpu_offload) moves one whole component to
the GPU for its turn, `sequential` (enable_sequential_cpu_offload) streams every leaf module, so only the largest
one is resident (the text encoder's 256,384 x 4,096 embedding). Activations and the decode stay on the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from storyforge.plan.frames import SPACE_COMPRESSION, TIME_COMPRESSION

GIB = 2**30
OFFLOADS = ("none", "model", "sequential")
# The CUDA context, cuBLAS/cuDNN workspaces and the allocator's slack: what a process holds besides tensors.
RUNTIME_BYTES = GIB
# Wan VAE decoder's peak per output pixel, decoding one latent frame (4 frames) in float32: 1,387,180,032 bytes for
# 256x256 and 348,835,840 for 128x128 (x3.98 for x4 pixels), measured with diffusers' AutoencoderKLWan() on CPU.
VAE_DECODE_BYTES_PER_PIXEL = 21_170
# diffusers' Wan VAE tiles (tile_sample_min 256 x 256); a tile's decode replaces the frame's
VAE_TILE_PIXELS = 256 * 256
ACTIVATION_TOLERANCE = 0.10  # the formula against the measured peak of one call: within 3 % measured (tests)
# The backend decodes in tiles from this frame size up whatever the offload (the decode of a 720p frame is larger
# than the 14B model's activations at 540p), and at every size larger than a tile when it offloads.
TILING_PIXELS = 1280 * 720


@dataclass(frozen=True)
class Transformer:
    """A SkyReelsV2Transformer3DModel's configuration (the keys of its config.json that size it)."""

    num_layers: int
    num_attention_heads: int
    attention_head_dim: int
    ffn_dim: int
    text_dim: int = 4096
    freq_dim: int = 256
    in_channels: int = 16
    out_channels: int = 16
    patch: tuple[int, int, int] = (1, 2, 2)
    inject_sample_info: bool = False

    @property
    def width(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    def parameters(self) -> int:
        """Parameters, as diffusers builds the model (exact: tests compare with the module on the meta device)."""
        d, f = self.width, self.ffn_dim
        patch = self.patch[0] * self.patch[1] * self.patch[2]
        block = (8 * (d * d + d)  # self- and cross-attention: q, k, v, out
                 + 4 * d  # q and k RMS norms of both attentions
                 + 2 * d  # the cross-attention norm (affine)
                 + 2 * d * f + f + d  # feed-forward
                 + 6 * d)  # the block's scale-shift table
        outside = (self.in_channels * patch * d + d  # patch embedding
                   + self.freq_dim * d + d + d * d + d  # time embedder
                   + 6 * d * d + 6 * d  # time projection
                   + self.text_dim * d + d + d * d + d  # text projection
                   + d * self.out_channels * patch + self.out_channels * patch  # output projection
                   + 2 * d)  # the output's scale-shift table
        if self.inject_sample_info:
            outside += 2 * d + d * d + d + 6 * d * d + 6 * d  # fps embedding and projection
        return self.num_layers * block + outside


@dataclass(frozen=True)
class TextEncoder:
    """A umT5 encoder's configuration (transformers' UMT5Config)."""

    vocab_size: int
    d_model: int
    d_kv: int
    num_heads: int
    d_ff: int
    num_layers: int
    relative_attention_num_buckets: int = 32

    def parameters(self) -> int:
        """Parameters of UMT5EncoderModel with a gated feed-forward (exact: checked in tests)."""
        d, inner = self.d_model, self.num_heads * self.d_kv
        layer = 4 * d * inner + self.relative_attention_num_buckets * self.num_heads + 2 * d + 3 * d * self.d_ff
        return self.vocab_size * d + self.num_layers * layer + d

    def largest_module(self) -> int:
        """Parameters of its largest leaf module (the token embedding): what sequential offload keeps resident."""
        return max(self.vocab_size * self.d_model, self.d_model * self.d_ff)


@dataclass(frozen=True)
class Architecture:
    """What sizes a model's memory: its transformer, text encoder and VAE."""

    transformer: Transformer
    text_encoder: TextEncoder
    vae_parameters: int
    vae_decode_bytes_per_pixel: int = VAE_DECODE_BYTES_PER_PIXEL


def vae_tiling(width: int, height: int, offload: str) -> bool:
    """Whether the backend decodes in tiles: for frames of TILING_PIXELS or more, and for any frame larger than a
    tile when it offloads (memory is then what matters: a 540p decode is ~10 GiB whole, ~1.3 GiB a tile)."""
    pixels = width * height
    return pixels >= TILING_PIXELS or (offload != "none" and pixels > VAE_TILE_PIXELS)


@dataclass(frozen=True)
class Estimate:
    """The GPU memory of one model's render at one size and largest window, in bytes."""

    transformer: int
    text_encoder: int
    vae: int
    activations: int
    vae_decode: int
    tokens: int
    vae_tiling: bool

    @property
    def weights(self) -> int:
        return self.transformer + self.text_encoder + self.vae

    def needs(self, offload: str, largest_module: int) -> int:
        """Bytes the render needs with this offload (the runtime's own included)."""
        if offload == "none":
            held = self.weights + max(self.activations, self.vae_decode)
        elif offload == "model":  # one component on the GPU at a time, with its working memory
            held = max(self.text_encoder, self.transformer + self.activations, self.vae + self.vae_decode)
        else:  # every leaf streams in for its call: the largest one resident, the working memory as without
            held = largest_module + max(self.activations, self.vae_decode)
        return held + RUNTIME_BYTES


def estimate(architecture: Architecture, width: int, height: int, window_latents: int, offload: str, *,
             dtype_bytes: int = 2, vae_dtype_bytes: int = 4) -> Estimate:
    """The memory a render of `window_latents`-latent windows at width x height needs (see the module docstring)."""
    t = architecture.transformer
    tokens = window_latents * (height // SPACE_COMPRESSION) * (width // SPACE_COMPRESSION)
    d, f = t.width, t.ffn_dim
    activations = tokens * (8 * d * dtype_bytes + 11 * d * 4 + 2 * f * dtype_bytes)
    tiling = vae_tiling(width, height, offload)
    pixels = min(width * height, VAE_TILE_PIXELS) if tiling else width * height
    decode = pixels * architecture.vae_decode_bytes_per_pixel * vae_dtype_bytes // 4
    if tiling:  # the decoded frames of the chunk, whole, beside the tile being decoded
        decode += width * height * 3 * TIME_COMPRESSION * vae_dtype_bytes
    return Estimate(transformer=t.parameters() * dtype_bytes,
                    text_encoder=architecture.text_encoder.parameters() * dtype_bytes,
                    vae=architecture.vae_parameters * vae_dtype_bytes, activations=activations, vae_decode=decode,
                    tokens=tokens, vae_tiling=tiling)


def needs(architecture: Architecture, width: int, height: int, window_latents: int, offload: str) -> int:
    """Bytes a render needs (see `estimate`)."""
    found = estimate(architecture, width, height, window_latents, offload)
    return found.needs(offload, _largest(architecture))


def _largest(architecture: Architecture) -> int:
    """The largest leaf module's bytes (bf16): what sequential offload keeps on the GPU besides working memory."""
    t = architecture.transformer
    return 2 * max(architecture.text_encoder.largest_module(), t.width * t.ffn_dim, 6 * t.width * t.width)


def gib(count: int) -> str:
    return f"{count / GIB:.1f} GiB"


# The checkpoints' configurations: transformer/config.json of Skywork/SkyReels-V2-DF-*-Diffusers (as diffusers'
# scripts/convert_skyreelsv2_to_diffusers.py writes them; bench/gpu_bench.py builds the same), the umT5-XXL encoder
# their text_encoder/config.json names, and the Wan 2.1 VAE (AutoencoderKLWan's defaults, 126,892,531 parameters).
UMT5_XXL = TextEncoder(vocab_size=256_384, d_model=4096, d_kv=64, num_heads=64, d_ff=10_240, num_layers=24)
WAN_VAE_PARAMETERS = 126_892_531
DF_1_3B = Transformer(num_layers=30, num_attention_heads=12, attention_head_dim=128, ffn_dim=8960,
                      inject_sample_info=True)
DF_14B = Transformer(num_layers=40, num_attention_heads=40, attention_head_dim=128, ffn_dim=13_824)
# backends/tiny.py builds the tiny model from these (its VAE: base_dim 3, 13,861 parameters, 1,787 bytes a pixel)
TINY_TRANSFORMER = Transformer(num_layers=2, num_attention_heads=2, attention_head_dim=12, ffn_dim=32, text_dim=32,
                               inject_sample_info=True)
TINY_TEXT_ENCODER = TextEncoder(vocab_size=384, d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2,
                                relative_attention_num_buckets=8)
ARCHITECTURES: dict[str, Architecture] = {
    "df-1.3b-540p": Architecture(DF_1_3B, UMT5_XXL, WAN_VAE_PARAMETERS),
    "df-14b-540p": Architecture(DF_14B, UMT5_XXL, WAN_VAE_PARAMETERS),
    "df-14b-720p": Architecture(DF_14B, UMT5_XXL, WAN_VAE_PARAMETERS),
    "tiny": Architecture(TINY_TRANSFORMER, TINY_TEXT_ENCODER, 13_861, vae_decode_bytes_per_pixel=1_787),
}
