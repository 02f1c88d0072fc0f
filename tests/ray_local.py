"""A local Ray cluster for a test module, started as the ray executor starts one (on loopback), the executor tests'
story, and what they read from its reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import ROOT

from storyforge.render import RunReport

TESTS = Path(__file__).resolve().parent
EXECUTORS = TESTS / "executors"  # the executor tests' modules, which the workers import for the tests' backends
# Two scenes of two shots each on the animatic: a chain (a continue) and a crossfade.
STORY = """\
storyforge: 1
title: Flaky
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
      - id: d
        prompt: the fox sleeps
        duration: 13f
        transition: {type: crossfade, duration: 4f}
"""


@pytest.fixture(scope="module", name="cluster")
def local_cluster():  # imported by name into a test module, used there as `cluster`
    """One local Ray cluster of 2 CPUs for the module that imports this (it takes seconds to start); its workers
    import tests/. Each module has its own, so two modules run on two test workers at once."""
    import ray

    from storyforge.executors.ray_cluster import start_local

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_ADDRESS", raising=False)
        # the raylet, and so every worker it starts, inherits this: the tests' own backend imports there
        patch.setenv("PYTHONPATH", os.pathsep.join([str(EXECUTORS), str(TESTS), str(ROOT),
                                                    os.environ.get("PYTHONPATH", "")]))
        start_local(ray, num_cpus=2, object_store_memory=128 << 20)  # as the executor starts one: on loopback
    yield ray
    ray.shutdown()


def statuses(report: RunReport) -> dict[str, str]:
    return {job.id: job.status for job in report.jobs}
