"""The `tiny` model preset: a seeded, randomly initialised SkyReels-V2 DF pipeline built offline."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Bump when the recipe below changes: the folder name and every job's backend identity follow it.
TINY_RECIPE = "tiny-df-v1"


def storyforge_home() -> Path:
    """Where storyforge keeps per-user files: $STORYFORGE_HOME, else ~/.cache/storyforge."""
    return Path(os.environ.get("STORYFORGE_HOME") or Path.home() / ".cache" / "storyforge").expanduser()


def tiny_model_folder(cache_root: Path | None = None) -> Path:
    """The tiny DF pipeline's folder (`from_pretrained`-loadable), built and saved on first use.

    The folder is written to a temporary sibling and renamed into place, so a folder that exists is
    complete; when two processes race, the loser's copy is discarded (both are byte-identical).
    """
    return built_folder(TINY_RECIPE, build_tiny_pipeline, cache_root)


def built_folder(recipe: str, build: Callable[[], Any], cache_root: Path | None = None) -> Path:
    """`<storyforge home>/models/<recipe>`, holding what `build()` returns saved with save_pretrained."""
    root = Path(cache_root) if cache_root is not None else storyforge_home()
    folder = root / "models" / recipe
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{recipe}.", dir=folder.parent))
    try:
        build().save_pretrained(staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is a normal user folder
        try:
            os.replace(staging, folder)
        except OSError:
            if not folder.is_dir():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def build_tiny_pipeline():
    """The tiny pipeline in memory: the real DF architecture at toy size, weights from fixed seeds.

    Sizes follow the research recipe: an x8-space/x4-time VAE like the real one, rope_max_seq_len 1024
    (diffusers' test value 32 breaks past 32 latents or 512 px) and the fps embedding the DF checkpoints have.
    """
    import torch  # here, not above: finding the folder (a cached render's key) needs no torch
    from diffusers import (
        AutoencoderKLWan,
        SkyReelsV2DiffusionForcingPipeline,
        SkyReelsV2Transformer3DModel,
        UniPCMultistepScheduler,
    )
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    tokenizer = ByT5Tokenizer()  # byte-level: needs no vocabulary file, so nothing is downloaded
    # fork_rng: seeding for the weights must not reset the caller's global RNG
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        text_encoder = UMT5EncoderModel(UMT5Config(
            vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=32, dropout_rate=0.0,
            feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1)).eval()
        torch.manual_seed(0)
        vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                               temperal_downsample=[False, True, True]).eval()
        torch.manual_seed(0)
        transformer = SkyReelsV2Transformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
            text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", rope_max_seq_len=1024, inject_sample_info=True).eval()
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=8.0)
    return SkyReelsV2DiffusionForcingPipeline(tokenizer=tokenizer, text_encoder=text_encoder,
                                              transformer=transformer, vae=vae, scheduler=scheduler)
