"""The animatic honours a start image's EXIF orientation, as the video backend does (issue 20, item 8): a photo a
camera stored sideways with "rotate 90°" in its EXIF is drawn upright."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from storyforge import api
from storyforge.backends.skyreels_df import load_image
from storyforge.clipfile import read_frames

STORY = """\
storyforge: 1
title: Turned
render: {resolution: 64x48, fps: 16, base_frames: 17, overlap_frames: 5}
scenes:
  - id: one
    shots:
      - id: a
        prompt: a red roof over a blue door
        camera: static
        image: IMAGE
        duration: 9f
"""


def upright() -> Image.Image:
    """A picture that shows which way is up: red on top, blue below, a white mark at the top left."""
    pixels = np.zeros((96, 128, 3), np.uint8)
    pixels[:48] = (220, 30, 30)
    pixels[48:] = (30, 30, 220)
    pixels[4:20, 4:28] = 255
    return Image.fromarray(pixels)


def first_frame(story_dir: Path, image: str, name: str) -> np.ndarray:
    story = story_dir / f"{name}.yaml"
    story.write_text(STORY.replace("IMAGE", image), encoding="utf-8")
    report = api.render(api.plan(story), backend="animatic", out=story_dir / name, cache_root=story_dir / "cache")
    return read_frames(report.out / "clips" / "one__a.mp4")[0]


@pytest.mark.parametrize("orientation", [3, 6, 8])  # 180°, 90° clockwise, 90° counter-clockwise
def test_a_start_image_is_drawn_the_way_its_exif_says_is_up(story_dir: Path, orientation: int) -> None:
    stored = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    turned = upright().transpose(stored[orientation])  # the pixels as the camera wrote them
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation: how to turn the stored pixels to show them
    turned.save(story_dir / "turned.png", exif=exif)
    upright().save(story_dir / "upright.png")
    turned.save(story_dir / "sideways.png")  # the same pixels without the tag
    with Image.open(story_dir / "turned.png") as check:
        assert np.array_equal(np.asarray(ImageOps.exif_transpose(check).convert("RGB")), np.asarray(upright()))
    from_exif = first_frame(story_dir, "turned.png", "exif")
    assert np.array_equal(from_exif, first_frame(story_dir, "upright.png", "plain"))
    assert not np.array_equal(from_exif, first_frame(story_dir, "sideways.png", "ignored"))
    # the video backend reads it the same way up
    assert np.array_equal(np.asarray(load_image(story_dir / "turned.png", 64, 48)),
                          np.asarray(load_image(story_dir / "upright.png", 64, 48)))
