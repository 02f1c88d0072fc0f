"""Keyframes: what Qwen-Image-Edit-2509 needs (parameters, bf16 bytes, FLOPs per keyframe, computed from its
published architecture on the meta device: no weights, no GPU), and the tiny edit model's time on this CPU.

    python bench/keyframe_bench.py [--references 2] [--size 960x544] [--steps 40] [--tiny]
"""

from __future__ import annotations

import argparse
import time

# Qwen/Qwen-Image-Edit-2509's configs (transformer/config.json, text_encoder/config.json, vae/config.json).
TRANSFORMER = {"patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 60, "attention_head_dim": 128,
               "num_attention_heads": 24, "joint_attention_dim": 3584, "guidance_embeds": False,
               "axes_dims_rope": (16, 56, 56)}
TEXT = {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
        "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": False,
        "rope_parameters": {"mrope_section": [16, 24, 24], "rope_type": "default", "rope_theta": 1e6}}
VISION = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
          "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
          "fullatt_block_indexes": [7, 15, 23, 31]}
SUSTAINED = 400e12  # bf16 FLOP/s an H100/H200 sustains on large attention and matmuls (about 40 % of peak)


def parameters() -> dict[str, int]:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    with init_empty_weights():
        parts = {
            "transformer": QwenImageTransformer2DModel(**TRANSFORMER),
            "text_encoder": Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(text_config=TEXT,
                                                                                vision_config=VISION)),
            "vae": AutoencoderKLQwenImage(),
        }
    return {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}


def flops_per_keyframe(width: int, height: int, references: int, steps: int, per_token: float) -> float:
    """Transformer FLOPs: each pass covers the output's tokens, 4096 per reference (sized to 1024x1024 for the
    VAE) and about 200 text-and-vision tokens per reference; classifier-free guidance doubles the passes."""
    tokens = width // 16 * (height // 16) + references * (4096 + 200) + 100
    layers, width_model = TRANSFORMER["num_layers"], TRANSFORMER["num_attention_heads"] * 128
    per_pass = 2 * per_token * tokens + 4 * tokens**2 * width_model * layers
    return 2 * steps * per_pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--references", type=int, default=2)
    parser.add_argument("--size", default="960x544")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--tiny", action="store_true", help="also time the tiny edit model on this CPU")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    counts = parameters()
    total = sum(counts.values())
    for name, count in counts.items():
        print(f"{name:13} {count / 1e9:6.2f} B parameters  {count * 2 / 1e9:6.1f} GB in bf16")
    print(f"{'all':13} {total / 1e9:6.2f} B parameters  {total * 2 / 1e9:6.1f} GB in bf16")
    # MMDiT: a token passes through its own stream's weights, about half of the transformer's
    flops = flops_per_keyframe(width, height, args.references, args.steps, counts["transformer"] / 2)
    print(f"one keyframe at {width}x{height} from {args.references} references, {args.steps} steps with guidance: "
          f"{flops:.2e} FLOPs, about {flops / SUSTAINED:.0f} s at {SUSTAINED / 1e12:.0f} TFLOP/s")
    if args.tiny:
        import tempfile
        from pathlib import Path

        import numpy as np
        import torch

        from storyforge.backends.keyframe import ImageEdit
        from storyforge.plan.model import Keyframe, Reference
        from storyforge.story.resolve import Image

        torch.set_num_threads(1)
        folder = Path(tempfile.mkdtemp())
        from PIL import Image as Picture

        paths = []
        for n in range(args.references):
            path = folder / f"ref{n}.png"
            Picture.fromarray(np.full((64, 64, 3), 40 * n, np.uint8)).save(path)
            paths.append(Reference("character", f"c{n}", "", Image(path, path.name, "")))
        keyframe = Keyframe(references=tuple(paths), cast=(), location=None, prompt="a frame", model="tiny",
                            steps=2, guidance=1.0, seed=0, width=64, height=64)
        backend = ImageEdit()
        backend.render(keyframe)  # build and load
        started = time.perf_counter()
        backend.render(keyframe)
        print(f"tiny edit model, 64x64 from {args.references} references, 2 steps, 1 CPU thread: "
              f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
