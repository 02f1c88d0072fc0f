"""Keyframes rendered: the tiny edit model composes references, the tiny DF model starts from them, frame-exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES

from storyforge import api
from storyforge.clipfile import count_frames, read_frames

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
np = pytest.importorskip("numpy")

pytestmark = [pytest.mark.torch, pytest.mark.slow]

# Two keyframes with one reference each (every reference costs the edit pipeline a 1024x1024 VAE encode):
# s/a shows the swan (its prompt uses characters.swan); t/d shows the city (its scene's location) and is longer
# than a window (the first from the keyframe, the rest extended).
STORY = """\
storyforge: 1
title: Keyframes
render: {model: tiny, resolution: 64x64, fps: 12, steps: 2, base_frames: 17, overlap_frames: 5}
keyframes: {model: tiny, steps: 2, guidance: 1.0}
characters:
  swan: {description: a white swan, reference: refs/swan.png}
locations:
  city: {description: a city at night, reference: refs/city_night.png}
scenes:
  - id: s
    shots:
      - id: a
        prompt: "{{ characters.swan }} glides"
        duration: 17f
      - id: b
        prompt: the swan dips
        duration: 8f
        transition: continue
      - id: c
        prompt: a quiet street
        duration: 13f
        transition: {type: crossfade, duration: 3f}
  - id: t
    location: city
    shots:
      - id: d
        prompt: rain falls
        duration: 29f
"""


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The story in its own folder, a private STORYFORGE_HOME, and its keyframes made once with
    `storyforge render --keyframes-only` in a subprocess (the tiny edit model is built there)."""
    import shutil

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("keyframes")
    shutil.copytree(EXAMPLES / "refs", folder / "refs")
    (folder / "film.yaml").write_text(STORY, encoding="utf-8")
    home = tmp_path_factory.mktemp("storyforge-home")
    env = {**os.environ, "STORYFORGE_HOME": str(home), "OMP_NUM_THREADS": "1"}
    first = subprocess.run([sys.executable, "-m", "storyforge", "render", "film.yaml", "--keyframes-only"],
                           capture_output=True, text=True, cwd=folder, env=env, timeout=900)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORYFORGE_HOME", str(home))
        yield {"folder": folder, "home": home, "out": folder / "renders" / "film", "first": first, "env": env}


def test_keyframes_only_renders_the_keyframes_and_no_video(film) -> None:
    from PIL import Image

    first, out = film["first"], film["out"]
    assert first.returncode == 0, first.stderr
    assert "2 keyframes (2 rendered, 0 cached)" in first.stdout
    assert "no video was rendered" in first.stdout
    assert sorted(p.name for p in (out / "keyframes").iterdir()) == ["s__a.png", "t__d.png"]
    for name in ("s__a.png", "t__d.png"):
        with Image.open(out / "keyframes" / name) as picture:
            assert (picture.size, picture.mode) == ((64, 64), "RGB")
    assert not (out / "clips").exists() and not (out / "film.mp4").exists() and not (out / "run.json").exists()
    cache = film["folder"] / ".storyforge" / "cache"
    assert sorted(p.name for p in cache.iterdir()) == ["keyframes"]  # no clip entries
    again = subprocess.run([sys.executable, "-m", "storyforge", "render", "film.yaml", "--keyframes-only"],
                           capture_output=True, text=True, cwd=film["folder"], env=film["env"], timeout=600)
    assert again.returncode == 0, again.stderr
    assert "2 keyframes (0 rendered, 2 cached)" in again.stdout


def test_a_keyframe_is_deterministic(film, tmp_path: Path) -> None:
    from PIL import Image

    from storyforge.backends.base import load_keyframe_backend

    job = api.plan(film["folder"] / "film.yaml").job("s/a")
    backend = load_keyframe_backend()
    try:
        picture = backend.render(job.keyframe)
    finally:
        backend.close()
    with Image.open(film["out"] / "keyframes" / "s__a.png") as cached:
        assert np.array_equal(picture, np.asarray(cached))  # a new process, the same seed: the same picture


