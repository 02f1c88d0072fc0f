"""run.json: what a render did, as the render loop writes it (storyforge.readback reads it back, typed and bounded)."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyforge.atomic import regular, write_text

RUN_FORMAT = 1
RUN_JSON = "run.json"


@dataclass(frozen=True)
class Host:
    """A process on a machine: where a take rendered, or the process that drove the render."""

    host: str
    pid: int

    @staticmethod
    def here() -> Host:
        return Host(socket.gethostname(), os.getpid())

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid}


@dataclass(frozen=True)
class KeyframeRecord:
    """One keyframe's line in run.json."""

    id: str  # the job's id
    key: str  # the keyframe's content key (as in the plan)
    status: str  # rendered | cached
    image: str  # relative to the output folder
    seconds: float
    candidate: int | None = None  # which candidate, when the shot has several
    started: float = 0.0  # unix times on the machine that made (or looked up) the picture, as a take's
    finished: float = 0.0
    rendered_by: Host | None = None  # the process that made it; None when it came from the cache

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "status": self.status, "image": self.image, "seconds": self.seconds,
                **({"candidate": self.candidate} if self.candidate is not None else {}),
                "started": self.started, "finished": self.finished,
                "rendered_by": self.rendered_by.to_json() if self.rendered_by else None}


@dataclass(frozen=True)
class JobRecord:
    """One job's line in run.json (its picked take's), or one take's."""

    id: str
    key: str
    status: str  # rendered | cached
    clip: str  # relative to the output folder
    seconds: float
    started: float
    finished: float
    take: int = 1
    takes: tuple[JobRecord, ...] = ()  # every take of the job, the picked one included
    rendered_by: Host | None = None  # the process that rendered it; None when it came from the cache

    def to_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {"id": self.id, "key": self.key, "status": self.status, "clip": self.clip,
                                "seconds": self.seconds, "started": self.started, "finished": self.finished,
                                "rendered_by": self.rendered_by.to_json() if self.rendered_by else None}
        if self.takes:
            line["take"] = self.take
            line["takes"] = [{"take": t.take, "key": t.key, "clip": t.clip, "status": t.status,
                              "seconds": t.seconds,
                              "rendered_by": t.rendered_by.to_json() if t.rendered_by else None} for t in self.takes]
        return line

    def all_takes(self) -> tuple[JobRecord, ...]:
        """Every take's record; a job without takes is its own."""
        return self.takes or (self,)

    def of_take(self, take: int) -> JobRecord | None:
        return next((t for t in self.all_takes() if t.take == take), None)


@dataclass
class RunReport:
    """What a render did: the run.json manifest plus what the CLI shows."""

    out: Path
    backend: str
    jobs: list[JobRecord]
    stitch_seconds: float = 0.0
    total_frames: int = 0
    film: Path | None = None  # None when --only left jobs without a clip
    cut_key: str | None = None
    keyframes: list[KeyframeRecord] = field(default_factory=list)  # start frames made or found, film order
    review: Path | None = None  # review.html, the page to compare takes and pick from
    notices: list[str] = field(default_factory=list)  # how the run went: backend chosen, entries discarded, ...
    warnings: list[str] = field(default_factory=list)  # clips that look wrong (black, frozen), re-encodes
    seams: list[dict[str, Any]] = field(default_factory=list)  # every seam of the plan (storyforge.seams.report)
    chains: list[dict[str, Any]] = field(default_factory=list)  # colour drift along each chain of windows
    model_loads: int = 0  # models read from disk for this film's jobs (0 when a process had them loaded already)
    driver: Host | None = None  # the process that drove the render (wrote run.json)
    film_bytes: int | None = None  # the film's size when run.json was written

    @property
    def rendered(self) -> int:
        """Takes rendered (a job without takes is one)."""
        return sum(1 for job in self.jobs for take in job.all_takes() if take.status == "rendered")

    @property
    def cached(self) -> int:
        return sum(1 for job in self.jobs for take in job.all_takes() if take.status == "cached")

    def job(self, job_id: str) -> JobRecord | None:
        return next((job for job in self.jobs if job.id == job_id), None)

    def to_json(self) -> dict[str, Any]:
        film = regular(self.film) if self.film is not None else None
        film_bytes = film.st_size if film is not None else None
        return {
            "jobs": [job.to_json() for job in self.jobs],
            "stitch_seconds": self.stitch_seconds,
            "total_frames": self.total_frames,
            "storyforge_run": RUN_FORMAT,
            "backend": self.backend,
            "driver": self.driver.to_json() if self.driver else None,
            "film": self.film.name if self.film is not None else None,
            "film_bytes": film_bytes,
            "cut_key": self.cut_key,
            "notices": self.notices,
            "warnings": self.warnings,
            "seams": self.seams,
            "chains": self.chains,
            "model_loads": self.model_loads,
            **({"keyframes": [k.to_json() for k in self.keyframes]} if self.keyframes else {}),
        }

    def write(self) -> None:
        write_text(self.out / RUN_JSON, json.dumps(self.to_json(), indent=2) + "\n")
