"""The studio's background work: renders of another take, of what changed, and cuts, one at a time, in order.

Each task is a render of the story as the terminal would run it (`storyforge render`, optionally `--only` a
shot), so the output folder's lock keeps one render at a time there (a render from a terminal waits, or is
waited for, and the page says so). Progress is kept for the page to ask for."""

from __future__ import annotations

import contextvars
import itertools
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.errors import StoryforgeError

if TYPE_CHECKING:
    from storyforge.plan.model import Job


@dataclass
class Task:
    """One piece of work the page asked for."""

    id: int
    kind: str  # take | render | cut
    shot: str | None
    label: str
    state: str = "queued"  # queued | running | done | failed
    message: str = ""
    progress: dict[str, Any] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None

    def to_json(self) -> dict[str, Any]:
        took = round(self.finished - self.started, 2) if self.started and self.finished else None
        return {"id": self.id, "kind": self.kind, "shot": self.shot, "label": self.label, "state": self.state,
                "message": self.message, "progress": dict(self.progress), "seconds": took}


class Worker:
    """A queue of tasks run by one thread; `status()` is what the page shows."""

    KEEP = 8  # finished tasks the page still lists

    def __init__(self, story: Path, out: Path, backend: str | None):
        self.story, self.out, self.backend = story, out, backend
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._tasks: list[Task] = []
        self._ids = itertools.count(1)
        context = contextvars.copy_context()  # the command's --allow-path holds for the renders too
        self._thread = threading.Thread(target=context.run, args=(self._loop,), name="studio-work", daemon=True)
        self._thread.start()

    def submit(self, kind: str, shot: str | None = None, label: str = "") -> Task:
        with self._lock:
            for task in self._tasks:  # the same work already waiting covers this request too
                if task.state == "queued" and (task.kind, task.shot) == (kind, shot):
                    return task
            task = Task(next(self._ids), kind, shot, label or kind)
            self._tasks.append(task)
            self._wake.notify()
            return task

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"tasks": [task.to_json() for task in self._tasks],
                    "busy": any(task.state in ("queued", "running") for task in self._tasks)}

    def _next(self) -> Task:
        with self._lock:
            while True:
                task = next((task for task in self._tasks if task.state == "queued"), None)
                if task is not None:
                    task.state, task.started = "running", time.time()
                    return task
                self._wake.wait()

    def _loop(self) -> None:
        while True:
            task = self._next()
            try:
                message = self._run(task)
                state = "done"
            except StoryforgeError as error:
                message, state = str(error), "failed"
            except Exception:  # noqa: BLE001 - the server stays up; the page shows what broke
                message, state = "storyforge hit an internal error (a bug): " + traceback.format_exc(limit=-2), \
                    "failed"
            with self._lock:
                task.state, task.message, task.finished = state, message, time.time()
                finished = [t for t in self._tasks if t.state in ("done", "failed")]
                for old in finished[:-self.KEEP]:
                    self._tasks.remove(old)

    def _backend(self) -> str:
        """The backend to render with: the one asked for, else the last render's (so its cache is met), else auto."""
        if self.backend:
            return self.backend
        from storyforge.studio.film import run_json

        name = run_json(self.out).get("backend")
        from storyforge.backends.base import REGISTRY

        return name if isinstance(name, str) and name in REGISTRY else "auto"

    def _run(self, task: Task) -> str:
        from storyforge import api

        plan = api.plan(self.story)
        progress = _Progress(task, self._lock)
        if task.kind == "cut":
            from storyforge.studio.film import describe

            waiting = describe(plan, self.out, "")["to_render"]
            if waiting:
                raise StoryforgeError(f"a cut renders nothing, and {', '.join(waiting)} "
                                      f"{'is' if len(waiting) == 1 else 'are'} not rendered yet: choose "
                                      "“Render what changed”")
        only = [task.shot] if task.kind == "take" and task.shot else None
        report = api.render(plan, out=self.out, backend=self._backend(), only=only, progress=progress)
        counts = f"{report.rendered} rendered, {report.cached} cached"
        if report.film is None:
            return f"{counts}; " + " ".join(report.notices[-1:])
        cut = f"cut in {report.stitch_seconds:.1f}s" if report.stitch_seconds else "the cut was already current"
        return f"{counts}; {cut}"


class _Progress:
    """The render's progress (storyforge.render.RenderProgress), kept on the task for the page."""

    def __init__(self, task: Task, lock: threading.Lock):
        self.task, self.lock = task, lock

    def _set(self, **fields: Any) -> None:
        with self.lock:
            self.task.progress.update(fields)

    def job_started(self, index: int, count: int, job: Job) -> None:
        take = f" take {job.take}" if job.takes > 1 else ""
        self._set(job=f"{job.id}{take}", index=index, count=count, step=0, total=None, waiting=None)

    def step(self, step: int, total: int) -> None:
        self._set(step=step, total=total)

    def job_finished(self, job: Job, status: str, seconds: float) -> None:
        with self.lock:
            done = self.task.progress.setdefault("done", [])
            done.append({"job": job.id, "take": job.take, "status": status, "seconds": seconds})

    def keyframe_finished(self, job: Job, status: str, seconds: float) -> None:
        self._set(keyframe=job.id)

    def notice(self, message: str) -> None:
        self._set(waiting=message)