def test_the_whole_film_renders_frame_exact_from_its_keyframes(film) -> None:
    from PIL import Image

    from storyforge.backends.base import RenderInputs
    from storyforge.backends.skyreels_df import SkyReelsDF

    plan = api.plan(film["folder"] / "film.yaml")
    out = film["out"]
    report = api.render(plan, out=out, backend="skyreels-df")
    run = json.loads((out / "run.json").read_text())
    assert [(k["id"], k["status"], k["image"]) for k in run["keyframes"]] == [
        ("s/a", "cached", "keyframes/s__a.png"), ("t/d", "cached", "keyframes/t__d.png")]
    assert [job["status"] for job in run["jobs"]] == ["rendered"] * 4
    for job, record in zip(plan.jobs, run["jobs"], strict=True):
        assert count_frames(out / record["clip"]) == job.frames, job.id
    assert count_frames(out / "film.mp4") == plan.total_frames == report.total_frames
    # the review page shows each shot's keyframe before its takes, as a small poster beside the page
    page = (out / "review.html").read_text(encoding="utf-8")
    assert page.count('<figure class="keyframe"') == 2
    assert 'data-keyframe="s/a"' in page and 'data-keyframe="t/d"' in page
    for name in ("s__a", "t__d"):
        with Image.open(out / "review" / f"{name}.keyframe.jpg") as poster:
            assert poster.size == (320, 320)
    # the i2v pipeline is handed the keyframe as its start image
    job = plan.job("s/a")
    arguments = SkyReelsDF(device="cpu").call_arguments(job, RenderInputs(start_image=out / "keyframes/s__a.png"))
    with Image.open(out / "keyframes" / "s__a.png") as picture:
        assert np.array_equal(np.asarray(arguments["image"]), np.asarray(picture.convert("RGB")))
    # a second render finds every clip in the cache
    again = api.render(plan, out=out, backend="skyreels-df")
    assert again.rendered == 0


def test_the_animatic_shows_the_keyframe_else_the_references(film, tmp_path: Path) -> None:
    from PIL import Image

    from storyforge.backends.animatic import _band_height, _fit

    plan = api.plan(film["folder"] / "film.yaml")
    with_keyframes = api.render(plan, out=tmp_path / "a", backend="animatic")  # the story's cache holds them
    without = api.render(plan, out=tmp_path / "b", backend="animatic", cache_root=tmp_path / "empty-cache")
    assert [k.status for k in with_keyframes.keyframes] == ["cached", "cached"]
    assert without.keyframes == [] and not (tmp_path / "b" / "keyframes").exists()
    assert ("the animatic makes no keyframes: s/a, t/d show their references; `storyforge render film.yaml "
            "--keyframes-only` makes them") in without.notices
    height = 64 - _band_height(64)

    def first_picture(out: Path, job_id: str) -> np.ndarray:
        return read_frames(out / f"clips/{job_id.replace('/', '__')}.mp4")[0, :height].astype(np.int16)

    def distance(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b.astype(np.int16)).mean())

    with Image.open(tmp_path / "a" / "keyframes" / "t__d.png") as picture:
        keyframe = np.asarray(_fit(picture, (64, height)))
    with Image.open(film["folder"] / "refs" / "city_night.png") as picture:
        city = np.asarray(_fit(picture, (64, height)))
    # the first frame is the unmoved picture: the keyframe when there is one, else the location's reference
    assert distance(first_picture(tmp_path / "a", "t/d"), keyframe) < distance(first_picture(tmp_path / "a", "t/d"),
                                                                               city)
    assert distance(first_picture(tmp_path / "b", "t/d"), city) < 12
    # a shot without references is the same title card either way
    assert np.array_equal(first_picture(tmp_path / "a", "s/c"), first_picture(tmp_path / "b", "s/c"))


def test_a_user_without_the_edit_model_is_told_what_to_do(film, tmp_path: Path) -> None:
    text = (film["folder"] / "film.yaml").read_text().replace("keyframes: {model: tiny,", "keyframes: {")
    (film["folder"] / "real.yaml").write_text(text, encoding="utf-8")
    env = {**film["env"], "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "storyforge", "render", "real.yaml", "--keyframes-only"],
                            capture_output=True, text=True, cwd=film["folder"], env=env, timeout=600)
    assert result.returncode == 1
    assert result.stderr == (
        "error: real.yaml:4: keyframes.model: the keyframe model Qwen/Qwen-Image-Edit-2509 (about 58 GB in bf16) "
        "is not on this machine, and storyforge downloads models only when asked, never in the middle of a render: "
        "run `hf download Qwen/Qwen-Image-Edit-2509` once, or render with --download; or set keyframes.model to a "
        "local folder that holds it, or remove `keyframes:` to render without generated start frames\n")
