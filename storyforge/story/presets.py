"""Model presets: what each named model is and the settings it renders best with."""

from __future__ import annotations

from dataclasses import dataclass

# The negative prompt SkyReels-V2's generate_video_df.py always passes: Wan's list, in Chinese as the model was
# trained with it (umT5 reads Chinese). diffusers' pipelines apply none by default. In English: bright tones,
# overexposed, static, blurred details, subtitles, style, works, paintings, images, still, overall grey, worst
# quality, low quality, JPEG artefacts, ugly, mutilated, extra fingers, badly drawn hands, badly drawn faces,
# deformed, disfigured, misshapen limbs, fused fingers, motionless picture, cluttered background, three legs,
# many people in the background, walking backwards.
NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)


@dataclass(frozen=True)
class Preset:
    """A named model and its defaults."""

    name: str
    repo: str | None  # diffusers-format hub id; None for the tiny model built offline
    resolution: str
    base_frames: int
    steps: int
    summary: str
    seconds_per_call: float  # rough H100 seconds per transformer call at the preset's native window


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("df-1.3b-540p", "Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers", "540p", 97, 30,
               "SkyReels-V2 DF 1.3B, 960x544 (about 15 GB of GPU memory)", 0.45),
        Preset("df-14b-540p", "Skywork/SkyReels-V2-DF-14B-540P-Diffusers", "540p", 97, 30,
               "SkyReels-V2 DF 14B, 960x544 (about 51 GB of GPU memory)", 3.2),
        Preset("df-14b-720p", "Skywork/SkyReels-V2-DF-14B-720P-Diffusers", "720p", 121, 30,
               "SkyReels-V2 DF 14B, 1280x720", 6.5),
        Preset("tiny", None, "64x64", 97, 2,
               "a seeded, randomly initialised tiny DF model built offline (tests, CPU)", 0.003),
    )
}
DEFAULT_MODEL = "df-1.3b-540p"

# Film-wide defaults where neither the story nor the preset says otherwise (SkyReels' recommendations).
DEFAULTS: dict[str, object] = {
    "fps": 24,
    "guidance": 6.0,
    "shift": 8.0,
    "overlap_frames": 17,
    "ar_step": 0,
    "causal_block_size": 1,
    "addnoise_condition": 20,
    "seed": 42,
    "negative_prompt": NEGATIVE_PROMPT,
    "cache": None,
    "causal_attention": False,
    "color_match": True,  # seams are the most reported pain of long DF videos; see storyforge/colormatch.py
    "takes": 1,
    "offload": "model",  # one component on the GPU at a time: what the backend always did, and what fits 24 GB
    "gpu_memory": None,
}
# Image-to-video renders best with less guidance and shift (SkyReels README); used when nothing is set.
I2V_DEFAULTS: dict[str, float] = {"guidance": 5.0, "shift": 5.0}


def preset(model: str) -> Preset | None:
    """The preset called `model`, or None for a hub id or a folder."""
    return PRESETS.get(model)


@dataclass(frozen=True)
class KeyframePreset:
    """A named image-edit model for keyframes."""

    name: str
    repo: str | None  # diffusers-format hub id; None for the tiny model built offline
    summary: str
    weights: str  # what a user downloads


# Bump when the tiny edit model's recipe (backends/tiny_keyframe.py) changes: its keyframes' cache identity follows.
TINY_EDIT_RECIPE = "tiny-qwen-image-edit-v1"
KEYFRAME_PRESETS: dict[str, KeyframePreset] = {
    p.name: p
    for p in (
        # 20.4 B transformer + 8.3 B Qwen2.5-VL text encoder + 0.13 B VAE parameters, 2 bytes each
        KeyframePreset("qwen-image-edit", "Qwen/Qwen-Image-Edit-2509",
                       "Qwen-Image-Edit-2509: composes up to 3 input images", "about 58 GB in bf16"),
        KeyframePreset("tiny", None, "a seeded, randomly initialised tiny Qwen-Image-Edit built offline (tests, CPU)",
                       "about 1.3 MB, built offline"),
    )
}
