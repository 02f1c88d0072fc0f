"""The studio in a real Chromium: compare takes, pick by clicking, see the stale banner, cut again (the film's
frames become the picked take's), ask for another take and watch it appear, and see a story error at its line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from running_studio import running_studio

from storyforge import api

np = pytest.importorskip("numpy")

HOSTILE = """<script>alert("pwned")</script> & <img src=x onerror=alert(1)> 'single' "double\""""
STORY = f"""\
storyforge: 1
title: "Studio <b>test</b>"
render: {{resolution: 256x144, fps: 24, base_frames: 17, overlap_frames: 5, takes: 2}}
scenes:
  - id: dawn
    shots:
      - id: glide
        prompt: a swan glides across the lake
        duration: 17f
      - id: dip
        prompt: {json.dumps(HOSTILE)}
        duration: 13f
        transition: {{type: crossfade, duration: 3f}}
      - id: rest
        prompt: the swan rests
        duration: 8f
        transition: continue
"""
LONG = 300_000  # ms: a render on a loaded two-core machine


def until(condition: Callable[[], object], what: str, seconds: float = 300) -> object:
    """Wait for a condition on disk (the page's own conditions wait in the browser)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"waited {seconds}s for {what}")


def frames_of(path: Path) -> np.ndarray:
    from storyforge.clipfile import read_frames

    return read_frames(path).astype(np.int16)


def test_the_studio_in_a_real_browser(write_story, chromium, tmp_path: Path) -> None:
    story = write_story(STORY)
    out = api.render(api.plan(story), backend="animatic").out
    lock = story.with_name("film.lock.json")
    with running_studio(story) as studio:
        page = chromium.new_page(viewport={"width": 1366, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
        page.goto(studio.url)
        assert page.url == f"{studio.base}/"  # the token became a cookie and left the address bar
        glide = 'article[data-shot="dawn/glide"]'
        page.wait_for_function(f"""() => [...document.querySelectorAll('{glide} figure[data-take] video')]
                                   .filter(v => v.readyState >= 1).length === 2""", timeout=LONG)
        # the story's text is shown as text, never run
        assert page.inner_text('[data-shot="dawn/dip"] .prompt') == api.plan(story).job("dawn/dip").prompt
        assert page.inner_text("#title") == "Studio <b>test</b>"
        # the timeline: every shot at its timecode; the continue seam with the cut's frames on both sides of it
        rows = page.eval_on_selector_all("#timeline li[data-shot]", "rows => rows.map(r => r.dataset.shot)")
        assert rows == ["dawn/glide", "dawn/dip", "dawn/rest"]
        seam = page.locator('#timeline li[data-shot="dawn/rest"] .seam-view')
        seam.scroll_into_view_if_needed()
        page.wait_for_function("""() => [...document.querySelectorAll('#timeline li[data-shot="dawn/rest"] video')]
                                   .filter(v => v.readyState >= 2).length === 2""", timeout=60_000)
        assert seam.inner_text().startswith("00:00:01:03 continue · ")  # (the animatic's cards are not scored)
        page.locator("#markers").get_by_label("seek to dawn/rest").click()
        page.wait_for_function("() => Math.abs(document.getElementById('film').currentTime - 27.5 / 24) < 1e-3")
        # compare: both takes play in step, pause together, step a frame, scrub together
        page.get_by_role("button", name="▶ Play in step").first.click()
        page.wait_for_function(f"""() => [...document.querySelectorAll('{glide} figure video')]
                                   .every(v => v.played.length > 0 && v.played.end(0) > 0)""", timeout=60_000)
        page.get_by_role("button", name="❚❚ Pause").first.click()
        page.wait_for_function(f"() => [...document.querySelectorAll('{glide} figure video')].every(v => v.paused)")
        page.locator(glide).get_by_label("scrub every take of dawn/glide").evaluate(
            "r => { r.value = 500; r.dispatchEvent(new Event('input')); }")
        page.wait_for_function(f"""() => {{ const t = [...document.querySelectorAll('{glide} figure video')]
                                   .map(v => v.currentTime);
                                   return t.every(x => Math.abs(x - t[0]) < 1e-3 && x > 0.2); }}""")
        before = page.eval_on_selector_all(f"{glide} figure video", "vs => vs.map(v => v.currentTime)")
        page.locator(glide).get_by_role("button", name="one frame on").click()
        page.wait_for_function(f"""() => [...document.querySelectorAll('{glide} figure video')]
                                   .every((v, i) => Math.abs(v.currentTime - ({before}[i] + 1 / 24)) < 1e-3)""")
        assert page.eval_on_selector_all(f"{glide} figure video", "vs => vs.every(v => v.controls)")
        # pick take 2 by clicking: the lock holds it, as `storyforge pick` writes it
        pick = page.locator(f'{glide} figure[data-take="2"]').get_by_role("button", name="Pick take 2 of dawn/glide")
        pick.click()
        until(lambda: lock.is_file() and json.loads(lock.read_text())["picks"] == {"dawn/glide": 2}, "the pick")
        page.wait_for_selector(f'{glide} figure[data-take="2"].picked', timeout=30_000)
        banner = page.locator("#stale")
        banner.wait_for(state="visible", timeout=30_000)
        assert "The film on screen is older than the picks: dawn/glide" in banner.inner_text()
        # cut again: renders nothing, and the film's frames for the shot are now take 2's
        banner.get_by_role("button", name="Cut again").click()
        page.wait_for_selector('#work .task[data-state="done"]', timeout=LONG)
        banner.wait_for(state="hidden", timeout=30_000)
        assert "0 rendered" in page.inner_text("#work")
        plan = api.plan(story)
        job = plan.job("dawn/glide")
        film = frames_of(out / "film.mp4")
        solo = job.frames - plan.job("dawn/dip").transition.frames  # before the crossfade blends in the next shot
        take1, take2 = frames_of(out / "takes/dawn__glide/take1.mp4"), frames_of(out / "takes/dawn__glide/take2.mp4")
        part = film[job.start_frame:job.start_frame + solo]
        differ = np.abs(take1[:solo] - take2[:solo]).max(axis=-1) > 40  # where the takes' pictures differ
        assert differ.sum() > 200  # the animatic draws each take's seed
        assert np.abs(part - take2[:solo]).max(axis=-1)[differ].mean() < 12  # the cut holds take 2 there, up to
        assert np.abs(part - take1[:solo]).max(axis=-1)[differ].mean() > 40  # the encoder's rounding, not take 1
        # another take: recorded in the lock, rendered in the background, shown when done
        dip = page.locator('article[data-shot="dawn/dip"]')
        dip.get_by_role("button", name="Another take").click()
        until(lambda: json.loads(lock.read_text()).get("extra_takes") == {"dawn/dip": 1}, "the extra take")
        assert api.plan(story).job("dawn/dip").takes == 3  # a terminal render makes the same takes
        page.wait_for_function("""() => { const v = document.querySelector(
                                   '[data-shot="dawn/dip"] figure[data-take="3"] video');
                                   return v !== null && v.readyState >= 1; }""", timeout=LONG)
        assert (out / "takes/dawn__dip/take3.mp4").is_file()
        # a note and a rejection are kept in the lock
        note = dip.get_by_role("textbox", name="note on take 1 of dawn/dip")
        note.fill("too dark <b>here</b>")
        dip.get_by_role("button", name="save the note on take 1 of dawn/dip").click()
        until(lambda: json.loads(lock.read_text()).get("notes") == {"dawn/dip": {"1": "too dark <b>here</b>"}},
              "the note")
        dip.get_by_role("button", name="Reject take 1 of dawn/dip").click()
        until(lambda: json.loads(lock.read_text()).get("rejected") == {"dawn/dip": [1]}, "the rejection")
        page.wait_for_selector('[data-shot="dawn/dip"] figure[data-take="1"].rejected', state="hidden")
        shot = tmp_path / "studio.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"studio screenshot: {shot}")
        # edit the story: the error shows at its line; fixed, it goes
        broken = STORY.replace("duration: 13f", "duration: 13 parsecs")
        line = broken.splitlines().index("        duration: 13 parsecs") + 1
        story.write_text(broken, encoding="utf-8")
        errors = page.locator("#problems")
        errors.wait_for(state="visible", timeout=30_000)
        assert f"film.yaml:{line}:" in errors.inner_text()
        story.write_text(STORY, encoding="utf-8")
        errors.wait_for(state="hidden", timeout=30_000)
        assert problems == []
        page.close()


def test_two_tabs_picking_at_once_leave_a_valid_lock_with_the_last_pick(write_story, chromium) -> None:
    story = write_story(STORY)
    api.render(api.plan(story), backend="animatic")
    lock = story.with_name("film.lock.json")
    with running_studio(story) as studio:
        context = chromium.new_context()  # one browser, two tabs sharing the session's cookie
        first, second = context.new_page(), context.new_page()
        for tab in (first, second):
            tab.goto(studio.url)
            tab.wait_for_selector('[data-shot="dawn/dip"] figure[data-take="2"]', timeout=LONG)
        # at once: each tab's click sends its pick without waiting for the other's; neither is lost
        fire = "label => document.querySelector(`button[aria-label='${label}']`).click()"
        first.evaluate(fire, "Pick take 2 of dawn/dip")
        second.evaluate(fire, "Pick take 2 of dawn/glide")
        until(lambda: lock.is_file() and json.loads(lock.read_text()).get("picks") == {"dawn/dip": 2,
                                                                                    "dawn/glide": 2}, "both picks")
        # then the same shot from both tabs, one after the other: the last pick holds
        first.get_by_role("button", name="Pick take 1 of dawn/dip").click()
        until(lambda: json.loads(lock.read_text()).get("picks") == {"dawn/dip": 1, "dawn/glide": 2}, "tab 1's pick")
        second.get_by_role("button", name="Pick take 2 of dawn/dip").click()  # enabled once tab 2 sees take 1
        until(lambda: json.loads(lock.read_text()).get("picks") == {"dawn/dip": 2, "dawn/glide": 2}, "the last pick")
        for tab in (first, second):  # each tab follows the lock, whichever tab wrote it
            tab.wait_for_selector('[data-shot="dawn/dip"] figure[data-take="2"].picked', timeout=30_000)
            tab.wait_for_selector('[data-shot="dawn/glide"] figure[data-take="2"].picked', timeout=30_000)
        context.close()
