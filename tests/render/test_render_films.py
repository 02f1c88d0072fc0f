"""Several films in one `storyforge render`: files or a folder, each film's outputs and run.json as if rendered
alone, a story with a mistake stopping all before any render, a failing film not stopping the others, and one
model load for films that share a model (the local executor; the Ray cluster's side is in test_ray_cluster)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, run_cli

from storyforge import api
from storyforge.backends.base import REGISTRY
from storyforge.clipfile import read_frames
from storyforge.errors import RenderError
from storyforge.render import render

FOX = """\
storyforge: 1
title: Fox
render: {resolution: 128x96, fps: 16, base_frames: 17, overlap_frames: 5}
scenes:
  - id: one
    shots:
      - id: a
        prompt: a red fox wakes up
        duration: 17f
      - id: b
        prompt: the fox stretches
        duration: 12f
        transition: continue
  - id: two
    shots:
      - id: c
        prompt: the fox runs between the trees
        duration: 17f
        transition: {type: crossfade, duration: 4f}
"""
OWL = FOX.replace("Fox", "Owl").replace("fox", "owl")


def cli(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`storyforge ARGS` in this process (tests/conftest.run_cli)."""
    return run_cli(*arguments, cwd=cwd)


def run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def test_a_folder_of_stories_renders_each_film_as_if_alone(story_dir: Path, tmp_path: Path) -> None:
    (story_dir / "stories" / "birds").mkdir(parents=True)
    (story_dir / "stories" / "fox.yaml").write_text(FOX)
    (story_dir / "stories" / "birds" / "owl.yml").write_text(OWL)
    (story_dir / "stories" / "notes.yaml").write_text("todo: [more films]\n")  # not a story: left alone
    done = cli("render", "stories", "--backend", "animatic", cwd=story_dir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split(" — ")[0] for line in lines] == [
        f"✓ {story_dir / 'stories' / 'birds' / 'renders' / 'owl' / 'film.mp4'}",
        f"✓ {story_dir / 'stories' / 'renders' / 'fox' / 'film.mp4'}"]
    assert "rendered fox: one/a" in done.stderr and "rendered owl: two/c" in done.stderr
    for story in (story_dir / "stories" / "fox.yaml", story_dir / "stories" / "birds" / "owl.yml"):
        plan = api.plan(story)
        alone = render(plan, out=tmp_path / story.stem, backend="animatic", cache_root=tmp_path / "cache")
        together = story.parent / "renders" / story.stem
        assert np.array_equal(read_frames(together / "film.mp4"), read_frames(tmp_path / story.stem / "film.mp4"))
        ran, ran_alone = run_json(together), run_json(tmp_path / story.stem)
        assert [(j["id"], j["key"], j["status"]) for j in ran["jobs"]] == \
            [(j.id, j.key, "rendered") for j in alone.jobs]
        assert ran["cut_key"] == ran_alone["cut_key"] and ran["total_frames"] == ran_alone["total_frames"]
        assert ran["model_loads"] == ran_alone["model_loads"] == 0  # the animatic has no model
    again = cli("render", "stories/fox.yaml", "stories/birds/owl.yml", "--backend", "animatic", cwd=story_dir)
    assert again.returncode == 0, again.stderr
    assert all("0 rendered, 3 cached" in line for line in again.stdout.strip().splitlines())


def test_a_story_with_a_mistake_stops_every_film_before_any_render(write_story, story_dir: Path) -> None:
    write_story(FOX, "fox.yaml")
    write_story(OWL.replace("duration: 12f", "duration: -2s"), "owl.yaml")
    done = cli("render", "fox.yaml", "owl.yaml", "--backend", "animatic", cwd=story_dir)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: owl.yaml:12: one/b.duration: '-2s' is not a duration; write seconds "
                                   "like '4s' or '4.5s', or frames like '97f'")
    assert not (story_dir / "renders").exists()


def test_an_empty_folder_and_clashing_outputs_are_refused(story_dir: Path, write_story) -> None:
    (story_dir / "empty").mkdir()
    done = cli("render", "empty", "--backend", "animatic", cwd=story_dir)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: empty: no story files in this folder (YAML files with a `storyforge:` "
                                   "key); name the story files, or the folder that holds them")
    (story_dir / "b").mkdir()
    write_story(FOX, "fox.yaml")
    write_story(OWL, "b/fox.yaml")
    done = cli("render", "fox.yaml", "b/fox.yaml", "--out", "all", "--backend", "animatic", cwd=story_dir)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: fox.yaml and b/fox.yaml would both render into all/fox; rename one of "
                                   "them, or render them one at a time with --out")
    assert not (story_dir / "all").exists()


