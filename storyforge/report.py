"""run.json: what a render did, written once by the render loop and read back, typed, by everything else."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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

    @staticmethod
    def from_json(value: Any) -> Host | None:
        if isinstance(value, dict) and isinstance(value.get("host"), str) and _int(value.get("pid")) is not None:
            return Host(value["host"], int(value["pid"]))
        return None


@dataclass(frozen=True)
class KeyframeRecord:
    """One keyframe's line in run.json."""

    id: str  # the job's id
    key: str  # the keyframe's content key (as in the plan)
    status: str  # rendered | cached
    image: str  # relative to the output folder
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "status": self.status, "image": self.image, "seconds": self.seconds}

    @staticmethod
    def from_json(line: Any) -> KeyframeRecord | None:
        if not isinstance(line, dict) or not all(isinstance(line.get(k), str)
                                                 for k in ("id", "key", "status", "image")):
            return None
        return KeyframeRecord(line["id"], line["key"], line["status"], line["image"], _float(line.get("seconds")))


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

    @staticmethod
    def from_json(line: Any, job_id: str | None = None) -> JobRecord | None:
        """A line as run.json holds it (a take's line inside a job's with `job_id`); None when it is malformed."""
        if not isinstance(line, dict):
            return None
        ident = job_id if job_id is not None else line.get("id")
        key, status, clip = line.get("key"), line.get("status"), line.get("clip")
        if not all(isinstance(v, str) for v in (ident, key, status, clip)):
            return None
        take = _int(line.get("take"))
        takes = tuple(t for t in (JobRecord.from_json(entry, ident) for entry in line.get("takes") or []
                                  if isinstance(line.get("takes"), list)) if t is not None)
        return JobRecord(str(ident), str(key), str(status), str(clip), _float(line.get("seconds")),
                         _float(line.get("started")), _float(line.get("finished")), take if take else 1, takes,
                         Host.from_json(line.get("rendered_by")))

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
        film_bytes = self.film.stat().st_size if self.film is not None and self.film.exists() else None
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
        from storyforge.atomic import write_text

        write_text(self.out / RUN_JSON, json.dumps(self.to_json(), indent=2) + "\n")


def read_report(out: Path) -> RunReport | None:
    """The run.json in `out`, typed; None when there is none or it is not a storyforge run (a malformed line is
    left out, a missing field takes its default: every reader sees the same tolerant view)."""
    try:
        data = json.loads((Path(out) / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or "storyforge_run" not in data:
        return None
    jobs = [job for job in (JobRecord.from_json(line) for line in _list(data.get("jobs"))) if job is not None]
    film = data.get("film")
    return RunReport(
        out=Path(out), backend=str(data.get("backend") or ""), jobs=jobs,
        stitch_seconds=_float(data.get("stitch_seconds")), total_frames=_int(data.get("total_frames")) or 0,
        film=Path(out) / film if isinstance(film, str) and film else None,
        cut_key=data.get("cut_key") if isinstance(data.get("cut_key"), str) else None,
        notices=[n for n in _list(data.get("notices")) if isinstance(n, str)],
        warnings=[w for w in _list(data.get("warnings")) if isinstance(w, str)],
        seams=[s for s in _list(data.get("seams")) if isinstance(s, dict)],
        chains=[c for c in _list(data.get("chains")) if isinstance(c, dict)],
        keyframes=[k for k in (KeyframeRecord.from_json(line) for line in _list(data.get("keyframes"))) if k],
        model_loads=_int(data.get("model_loads")) or 0, driver=Host.from_json(data.get("driver")),
        film_bytes=_int(data.get("film_bytes")))


def with_takes(record: JobRecord, takes: tuple[JobRecord, ...]) -> JobRecord:
    return replace(record, takes=takes)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
