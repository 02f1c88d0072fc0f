"""Does it fit? The memory estimate against the real modules' parameter counts, the tiny model's measured peak on
CPU, the figures for 1.3B and 14B, and the plan's refusal of what cannot fit in render.gpu_memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

from storyforge import api
from storyforge.errors import PlanError, StoryError
from storyforge.plan import memory as mem

torch = pytest.importorskip("torch")

# One transformer call or one VAE decode in a fresh process; the peak resident set above what it held before
# (VmHWM reset through /proc/self/clear_refs). Large allocations go straight to mmap, so freed memory leaves the
# resident set and the peak is the tensors' own.
PROBE = textwrap.dedent("""\
    import json, re, sys, torch
    torch.set_num_threads(1)
    def status(key):
        return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
    what, config, frames, height, width = sys.argv[1], json.loads(sys.argv[2]), *map(int, sys.argv[3:6])
    with torch.no_grad():
        if what == "transformer":
            from diffusers import SkyReelsV2Transformer3DModel
            model = SkyReelsV2Transformer3DModel(**config).eval()
            x = torch.randn(1, 16, frames, height // 8, width // 8)
            t = torch.randint(0, 1000, (1, frames))
            text = torch.randn(1, 512, config["text_dim"])
            run = lambda: model(x, t, text, enable_diffusion_forcing=True, fps=[0])
        else:
            from diffusers import AutoencoderKLWan
            from storyforge.backends.wan_latents import decode_chunks
            vae = AutoencoderKLWan(**config).eval()
            z = torch.randn(1, 16, frames, height // 8, width // 8)
            run = lambda: [None for _ in decode_chunks(vae, z)]
        run()  # first call: lazy set-up
        before = status("VmRSS")
        open("/proc/self/clear_refs", "w").write("5")
        run()
        print(json.dumps(status("VmHWM") - before))
""")
TINY_TRANSFORMER = {"patch_size": [1, 2, 2], "num_attention_heads": 2, "attention_head_dim": 12, "in_channels": 16,
                    "out_channels": 16, "text_dim": 32, "freq_dim": 256, "ffn_dim": 32, "num_layers": 2,
                    "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 1024,
                    "inject_sample_info": True}
TINY_VAE = {"base_dim": 3, "z_dim": 16, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1,
            "temperal_downsample": [False, True, True]}


def measured(what: str, config: dict, frames: int, height: int, width: int) -> int:
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak")
    done = subprocess.run([sys.executable, "-c", PROBE, what, json.dumps(config), str(frames), str(height),
                           str(width)], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_MMAP_THRESHOLD_": "65536"})
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_parameter_counts_are_the_real_modules() -> None:
    from accelerate import init_empty_weights
    from diffusers import SkyReelsV2Transformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    sys.path.insert(0, str(ROOT / "bench"))
    from gpu_bench import TRANSFORMERS  # the checkpoints' configurations the GPU bench builds

    for name, shape in (("1.3b", mem.DF_1_3B), ("14b", mem.DF_14B)):
        with init_empty_weights():
            model = SkyReelsV2Transformer3DModel(**TRANSFORMERS[name])
        assert shape.parameters() == sum(p.numel() for p in model.parameters())
    xxl = mem.UMT5_XXL
    with torch.device("meta"):  # tied embeddings stay tied (init_empty_weights unties them)
        encoder = UMT5EncoderModel(UMT5Config(vocab_size=xxl.vocab_size, d_model=xxl.d_model, d_kv=xxl.d_kv,
                                              d_ff=xxl.d_ff, num_layers=xxl.num_layers, num_heads=xxl.num_heads,
                                              feed_forward_proj="gated-gelu"))
    assert xxl.parameters() == sum(p.numel() for p in encoder.parameters()) == 5_680_910_336
    from storyforge.backends.tiny import build_tiny_pipeline

    tiny = build_tiny_pipeline()
    architecture = mem.ARCHITECTURES["tiny"]
    assert architecture.transformer.parameters() == sum(p.numel() for p in tiny.transformer.parameters())
    assert architecture.text_encoder.parameters() == sum(p.numel() for p in tiny.text_encoder.parameters())
    assert architecture.vae_parameters == sum(p.numel() for p in tiny.vae.parameters())


# The table of the closing note: GiB needed with each offload, at each preset's own window (25 latents at 540p,
# 31 at 720p); weights | activations | VAE decode (tiled where the offload tiles it) | none, model, sequential.
TABLE = {
    ("df-1.3b-540p", 960, 544, 25): ("13.7", "6.1", ("25.0", "11.6", "9.0")),
    ("df-1.3b-540p", 1280, 720, 31): ("13.7", "13.3", ("28.0", "17.0", "16.3")),
    ("df-14b-540p", 960, 544, 25): ("37.7", "17.2", ("55.9", "44.8", "20.2")),
    ("df-14b-720p", 1280, 720, 31): ("37.7", "37.7", ("76.3", "65.3", "40.6")),
}


@pytest.mark.parametrize("row", sorted(TABLE))
def test_the_figures_for_the_real_models(row: tuple) -> None:
    name, width, height, window = row
    weights, activations, needs = TABLE[row]
    architecture = mem.ARCHITECTURES[name]
    found = mem.estimate(architecture, width, height, window, "none")
    assert (f"{found.weights / mem.GIB:.1f}", f"{found.activations / mem.GIB:.1f}") == (weights, activations)
    assert tuple(f"{mem.needs(architecture, width, height, window, o) / mem.GIB:.1f}" for o in mem.OFFLOADS) == needs


@pytest.mark.parametrize(("config", "frames", "height", "width"), [
    (TINY_TRANSFORMER, 25, 256, 256),  # the tiny model at a 97-frame window, 6,400 tokens
    (TINY_TRANSFORMER, 13, 384, 384),
    # one layer as wide as the 1.3B model's (activations do not depend on the number of layers)
    ({**TINY_TRANSFORMER, "num_attention_heads": 12, "attention_head_dim": 128, "ffn_dim": 8960, "num_layers": 1},
     2, 256, 256),
])
def test_activations_match_the_measured_peak_on_cpu(config: dict, frames: int, height: int, width: int) -> None:
    shape = mem.Transformer(num_layers=config["num_layers"], num_attention_heads=config["num_attention_heads"],
                            attention_head_dim=config["attention_head_dim"], ffn_dim=config["ffn_dim"],
                            text_dim=config["text_dim"], inject_sample_info=True)
    architecture = mem.Architecture(shape, mem.TINY_TEXT_ENCODER, 0)
    expected = mem.estimate(architecture, width, height, frames, "none", dtype_bytes=4).activations  # CPU: float32
    peak = measured("transformer", config, frames, height, width)
    assert abs(peak - expected) <= mem.ACTIVATION_TOLERANCE * expected, (peak, expected)


@pytest.mark.parametrize(("height", "width"), [(192, 320), (384, 384)])
def test_the_vae_decode_matches_the_measured_peak_on_cpu(height: int, width: int) -> None:
    architecture = mem.ARCHITECTURES["tiny"]
    expected = mem.estimate(architecture, width, height, 3, "none").vae_decode
    peak = measured("vae", TINY_VAE, 3, height, width)
    assert abs(peak - expected) <= mem.ACTIVATION_TOLERANCE * expected, (peak, expected)


BIG = """\
storyforge: 1
title: Big
render:
  model: df-14b-720p
  gpu_memory: 24GB
  offload: none
scenes:
  - id: s
    shots:
      - {id: a, prompt: a fox, duration: 121f}
"""


def test_a_14b_720p_story_that_cannot_fit_24gb_is_refused_naming_what_fits(write_story) -> None:
    with pytest.raises(PlanError) as caught:
        api.plan(write_story(BIG))
    assert [str(p) for p in caught.value.problems] == [
        "film.yaml:5: s/a: df-14b-720p at 1280x720 with offload 'none' needs about 76.3 GiB of GPU memory (weights "
        "37.7 GiB, activations of the largest window (111,600 tokens) 37.7 GiB, VAE decode 1.3 GiB), more than "
        "gpu_memory 24.0 GiB; what fits: base_frames: 65 and offload: sequential (≈ 23.6 GiB), resolution: 540p "
        "and model: df-14b-540p and offload: sequential (≈ 20.2 GiB), model: df-1.3b-540p and offload: model "
        "(≈ 17.0 GiB)"]
    for fix in caught.value.problems[0].fixes:  # each one plans
        text = BIG
        for name, value in fix:
            text = text.replace("  offload: none\n", "") if name == "offload" else text
            text = text.replace("render:\n", f"render:\n  {name}: {value}\n", 1) if name != "model" else \
                text.replace("model: df-14b-720p", f"model: {value}")
        if "resolution" not in text:
            text = text.replace("render:\n", "render:\n  resolution: 720p\n")
        plan = api.plan(write_story(text))
        assert plan.memory[0].needs[plan.memory[0].offload] <= 24 * mem.GIB


def test_what_fits_is_planned_and_shown(write_story) -> None:
    plan = api.plan(write_story(BIG.replace("gpu_memory: 24GB", "gpu_memory: 80GB")))
    (need,) = plan.memory
    assert (need.model, need.window_latents, need.tokens, need.budget) == ("df-14b-720p", 31, 111_600, 80 * mem.GIB)
    assert plan.to_json()["gpu_memory"][0]["needs"]["none"] == need.needs["none"] <= 80 * mem.GIB


@pytest.mark.parametrize(("written", "expected"), [("24GB", 24), ("24 GiB", 24), ("80G", 80), ("12.5", 12.5)])
def test_gpu_memory_sizes(written: str, expected: float) -> None:
    from storyforge.story.models import parse_memory

    assert parse_memory(written) == int(expected * mem.GIB)


def test_a_gpu_memory_that_is_no_size_is_an_error(write_story) -> None:
    with pytest.raises(StoryError) as caught:
        api.validate(write_story(BIG.replace("24GB", "lots")))
    assert [str(p) for p in caught.value.problems] == [
        "film.yaml:5: render.gpu_memory: 'lots' is not a memory size; write the GPU's memory like 24GB or 80GB"]


def test_a_preset_at_another_resolution_warns(write_story) -> None:
    _, plan = api.check(write_story(BIG.replace("  gpu_memory: 24GB\n  offload: none\n", "  resolution: 540p\n")))
    assert [str(w) for w in plan.warnings] == [
        "film.yaml:5: s/a: df-14b-720p was trained at 1280x720, and this film is 960x544: use df-14b-540p, made for it"]


@pytest.mark.parametrize(("model", "expected"), [
    ("tiny", "1 keyframe first with tiny (no time estimate: only qwen-image-edit's is computed)"),
    ("qwen-image-edit", "1 keyframe first: ≈ 32s on one H100 with qwen-image-edit (computed from its size, not "
                        "measured)"),
])
def test_the_keyframe_estimate_names_the_keyframe_model_set(write_story, model: str, expected: str) -> None:
    from storyforge.console import plan_footer

    plan = api.plan(write_story(
        f"storyforge: 1\ntitle: T\nkeyframes: {{model: {model}}}\n"
        "characters:\n  swan: {description: a swan, reference: refs/swan.png}\n"
        "scenes:\n  - id: s\n    shots:\n      - {id: a, prompt: '{{ characters.swan }} glides', duration: 4s}\n"))
    assert expected in plan_footer(plan).splitlines()
