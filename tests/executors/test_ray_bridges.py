"""A bridge on a local Ray cluster: rendered by a worker once both shots it joins are in, frame for frame as the
local executor renders it."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from storyforge import api
from storyforge.backends.animatic import Animatic
from storyforge.backends.base import REGISTRY
from storyforge.clipfile import read_frames

HERE = Path(__file__).resolve().parent  # where this module (and its backend) imports from on a worker
LOG = "STORYFORGE_TEST_BRIDGE_LOG"  # STORYFORGE_*: the executor forwards it to its tasks

# two chains (a; b then c) and a bridge between them: the bridge waits for a's end and b's start
STORY = """\
storyforge: 1
title: Bridged
render: {resolution: 128x96, fps: 16, base_frames: 17, overlap_frames: 5}
scenes:
  - id: one
    shots:
      - id: a
        prompt: a red fox wakes up
        duration: 17f
  - id: two
    shots:
      - id: b
        prompt: a river at dusk
        duration: 17f
        transition: {type: bridge, duration: 1s}
      - id: c
        prompt: the river flows on
        duration: 8f
        transition: continue
"""


class Logged(Animatic):
    """The animatic, writing which process drew each job and when it started and finished."""

    name = "logged"

    def identity(self, job):  # type: ignore[no-untyped-def]
        return {**super().identity(job), "backend": self.name}

    def frames(self, job, inputs):  # type: ignore[no-untyped-def]
        import time

        started = time.time()
        yield from super().frames(job, inputs)
        with open(os.environ[LOG], "a", encoding="utf-8") as handle:
            handle.write(f"{job.id} {os.getpid()} {started} {time.time()}\n")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs whose workers import this module (for the logged backend)."""
    import ray

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_ADDRESS", raising=False)
        patch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), str(HERE.parent), str(ROOT),
                                                    os.environ.get("PYTHONPATH", "")]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 << 20,
                     logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_a_bridge_runs_on_a_worker_after_both_shots_it_joins(cluster, write_story, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REGISTRY, "logged", f"{__name__}:Logged")
    log = tmp_path / "drawn.log"
    monkeypatch.setenv(LOG, str(log))
    plan = api.plan(write_story(STORY))
    report = api.render(plan, out=tmp_path / "ray", backend="logged", cache_root=tmp_path / "ray-cache",
                        executor="ray")
    drawn = {job: (int(pid), float(start), float(end))
             for job, pid, start, end in (line.split() for line in log.read_text().splitlines())}
    assert sorted(drawn) == ["one/a", "two/b", "two/b~bridge", "two/c"]  # each once
    bridge = drawn["two/b~bridge"]
    assert bridge[0] != os.getpid()  # a worker drew it, not this process
    assert bridge[1] >= max(drawn["one/a"][2], drawn["two/b"][2])  # after both shots it joins were done
    assert report.total_frames == plan.total_frames == 17 + 16 + 17 + 8
    local = api.render(plan, out=tmp_path / "local", backend="logged", cache_root=tmp_path / "local-cache")
    assert np.array_equal(read_frames(tmp_path / "ray" / "film.mp4"), read_frames(tmp_path / "local" / "film.mp4"))
    assert [job.key for job in report.jobs] == [job.key for job in local.jobs]
