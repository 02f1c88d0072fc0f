"""Model presets: what each named model is and the settings it renders best with."""

from __future__ import annotations

from dataclasses import dataclass

# SkyReels' README list, in English (the Wan list): the pipelines apply no negative prompt by default.
NEGATIVE_PROMPT = (
    "bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, "
    "poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still "
    "picture, messy background, three legs, many people in the background, walking backwards"
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
    "takes": 1,
}
# Image-to-video renders best with less guidance and shift (SkyReels README); used when nothing is set.
I2V_DEFAULTS: dict[str, object] = {"guidance": 5.0, "shift": 5.0}


def preset(model: str) -> Preset | None:
    """The preset called `model`, or None for a hub id or a folder."""
    return PRESETS.get(model)
