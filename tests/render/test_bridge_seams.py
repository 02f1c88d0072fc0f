"""A colour step at either join of a bridge is measured, and colour matching takes it away like any seam's: the
frames pass through the render loop's own seam stage (storyforge.loop.streams.Seams) as a backend's chunks would."""

from __future__ import annotations

import numpy as np
import pytest
from seamclips import moving_lab, step, to_frames

from storyforge import api
from storyforge.loop.streams import Seams
from storyforge.seams import VISIBLE_SHIFT

STORY = """\
storyforge: 1
title: Steps
render: {model: tiny, resolution: 64x64, fps: 12, steps: 2, base_frames: 17, overlap_frames: 5}
scenes:
  - id: s
    shots:
      - id: a
        prompt: a fox
        duration: 17f
      - id: b
        prompt: a river
        duration: 17f
        transition: {type: bridge, duration: BRIDGE}
"""


def through_seams(job, bridge: np.ndarray, previous: np.ndarray, following: np.ndarray, *,
                  match: bool) -> tuple[np.ndarray, dict]:
    stage = Seams(job, (bridge[i:i + 4] for i in range(0, len(bridge), 4)), previous, match=match,
                   following=following)
    out = np.concatenate(list(stage))
    assert stage.measured is not None
    return out, {seam["frame"]: seam for seam in stage.measured["seams"]}


@pytest.mark.parametrize("frames", [12, 24, 8])
@pytest.mark.parametrize("lightness, hue", [(8.0, 0.0), (-6.0, 25.0)])
def test_a_colour_step_at_both_joins_of_a_bridge_is_matched_away(write_story, frames: int, lightness: float,
                                                                 hue: float) -> None:
    plan = api.plan(write_story(STORY.replace("BRIDGE", f"{frames}f")))
    job = plan.job("s/b~bridge")
    assert job.frames == frames
    # one moving picture through a's tail, the bridge and b's first frames; the bridge alone is lighter or tinted
    lab = moving_lab(5 + frames + 5, height=64, width=64)
    stepped = step(step(lab, 5, lightness, hue), 5 + frames, -lightness, 0.0)
    stepped[5 + frames:] = lab[5 + frames:]
    pictures = to_frames(stepped)
    previous, bridge, following = pictures[:5], pictures[5:5 + frames], pictures[5 + frames:]
    raw, seen = through_seams(job, bridge, previous, following, match=False)
    assert np.array_equal(raw, bridge)
    assert sorted(seen) == [0, *([12] if frames == 24 else []), frames]
    assert seen[0]["kind"] == seen[frames]["kind"] == "bridge"
    assert seen[0]["color_shift"] > 2 * VISIBLE_SHIFT and seen[frames]["color_shift"] > 2 * VISIBLE_SHIFT
    matched, after = through_seams(job, bridge, previous, following, match=True)
    assert matched.shape == bridge.shape
    for frame in (0, frames):  # both joins now well below what can be seen, and far below the step
        assert after[frame]["color_shift"] < VISIBLE_SHIFT / 2, (frame, after[frame])
        assert after[frame]["color_shift"] < seen[frame]["color_shift"] / 5
    # no step inside the bridge either: its frame-to-frame change stays ordinary
    changes = np.abs(np.diff(matched.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert changes.max() < 3 * np.median(changes) + 1
