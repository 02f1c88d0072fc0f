"""Keyframe candidates: `keyframes: {takes: N}` makes N start pictures per shot before any video; `storyforge review`
shows them after `--keyframes-only`, and `storyforge pick FILE SHOT --keyframe N` chooses the one the video starts
from."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CANDIDATES, EXAMPLES

from storyforge import api

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
np = pytest.importorskip("numpy")

pytestmark = [pytest.mark.torch, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def picture(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as opened:
        return np.asarray(opened.convert("RGB"))


def test_candidates_are_made_reviewed_and_picked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(EXAMPLES / "refs", tmp_path / "refs")
    story = tmp_path / "film.yaml"
    story.write_text(CANDIDATES, encoding="utf-8")
    monkeypatch.setenv("STORYFORGE_HOME", str(tmp_path / "home"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "storyforge", *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=900)

    plan = api.plan(story)
    keyframe = plan.job("s/a").keyframe
    assert (keyframe.candidates, keyframe.pick, len(set(keyframe.seeds)), len(set(keyframe.keys))) == (2, 1, 2, 2)
    assert plan.job("s/b").keyframe is None  # a continuation starts from what it continues
    made = cli("render", "film.yaml", "--keyframes-only")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "renders" / "film"
    assert sorted(p.name for p in (out / "keyframes").iterdir()) == ["s__a.k1.png", "s__a.k2.png", "s__a.png"]
    first, second = picture(out / "keyframes/s__a.k1.png"), picture(out / "keyframes/s__a.k2.png")
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 1  # two seeds, two pictures
    assert np.array_equal(picture(out / "keyframes/s__a.png"), first)  # the video starts from candidate 1
    # the review page shows them before any video, with the line that picks the other one
    review = cli("review", "film.yaml", "--no-open")
    assert review.returncode == 0, review.stderr
    page = (out / "review.html").read_text(encoding="utf-8")
    assert "storyforge pick film.yaml s/a --keyframe 2" in page and "✓ the video starts here" in page
    assert "storyforge pick film.yaml s/a --keyframe 1" not in page
    assert len(list((out / "review").glob("s__a.keyframe.k*.jpg"))) == 2
    # pick candidate 2: the lock keeps it; the shot's key, and what continues it, follow
    picked = cli("pick", "film.yaml", "s/a", "--keyframe", "2")
    assert (picked.returncode, picked.stderr) == (0, "")
    assert picked.stdout.startswith("✓ s/a: keyframe 2 picked in film.lock.json;")
    after = api.plan(story)
    assert (after.job("s/a").keyframe.pick, after.job("s/a").keyframe.key) == (2, keyframe.keys[1])
    assert after.job("s/a").key != plan.job("s/a").key and after.job("s/b").key != plan.job("s/b").key
    again = cli("render", "film.yaml", "--keyframes-only")
    assert again.returncode == 0 and "2 keyframes (0 rendered, 2 cached)" in again.stdout
    assert np.array_equal(picture(out / "keyframes/s__a.png"), second)
    from storyforge.studio.film import describe

    shot = describe(after, out, "film.yaml")["shots"][0]
    assert shot["keyframe_pick"] == 2 and [c["number"] for c in shot["keyframes"] if c["url"]] == [1, 2]
    wrong = cli("pick", "film.yaml", "s/a", "--keyframe", "3")
    assert (wrong.returncode, wrong.stderr) == (1, "error: film.yaml:10: s/a: has keyframe candidates 1 to 2; there "
                                                   "is no candidate 3\n")


def test_the_studio_shows_candidates_before_any_video_and_picks_by_click(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the browser test needs Playwright's Python package: pip install -e '.[browser]'")
    if not Path(chromium).exists():
        pytest.skip("the browser test needs Chromium: apt-get install -y chromium (no browser here)")
    from running_studio import running_studio

    shutil.copytree(EXAMPLES / "refs", tmp_path / "refs")
    story = tmp_path / "film.yaml"
    story.write_text(CANDIDATES, encoding="utf-8")
    monkeypatch.setenv("STORYFORGE_HOME", str(tmp_path / "home"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    made = subprocess.run([sys.executable, "-m", "storyforge", "render", "film.yaml", "--keyframes-only"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert made.returncode == 0, made.stderr
    with running_studio(story) as studio, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(studio.url)
        page.wait_for_function("""() => [...document.querySelectorAll('article[data-shot="s/a"] .keyframes img')]
                                   .filter(i => i.complete && i.naturalWidth === 64).length === 2""", timeout=60_000)
        assert page.locator('article[data-shot="s/a"] figure[data-take] video').count() == 0  # no video yet
        page.get_by_role("button", name="Pick start picture 2 of s/a").click()
        page.wait_for_selector('article[data-shot="s/a"] figure[data-keyframe="2"].picked', timeout=30_000)
        assert json.loads((tmp_path / "film.lock.json").read_text())["keyframe_picks"] == {"s/a": 2}
        browser.close()
