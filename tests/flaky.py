"""A test backend: the animatic, failing on one shot for its first tries (counted in a file, since tries can run
in Ray workers); a module of tests/ so that workers, which get tests/ on their path, import it by name."""

from __future__ import annotations

import os
from pathlib import Path

from storyforge.backends.animatic import Animatic
from storyforge.errors import RenderError

FLAKY_LOG, FLAKY_SHOT, FLAKY_FAILURES = "STORYFORGE_TEST_FLAKY_LOG", "STORYFORGE_TEST_FLAKY_SHOT", \
    "STORYFORGE_TEST_FLAKY_FAILURES"  # STORYFORGE_*: the executor forwards them to its tasks
FLAKY = "flaky:Flaky"  # its REGISTRY entry


class Flaky(Animatic):
    """The animatic, failing on one shot for its first FAILURES tries (counted in a file: tries run on workers)."""

    name = "flaky"

    def identity(self, job):  # type: ignore[no-untyped-def]
        return {**super().identity(job), "backend": self.name}

    def frames(self, job, inputs):  # type: ignore[no-untyped-def]
        log = os.environ.get(FLAKY_LOG)
        if log and job.id == os.environ.get(FLAKY_SHOT):
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(f"{job.id}\n")
            if len(Path(log).read_text().splitlines()) <= int(os.environ.get(FLAKY_FAILURES, "0")):
                raise RenderError(f"{job.id}: the model files are missing")
        return super().frames(job, inputs)
