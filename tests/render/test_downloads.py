"""One download policy: a missing hub model is one error before any work, naming `hf download` and the size;
--download fetches it on purpose; nothing reaches for the network unasked (no retries against an unreachable hub)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import within
from typer.testing import CliRunner

from storyforge import api, hub
from storyforge.cli import app
from storyforge.errors import RenderError, StoryforgeError

STORY = """\
storyforge: 1
title: T
render: {model: MODEL, resolution: 64x64, steps: 2, base_frames: 17, overlap_frames: 5}
scenes:
  - id: s
    shots:
      - {id: a, prompt: a fox, duration: 17f}
"""


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache and a hub that cannot be reached (a closed local port), not offline mode: what
    storyforge does unasked must not touch the network at all."""
    import huggingface_hub.constants

    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    return cache


@pytest.mark.parametrize(("model", "expected"), [
    ("df-1.3b-540p", "the video model Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers (about 29 GB) is not on this "
     "machine, and storyforge downloads models only when asked, never in the middle of a render: run `hf download "
     "Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers` once, or render with --download"),
    ("df-14b-720p", "the video model Skywork/SkyReels-V2-DF-14B-720P-Diffusers (about 80 GB) is not on this "
     "machine, and storyforge downloads models only when asked, never in the middle of a render: run `hf download "
     "Skywork/SkyReels-V2-DF-14B-720P-Diffusers` once, or render with --download"),
    ("someone/their-df-model", "the video model someone/their-df-model is not on this machine, and storyforge "
     "downloads models only when asked, never in the middle of a render: run `hf download someone/their-df-model` "
     "once, or render with --download"),
])
def test_a_missing_video_model_stops_the_render_before_any_work(write_story, story_dir: Path, empty_hub: Path,
                                                                model: str, expected: str) -> None:
    path = write_story(STORY.replace("MODEL", model))
    with within(60):
        result = CliRunner().invoke(app, ["render", path.name, "--backend", "skyreels-df"])
    assert isinstance(result.exception, RenderError)  # main() prints it as one `error:` line, exit 1
    assert str(result.exception) == expected
    assert not (story_dir / "renders").exists() and not (story_dir / ".storyforge").exists()  # nothing was begun


def test_download_is_one_try_and_says_why_it_cannot(write_story, empty_hub: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = write_story(STORY.replace("MODEL", "someone/their-df-model"))
    result = CliRunner().invoke(app, ["render", path.name, "--backend", "skyreels-df", "--download"])
    assert isinstance(result.exception, RenderError)
    assert str(result.exception) == (
        "--download: the video model someone/their-df-model cannot be downloaded while HF_HUB_OFFLINE is set; "
        "unset it, or run `hf download someone/their-df-model` where the hub is reachable")


def test_a_model_in_the_hub_cache_is_found_without_the_network(empty_hub: Path) -> None:
    needed = hub.video_model("df-1.3b-540p")
    assert needed is not None and not hub.on_disk(needed)
    folder = empty_hub / "models--Skywork--SkyReels-V2-DF-1.3B-540P-Diffusers"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    (folder / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (folder / "snapshots" / ("0" * 40) / "model_index.json").write_text("{}")
    hub.ensure([needed])  # on this machine: nothing to say, nothing fetched


def test_local_folders_and_the_tiny_model_need_no_download(tmp_path: Path) -> None:
    assert hub.video_model("tiny") is None and hub.keyframe_model("tiny") is None
    assert hub.video_model(str(tmp_path)) is None


def test_enhance_with_a_hub_model_that_is_not_here_fails_at_once(write_story, empty_hub: Path) -> None:
    path = write_story(STORY.replace("MODEL", "tiny"))
    with within(30), pytest.raises(StoryforgeError) as caught:  # no retries against the unreachable hub
        api.enhance(path, llm="Qwen/Qwen2.5-7B-Instruct")
    assert str(caught.value) == (
        "the prompt model Qwen/Qwen2.5-7B-Instruct is not on this machine, and storyforge downloads models only when "
        "asked, never unasked: run `hf download Qwen/Qwen2.5-7B-Instruct` once, or run enhance with --download")
