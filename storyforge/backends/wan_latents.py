"""Wan VAE latents to frames a latent frame at a time: the pixels `vae.decode` makes, without the whole video at once.

AutoencoderKLWan decodes causally, one latent frame after another, carrying each convolution's last frames
in a cache; `decode` then concatenates every frame of the clip (float32, several GB for a long 540p shot)
before anything can be written. `decode_chunks` makes the same decoder calls in the same order, tiled or
not, and hands over each latent frame's pixels (1 frame for the first latent, 4 for each after) as soon as
they exist, so a backend can stream them into the clip writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


def denormalize(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Latents as the pipelines hand them out (output_type="latent") to what the VAE decodes."""
    latents = latents.to(vae.dtype)
    mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
    std = 1.0 / torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(latents.device,
                                                                                            latents.dtype)
    return latents / std + mean


def supported(vae: Any) -> bool:
    """Whether this diffusers version's AutoencoderKLWan has the decoder internals streaming relies on."""
    return all(hasattr(vae, name) for name in ("clear_cache", "decoder", "post_quant_conv", "use_tiling",
                                               "tile_sample_min_height", "blend_v", "blend_h"))


@torch.no_grad()
def decode_chunks(vae: Any, z: torch.Tensor) -> Iterator[torch.Tensor]:
    """`vae.decode(z).sample` (batch of one), one latent frame's pixels at a time: (1, 3, n, H, W) in [-1, 1]."""
    hook = getattr(vae, "_hf_hook", None)
    if hook is not None and hasattr(hook, "pre_forward"):  # model offload: what @apply_forward_hook does
        hook.pre_forward(vae)
    _, _, frames, height, width = z.shape
    min_height = vae.tile_sample_min_height // vae.spatial_compression_ratio
    min_width = vae.tile_sample_min_width // vae.spatial_compression_ratio
    if vae.use_tiling and (width > min_width or height > min_height):
        chunks = _tiled(vae, z)
    else:
        chunks = _whole(vae, z)
    try:
        for out in chunks:
            if vae.config.patch_size is not None:
                from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

                out = unpatchify(out, patch_size=vae.config.patch_size)
            yield torch.clamp(out, min=-1.0, max=1.0)
    finally:
        vae.clear_cache()


def _whole(vae: Any, z: torch.Tensor) -> Iterator[torch.Tensor]:
    vae.clear_cache()
    x = vae.post_quant_conv(z)
    for i in range(z.shape[2]):
        vae._conv_idx = [0]
        yield vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=i == 0)


def _tiled(vae: Any, z: torch.Tensor) -> Iterator[torch.Tensor]:
    """tiled_decode's tiles, each with its own convolution cache, advanced one latent frame at a time together;
    the blending of overlapping tiles works frame by frame, so each frame blends as tiled_decode blends it."""
    _, _, frames, height, width = z.shape
    ratio = vae.spatial_compression_ratio
    min_height, min_width = vae.tile_sample_min_height // ratio, vae.tile_sample_min_width // ratio
    stride_height, stride_width = vae.tile_sample_stride_height // ratio, vae.tile_sample_stride_width // ratio
    sample_height, sample_width = height * ratio, width * ratio
    sample_stride_height, sample_stride_width = vae.tile_sample_stride_height, vae.tile_sample_stride_width
    blend_height = vae.tile_sample_min_height - sample_stride_height
    blend_width = vae.tile_sample_min_width - sample_stride_width
    if vae.config.patch_size is not None:
        patch = vae.config.patch_size
        sample_height, sample_width = sample_height // patch, sample_width // patch
        sample_stride_height, sample_stride_width = sample_stride_height // patch, sample_stride_width // patch
        blend_height = vae.tile_sample_min_height // patch - sample_stride_height
        blend_width = vae.tile_sample_min_width // patch - sample_stride_width
    origins = [[(i, j) for j in range(0, width, stride_width)] for i in range(0, height, stride_height)]
    caches: dict[tuple[int, int], list[Any]] = {}
    for k in range(frames):
        rows = []
        for row in origins:
            decoded = []
            for i, j in row:
                vae.clear_cache()  # a fresh cache list, then this tile's own from the frames before
                if k:
                    vae._feat_map = caches[(i, j)]
                vae._conv_idx = [0]
                tile = vae.post_quant_conv(z[:, :, k:k + 1, i:i + min_height, j:j + min_width])
                decoded.append(vae.decoder(tile, feat_cache=vae._feat_map, feat_idx=vae._conv_idx,
                                           first_chunk=k == 0))
                caches[(i, j)] = vae._feat_map
            rows.append(decoded)
        result_rows = []
        for r, row in enumerate(rows):
            result_row = []
            for c, tile in enumerate(row):
                if r > 0:
                    tile = vae.blend_v(rows[r - 1][c], tile, blend_height)
                if c > 0:
                    tile = vae.blend_h(row[c - 1], tile, blend_width)
                result_row.append(tile[:, :, :, :sample_stride_height, :sample_stride_width])
            result_rows.append(torch.cat(result_row, dim=-1))
        yield torch.cat(result_rows, dim=3)[:, :, :, :sample_height, :sample_width]
