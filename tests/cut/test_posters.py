"""A take's poster is its middle frame, found by seeking to the keyframe there: the same picture as decoding the
clip from its start, for clips with that keyframe (what the cache writes) and without it (older clips)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from storyforge.clipfile import poster_frame, read_frames, write_clip
from storyforge.review import _decoded_to, _poster_picture


def _clip(path: Path, count: int, keyframes: list[int]) -> Path:
    rng = np.random.default_rng(count)
    base = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, 3 * n, axis=1) for n in range(count)])
    frames[:, :4] = np.arange(count, dtype=np.uint8)[:, None, None, None] * 7  # each frame tells which it is
    write_clip(frames, path, fps=12, keyframes=keyframes)
    return path


@pytest.mark.parametrize(("count", "with_keyframe"), [(1, True), (2, True), (13, True), (24, True), (13, False),
                                                     (24, False)])
def test_the_poster_is_the_middle_frame_with_or_without_a_keyframe_there(tmp_path: Path, count: int,
                                                                          with_keyframe: bool) -> None:
    middle = poster_frame(count)
    clip = _clip(tmp_path / "take.mp4", count, [middle] if with_keyframe and middle else [])
    picture = _poster_picture(clip)
    assert picture is not None
    assert np.array_equal(picture.to_ndarray(format="rgb24"), read_frames(clip)[middle])
    assert np.array_equal(picture.to_ndarray(format="rgb24"),
                          _decoded_to(clip, middle).to_ndarray(format="rgb24"))


STORY = """\
storyforge: 1
title: Posters
render: {resolution: 64x48, fps: 16, base_frames: 17, overlap_frames: 5}
scenes:
  - id: s
    shots:
      - id: a
        prompt: a fox
        duration: 13f
"""


def test_cache_entries_have_a_keyframe_at_the_poster_frame_beside_the_cuts(write_story, tmp_path: Path) -> None:
    from storyforge import api
    from storyforge.cache import Cache
    from storyforge.stitch import _probe

    job = api.plan(write_story(STORY)).jobs[0]
    cache = Cache(tmp_path / "cache")
    frames = read_frames(_clip(tmp_path / "source.mp4", job.frames, []))
    for stream in (False, True):  # whole, and streamed in chunks as a render hands them over
        given = iter([frames[:5], frames[5:]]) if stream else frames
        entry = cache.put(("ab" if stream else "cd") * 32, given, job=job, fps=16, keyframes=[3], identity={},
                          seconds=0)
        assert list(entry.keyframes) == [3]  # the cut's, as before
        assert sorted(_probe(entry.clip).idr) == [0, 3, poster_frame(job.frames)]
    again = cache.reencode(entry, [9])
    assert list(again.keyframes) == [9] and sorted(_probe(again.clip).idr) == [0, poster_frame(job.frames), 9]