def test_a_failing_film_does_not_stop_the_others(write_story, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flaky import FLAKY, FLAKY_FAILURES, FLAKY_LOG, FLAKY_SHOT

    monkeypatch.setitem(REGISTRY, "flaky", FLAKY)
    monkeypatch.setenv(FLAKY_LOG, str(tmp_path / "tries.log"))
    monkeypatch.setenv(FLAKY_SHOT, "one/b")
    monkeypatch.setenv(FLAKY_FAILURES, "99")
    fox = api.plan(write_story(FOX, "fox.yaml"))
    owl = api.plan(write_story(OWL.replace("- id: one", "- id: uno"), "owl.yaml"))  # no one/b in this film
    [(report, error), (owl_report, owl_error)] = api.render_films([fox, owl], backend="flaky",
                                                                  cache_root=tmp_path / "cache")
    assert report is None and isinstance(error, RenderError)
    assert str(error) == "one/b: the model files are missing"
    assert owl_error is None and owl_report is not None and owl_report.film is not None
    assert (owl_report.out / "run.json").exists() and not (fox.story.parent / "renders" / "fox" / "run.json").exists()


@pytest.mark.torch
def test_films_on_one_model_load_it_once(write_story, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYFORGE_HOME", str(tmp_path / "home"))
    plans = [api.plan(write_story(TINY, "a.yaml")), api.plan(write_story(TINY.replace("red fox", "grey owl"),
                                                                           "b.yaml"))]
    results = api.render_films(plans, backend="skyreels-df", cache_root=tmp_path / "cache")
    assert [error for _, error in results] == [None, None]
    assert [run_json(report.out)["model_loads"] for report, _ in results] == [1, 0]  # the second film reuses it
    alone = render(plans[1], out=tmp_path / "alone", backend="skyreels-df", cache_root=tmp_path / "cache-alone")
    assert run_json(tmp_path / "alone")["model_loads"] == 1
    assert np.array_equal(read_frames(tmp_path / "alone" / "film.mp4"), read_frames(results[1][0].out / "film.mp4"))
    assert alone.total_frames == plans[1].total_frames


class Counted:
    """Which skyreels-df models are resident (loaded, not closed yet) across instances, and the most at once."""

    resident = 0
    most = 0


def _counted() -> type:
    from storyforge.backends.skyreels_df import SkyReelsDF

    class CountedDF(SkyReelsDF):
        def _load(self, model):  # type: ignore[no-untyped-def]
            fresh = model not in self._loaded
            loaded = super()._load(model)
            if fresh:
                Counted.resident += 1
                Counted.most = max(Counted.most, Counted.resident)
            return loaded

        def close(self) -> None:
            Counted.resident -= len(self._loaded)
            super().close()

    return CountedDF


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """`CountedDF`, built when the registry imports it by name: torch only where the test runs."""
    if name == "CountedDF":
        return _counted()
    raise AttributeError(name)


@pytest.mark.torch
def test_films_with_takes_keep_one_model_resident_and_count_every_load(write_story, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every take is a node each film's graph renders before the film is cut, so the next film never gets the
    model while takes of the last one are still to render (which loaded a second copy before)."""
    pytest.importorskip("diffusers")
    monkeypatch.setenv("STORYFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(REGISTRY, "skyreels-df", f"{__name__}:CountedDF")
    monkeypatch.setattr(Counted, "resident", 0)
    monkeypatch.setattr(Counted, "most", 0)
    takes = TINY.replace("render: {model: tiny,", "render: {model: tiny, takes: 2,")
    plans = [api.plan(write_story(takes, "a.yaml")), api.plan(write_story(takes.replace("fox", "owl"),
                                                                          "b.yaml"))]
    results = api.render_films(plans, backend="skyreels-df", cache_root=tmp_path / "cache")
    assert [error for _, error in results] == [None, None]
    reports = [report for report, _ in results]
    assert [report.rendered for report in reports] == [6, 6]  # 3 shots x 2 takes each, all before the cut
    assert [run_json(report.out)["model_loads"] for report in reports] == [1, 0]
    assert Counted.most == 1 and Counted.resident == 0  # one model at a time, and none left at the end
    for report in reports:
        assert all(t["status"] == "rendered" and t["rendered_by"]["pid"] == os.getpid()
                   for job in run_json(report.out)["jobs"] for t in job["takes"])
