"""The review page: written by every render, rebuilt by `storyforge review`, checked in a real headless Chromium."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from conftest import run_cli

from storyforge import api

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = """<script>alert("pwned")</script> & <img src=x onerror=alert(1)> 'single' "double\""""
STORY = f"""\
storyforge: 1
title: "Review <b>me</b> & co"
render: {{resolution: 256x144, fps: 24, base_frames: 17, overlap_frames: 5}}
scenes:
  - id: dawn
    shots:
      - id: glide
        prompt: a swan glides across the lake
        duration: 17f
        render: {{takes: 3}}
      - id: dip
        prompt: {json.dumps(HOSTILE)}
        duration: 8f
        transition: continue
  - id: dusk
    shots:
      - id: rest
        prompt: the swan rests on the shore
        duration: 13f
        transition: {{type: crossfade, duration: 3f}}
        render: {{takes: 2}}
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`storyforge ARGS` in this process (tests/conftest.run_cli)."""
    return run_cli(*args, cwd=cwd)


def rendered(write_story) -> tuple[Path, Path]:
    story = write_story(STORY)
    report = api.render(api.plan(story), backend="animatic")
    return story, report.out


def test_every_render_writes_the_review_page_with_escaped_text_and_relative_files(write_story) -> None:
    story, out = rendered(write_story)
    page = (out / "review.html").read_text("utf-8")
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>me</b>" not in page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in page
    assert "Review &lt;b&gt;me&lt;/b&gt; &amp; co" in page
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page) and "@import" not in page  # nothing from a network
    for link in re.findall(r'(?:src|poster)="([^"]+)"', page):
        assert (out / link.split("?v=")[0].split("#t=")[0]).is_file(), link  # posters name their clip's version
    plan = api.plan(story)
    for job in plan.jobs:
        for take in job.all_takes:
            assert f'src="takes/{job.id.replace("/", "__")}/take{take.take}.mp4"' in page
            if job.takes > 1:
                command = f"storyforge pick {story.name} {job.id} {take.take}"
                assert (command in page) is (take.take != job.take)
    assert len(list((out / "review").glob("*.jpg"))) == 6


def test_the_review_command_rebuilds_the_page_with_the_new_pick(write_story) -> None:
    story = write_story(STORY)
    before = cli("review", "film.yaml", "--no-open", cwd=story.parent)
    assert (before.returncode, before.stdout, before.stderr) == (
        1, "", "error: no render in renders/film yet; run `storyforge render film.yaml` first (or name its "
               "folder with --out)\n")
    out = api.render(api.plan(story), backend="animatic").out
    assert cli("pick", "film.yaml", "dusk/rest", "2", cwd=story.parent).returncode == 0
    again = cli("review", "film.yaml", "--no-open", cwd=story.parent)
    assert again.returncode == 0, again.stderr
    assert re.fullmatch(r"✓ renders/film/review\.html \(\d+ kB with posters, 0 new, \d+\.\d\ds\)\n", again.stdout)
    page = (out / "review.html").read_text("utf-8")
    assert "storyforge pick film.yaml dusk/rest 1" in page and "storyforge pick film.yaml dusk/rest 2" not in page
    assert "The last render did not cut the current pick of dusk/rest" in page
    elsewhere = cli("review", "film.yaml", "--no-open", "--out", "nowhere", cwd=story.parent)
    assert (elsewhere.returncode, elsewhere.stderr) == (
        1, "error: no render in nowhere yet; run `storyforge render film.yaml` first (or name its folder with "
           "--out)\n")


def test_the_review_page_in_a_real_browser(write_story, chromium, tmp_path: Path) -> None:
    story, out = rendered(write_story)
    run = json.loads((out / "run.json").read_text("utf-8"))
    # the seam report of issue 13's contract, as a render that measures seams writes it
    run["seams"] = [{"job": "dawn/dip", "frame": 17, "kind": "continue", "jump": 2.4, "color_shift": 3.25}]
    (out / "run.json").write_text(json.dumps(run), "utf-8")
    api.review(story)
    plan = api.plan(story)
    page = chromium.new_page(viewport={"width": 1366, "height": 768})  # a common laptop screen
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto((out / "review.html").as_uri())
    page.wait_for_load_state("load")
    shots = page.eval_on_selector_all("article.shot", "els => els.map(e => [e.dataset.shot, "
                                      "e.querySelectorAll('figure.take').length, "
                                      "[...e.querySelectorAll('figure.take.picked')].map(f => +f.dataset.take)])")
    assert shots == [[job.id, job.takes, [job.take] if job.takes > 1 else []] for job in plan.jobs]
    dip = page.inner_text('[data-shot="dawn/dip"] .prompt')
    assert dip == plan.job("dawn/dip").prompt and HOSTILE in dip  # shown as text, never run
    assert page.evaluate("document.scripts.length") == 1
    assert "00:00:00:17 continue · jump 2.40 · color_shift 3.2" in page.inner_text('[data-shot="dawn/dip"]')
    # the seam's frames on both sides, from the cut itself: the film at frames 16 and 17
    stills = page.eval_on_selector_all('[data-shot="dawn/dip"] .seams video', "vs => vs.map(v => v.src.split('#')[1])")
    assert stills == ["t=0.6875", "t=0.7292"]
    page.wait_for_function("""() => [...document.querySelectorAll('.seams video')]
                               .every(v => v.readyState >= 2)""", timeout=30_000)
    # every take is a real player (controls: play, scrub, full screen) whose poster has real pixels
    assert page.evaluate("[...document.querySelectorAll('figure.take video')].every(v => v.controls)")
    sizes = page.evaluate("""async () => Promise.all([...document.querySelectorAll('figure.take video')].map(
        video => new Promise(done => {
            const image = new Image();
            image.onload = () => done([image.naturalWidth, image.naturalHeight]);
            image.onerror = () => done([0, 0]);
            image.src = video.poster;
        })))""")
    assert len(sizes) == 6 and all(width == 320 and height == 180 for width, height in sizes)
    # a take plays in its player
    page.evaluate("""() => { const v = document.querySelector('[data-shot="dawn/glide"] [data-take="3"] video');
                             v.muted = true; return v.play(); }""")
    page.wait_for_function("""() => {
        const v = document.querySelector('[data-shot="dawn/glide"] [data-take="3"] video');
        return v.readyState >= 2 && !v.paused && v.currentTime > 0; }""", timeout=30_000)
    assert page.evaluate("document.querySelector('.film').readyState") >= 1  # the cut's player has the film
    assert problems == []
    shot = tmp_path / "review.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"review page screenshot: {shot}")
    assert shot.stat().st_size > 10_000
    page.close()


def test_the_page_shows_the_studios_notes_and_rejections_read_only(write_story) -> None:
    from storyforge.enhance import lock

    story, out = rendered(write_story)
    lock.note(story, "dawn/glide", 2, HOSTILE)
    lock.reject(story, "dawn/glide", 3)
    api.review(story)
    page = (out / "review.html").read_text("utf-8")
    assert '<p class="note">&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;' in page
    assert '<figure class="take rejected" data-take="3">' in page
    assert "storyforge pick film.yaml dawn/glide 3" in page  # a rejected take can still be picked
    assert "<textarea" not in page and "<button" not in page  # read only: the studio is where choices are made
