"""Metadata tags carry the exact text (issue 20, item 6): NUL and control characters escaped in the documented,
reversible way (storyforge.provenance), so tags always match and a no-op re-render never rewrites a take."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from storyforge import api
from storyforge.provenance import read_tags, stamp, tag_text, unescape

HOSTILE = ["a fox\x00 after a NUL", "an \x1b[31mESC\x1b]8;;https://evil.example\x07", "two\nlines\tand a tab",
           "a carriage\rreturn", "\u202ebidi\u2066 isolate", "a lone \ud800 surrogate and \udfff another",
           "a \\x00 backslash, \\\\ two, \\u0041 and a trailing \\", "C1 \x85\x9b and DEL \x7f", "emoji 🦊 ok"]
STORY = """\
storyforge: 1
title: "Meta \\0 \\e[2J \\u202e"
render: {resolution: 64x48, fps: 16, base_frames: 17, overlap_frames: 5, takes: 2}
scenes:
  - id: one
    shots:
      - id: a
        prompt: "a fox\\0 with a NUL, an \\e[31mESC, \\u202ebidi, a \\\\x00 backslash, \\x85 C1"
        duration: 9f
      - id: b
        prompt: "the fox\\0 runs \\e]8;;https://evil.example\\a on"
        duration: 8f
        transition: continue
"""
UNSAFE = "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]"  # what a written tag never holds (tab and newline may stay)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None), max_size=40))
def test_every_text_survives_the_escape_and_comes_back_exactly(text: str) -> None:
    import re

    tag = tag_text(text)
    assert not re.search(UNSAFE, tag)
    tag.encode("utf-8")  # what MP4 stores: no lone surrogate left
    assert unescape(tag) == text


def test_text_without_controls_or_backslashes_is_written_as_it_is() -> None:
    for text in ("a red fox — «wakes» 🦊", "two\nlines\tand a tab", "\u202ebidi stays text"):
        assert tag_text(text) == text


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real clip, rendered by the animatic."""
    folder = tmp_path_factory.mktemp("clip")
    (folder / "film.yaml").write_text(STORY.replace(", takes: 2", ""), encoding="utf-8")
    report = api.render(api.plan(folder / "film.yaml"), backend="animatic", out=folder / "out",
                        cache_root=folder / "cache")
    return report.out / "clips" / "one__a.mp4"


@pytest.mark.parametrize("text", HOSTILE)
def test_a_stamped_tag_reads_back_exactly_and_a_second_stamp_writes_nothing(clip: Path, tmp_path: Path,
                                                                             text: str) -> None:
    target = tmp_path / "take1.mp4"
    tags = {"comment": tag_text(text), "storyforge_prompt": tag_text(text), "storyforge_shot": "one/a"}
    assert stamp(clip, target, tags) is True
    assert unescape(read_tags(target)["storyforge_prompt"]) == text
    assert unescape(read_tags(target)["comment"]) == text
    before = os.stat(target)
    assert stamp(clip, target, tags) is False  # the tags match: the file is left as it is
    after = os.stat(target)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_no_op_re_render_rewrites_no_take_clip_or_film(story_dir: Path) -> None:
    (story_dir / "film.yaml").write_text(STORY, encoding="utf-8")

    def render() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "storyforge", "render", "film.yaml", "--backend", "animatic"],
                              capture_output=True, text=True, cwd=story_dir, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})

    first = render()
    assert first.returncode == 0, first.stderr
    out = story_dir / "renders" / "film"
    files = sorted([*out.glob("takes/*/*.mp4"), *out.glob("clips/*.mp4"), out / "film.mp4"])
    assert len(files) == 2 * 2 + 2 + 1
    stats = {path: (os.stat(path).st_ino, os.stat(path).st_mtime_ns) for path in files}
    second = render()
    assert second.returncode == 0, second.stderr
    assert "0 takes rendered, 4 cached" in second.stdout and "cut unchanged" in second.stdout
    assert {path: (os.stat(path).st_ino, os.stat(path).st_mtime_ns) for path in files} == stats
    plan = api.plan(story_dir / "film.yaml")
    for job in plan.jobs:  # the exact prompt, NUL and escape included, read back from the files
        tags = read_tags(out / "takes" / job.id.replace("/", "__") / "take2.mp4")
        assert unescape(tags["storyforge_prompt"]) == job.for_take(2).prompt
        assert "\x00" in job.prompt and unescape(tags["title"]) == f"{plan.title} — {job.id} take 2"
    shots = json.loads(read_tags(out / "film.mp4")["storyforge_shots"])
    assert [shot["prompt"] for shot in shots] == [job.prompt for job in plan.jobs]
