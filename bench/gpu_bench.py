"""GPU benchmark: one 97-frame 540p window at 30 steps through the skyreels-df backend and a bare diffusers call.

Usage: python bench/gpu_bench.py [--model 1.3b|14b] [--steps 30] [--frames 97] [--peak-tflops N] [--rounds 1]
       python bench/gpu_bench.py --smoke     (the same code on CPU with the tiny model: a check, not a figure)

Without a CUDA device it prints why and exits 0. The models are SkyReels-V2 DF's real transformer
configurations (diffusers' scripts/convert_skyreelsv2_to_diffusers.py, matching the hub checkpoints'
transformer/config.json) with random bf16 weights: throughput does not depend on the weights. The VAE is
the Wan 2.1 VAE configuration (diffusers' defaults for AutoencoderKLWan), also random; the text encoder is
a small UMT5 with the real width (4096) so its one call per prompt stays negligible next to the
transformer's. Nothing is downloaded.

Printed for each side (backend, bare): seconds per transformer call (CUDA events around every call of the
transformer's forward, guidance's two branches counted as two calls), achieved TFLOP/s and MFU against the
device's dense bf16 peak, wall seconds of the whole call (text encoding and VAE decode included), peak GPU
memory; then the ratio backend / bare.

FLOPs of one transformer call (multiply-adds counted as 2; layer norms, modulation, RoPE, softmax and the
patch/time embeddings are left out, under 1 % here):
    L = latent frames x (height / 16) x (width / 16)    tokens (VAE: 4x in time, 8x8 in space; 2x2 patches)
    T = 512                                             text tokens (the pipelines pad prompts to 512)
    d = heads x head_dim, f = ffn_dim, per layer:
      self-attention   Q, K, V, O projections   8 L d^2      scores and weighted sum   4 L^2 d
      cross-attention  Q, O on L tokens         4 L d^2      K, V on T text tokens     4 T d^2
                       scores and weighted sum  4 L T d
      feed-forward     two matmuls              4 L d f
    FLOPs = layers x (12 L d^2 + 4 T d^2 + 4 L^2 d + 4 L T d + 4 L d f)
At 960x544, 97 frames: L = 25 x 34 x 60 = 51,000 tokens; 1.3B: about 0.61 PFLOP a call, 14B: about 3.37.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# diffusers' SkyReelsV2Transformer3DModel configurations of the DF checkpoints
TRANSFORMERS: dict[str, dict[str, Any]] = {
    "1.3b": {"added_kv_proj_dim": None, "attention_head_dim": 128, "cross_attn_norm": True, "eps": 1e-06,
             "ffn_dim": 8960, "freq_dim": 256, "in_channels": 16, "num_attention_heads": 12,
             "inject_sample_info": True, "num_layers": 30, "out_channels": 16, "patch_size": [1, 2, 2],
             "qk_norm": "rms_norm_across_heads", "text_dim": 4096},
    "14b": {"added_kv_proj_dim": None, "attention_head_dim": 128, "cross_attn_norm": True, "eps": 1e-06,
            "ffn_dim": 13824, "freq_dim": 256, "in_channels": 16, "num_attention_heads": 40,
            "inject_sample_info": False, "num_layers": 40, "out_channels": 16, "patch_size": [1, 2, 2],
            "qk_norm": "rms_norm_across_heads", "text_dim": 4096},
}
PRESET = {"1.3b": "df-1.3b-540p", "14b": "df-14b-540p"}
TEXT_TOKENS = 512
# Dense bf16 tensor-core peaks from the vendors' data sheets (TFLOP/s, no sparsity), by device name.
PEAKS = (("H200", 989.4), ("H100 SXM", 989.4), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.4),
         ("GH200", 989.4), ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.1), ("L40", 181.0), ("A10G", 70.0),
         ("A10", 125.0), ("RTX 4090", 165.2), ("RTX 6000 Ada", 364.2), ("L4", 121.0))


def transformer_flops(config: dict[str, Any], latent_frames: int, height: int, width: int,
                      text_tokens: int = TEXT_TOKENS) -> float:
    """FLOPs of one transformer call (see the module docstring for the formula)."""
    p_t, p_h, p_w = config["patch_size"]
    tokens = (latent_frames // p_t) * (height // 8 // p_h) * (width // 8 // p_w)
    d = config["num_attention_heads"] * config["attention_head_dim"]
    f, t = config["ffn_dim"], text_tokens
    per_layer = 12 * tokens * d * d + 4 * t * d * d + 4 * tokens * tokens * d + 4 * tokens * t * d + 4 * tokens * d * f
    return float(config["num_layers"] * per_layer)


def device_peak(name: str) -> float | None:
    for key, peak in PEAKS:
        if key.lower() in name.lower():
            return peak
    return None


def build_pipeline(transformer_config: dict[str, Any], device: str, dtype: Any, tiny: bool) -> Any:
    """A SkyReels-V2 DF pipeline of random weights: the real transformer and VAE configurations."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        SkyReelsV2DiffusionForcingPipeline,
        SkyReelsV2Transformer3DModel,
        UniPCMultistepScheduler,
    )
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    if tiny:
        from storyforge.backends.tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline().to(device)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # parameters are made in bf16 on the device: no float32 copy of 14B first
    try:
        with torch.device(device):
            transformer = SkyReelsV2Transformer3DModel(**transformer_config).eval()
            text_encoder = UMT5EncoderModel(UMT5Config(
                vocab_size=384, d_model=transformer_config["text_dim"], d_kv=64, d_ff=1024, num_layers=1,
                num_heads=8, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                dropout_rate=0.0, feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1)).eval()
    finally:
        torch.set_default_dtype(previous)
    # what from_pretrained keeps in float32 for this model class
    keep = set(getattr(transformer, "_keep_in_fp32_modules", None) or ())
    for name, module in transformer.named_modules():
        if name.rsplit(".", 1)[-1] in keep:
            module.float()
    for name, parameter in transformer.named_parameters():
        if name.rsplit(".", 1)[-1] in keep:
            parameter.data = parameter.data.float()
    with torch.device(device):
        vae = AutoencoderKLWan().eval()  # the Wan 2.1 VAE's configuration, float32 as the backend runs it
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=8.0)
    pipe = SkyReelsV2DiffusionForcingPipeline(tokenizer=ByT5Tokenizer(), text_encoder=text_encoder,
                                              transformer=transformer, vae=vae, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def plan_job(model: str, frames: int, steps: int, width: int, height: int) -> Any:
    """The story's one job: `frames` frames at the preset's settings, one window."""
    from storyforge import api

    folder = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    path = folder / "bench.yaml"
    path.write_text(textwrap.dedent(f"""\
        storyforge: 1
        title: GPU bench
        render: {{model: {model}, resolution: {width}x{height}, steps: {steps}, fps: 24, base_frames: {frames},
                  overlap_frames: {5 if frames < 37 else 17}}}
        scenes:
          - id: s
            shots:
              - id: a
                prompt: a red fox runs along a frozen river under a pale winter sun, tracking shot
                duration: {frames}f
        """), encoding="utf-8")
    job = api.plan(path).jobs[0]
    if len(job.segments) != 1 or job.num_frames != frames:
        raise SystemExit(f"the plan made {len(job.segments)} windows of {job.num_frames} frames; expected one "
                         f"window of {frames}")
    return job


class CallTimer:
    """CUDA events (or the wall clock on CPU) around every forward call of a module."""

    def __init__(self, module: Any, device: str):
        import torch

        self.cuda = device.startswith("cuda")
        self.pairs: list[tuple[Any, Any]] = []
        self._torch = torch

        def before(_module: Any, _args: Any) -> None:
            self.pairs.append((self._now(), None))

        def after(_module: Any, _args: Any, _output: Any) -> None:
            start, _ = self.pairs[-1]
            self.pairs[-1] = (start, self._now())

        self.handles = [module.register_forward_pre_hook(before), module.register_forward_hook(after)]

    def _now(self) -> Any:
        if self.cuda:
            event = self._torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def reset(self) -> None:
        self.pairs = []

    def seconds(self) -> list[float]:
        if self.cuda:
            self._torch.cuda.synchronize()
            return [start.elapsed_time(end) / 1000 for start, end in self.pairs]
        return [end - start for start, end in self.pairs]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@dataclass
class Result:
    calls: int
    seconds_per_call: float
    wall: float
    peak_gib: float


def measure(run: Any, timer: CallTimer, device: str) -> Result:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    timer.reset()
    started = time.perf_counter()
    run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    calls = timer.seconds()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0
    return Result(len(calls), sum(calls) / max(len(calls), 1), wall, peak)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=tuple(TRANSFORMERS), default="1.3b", help="1.3b, or 14b (about 40 GB)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--frames", type=int, default=97)
    parser.add_argument("--rounds", type=int, default=1, help="measured rounds per side, after one warm-up call")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, if unknown")
    parser.add_argument("--smoke", action="store_true", help="the tiny model on CPU: checks the code, no figures")
    args = parser.parse_args()

    try:
        import torch
    except ModuleNotFoundError:
        print("gpu_bench: torch is not installed (pip install 'storyforge[render]'); nothing to measure")
        return 0
    if args.smoke:
        device, width, height, frames, steps, model = "cpu", 64, 64, 17, 2, "tiny"
        config = None
    else:
        if not torch.cuda.is_available():
            print("gpu_bench: no CUDA device here; this benchmark measures a GPU, so it skips (exit 0)")
            return 0
        device, width, height, frames, steps = "cuda", 960, 544, args.frames, args.steps
        model, config = PRESET[args.model], TRANSFORMERS[args.model]
    from storyforge.backends.base import RenderInputs
    from storyforge.backends.skyreels_df import SkyReelsDF, _Loaded

    job = plan_job(model, frames, steps, width, height)
    pipe = build_pipeline(config or {}, device, torch.bfloat16, tiny=config is None)
    backend = SkyReelsDF(device=device, dtype="bfloat16" if device == "cuda" else "float32")
    # the backend takes this pipeline as the model's, as if it had loaded it (nothing to download)
    backend._loaded[job.settings.model] = _Loaded(pipelines={"t2v": pipe}, scheduler_config=dict(pipe.scheduler.config))
    arguments = backend.call_arguments(job, RenderInputs())
    scheduler = backend._scheduler(backend._loaded[job.settings.model], job.settings.shift)

    def through_backend() -> None:
        for _chunk in backend.frames(job, RenderInputs()) if hasattr(backend, "frames") else \
                [backend.render(job, RenderInputs())]:
            pass

    def bare() -> None:
        pipe.scheduler = scheduler
        generator = torch.Generator(device="cpu").manual_seed(job.seed)
        pipe(**arguments, generator=generator)

    timer = CallTimer(pipe.transformer, device)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = args.peak_tflops or (device_peak(name) if device == "cuda" else None)
    latent_frames = (frames - 1) // 4 + 1
    flops = transformer_flops(config or pipe.transformer.config, latent_frames, height, width)
    print(f"{name}: {model}, {frames} frames at {width}x{height}, {steps} steps, guidance {job.settings.guidance}; "
          f"{flops / 1e12:,.3f} TFLOP a transformer call; peak {peak or 'unknown'} TFLOP/s")
    with torch.inference_mode():
        through_backend()  # warm-up: kernels, allocator, autotuning
        results: dict[str, list[Result]] = {"backend": [], "bare": []}
        for _ in range(args.rounds):
            for side, run in (("backend", through_backend), ("bare", bare)):
                results[side].append(measure(run, timer, device))
    timer.remove()
    for side, runs in results.items():
        best = min(runs, key=lambda r: r.wall)
        achieved = flops / best.seconds_per_call / 1e12
        mfu = f"{100 * achieved / peak:5.1f}% MFU" if peak else "MFU unknown (pass --peak-tflops)"
        print(f"{side:8} {best.calls:3} transformer calls, {best.seconds_per_call:7.3f} s a call, "
              f"{achieved:7.1f} TFLOP/s, {mfu}; whole call {best.wall:7.1f} s; peak memory {best.peak_gib:5.1f} GiB")
    ratio = min(r.wall for r in results["backend"]) / min(r.wall for r in results["bare"])
    per_call = (min(r.seconds_per_call for r in results["backend"])
                / min(r.seconds_per_call for r in results["bare"]))
    print(f"backend / bare: {ratio:.3f}x the whole call, {per_call:.3f}x a transformer call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
