"""Torchrun ranks around the render loop: rank 0 renders as usual and tells the other ranks what to render in step.

One generation split across the GPUs of a torchrun launch (storyforge.backends.multigpu; the group is joined in
storyforge.executors.ranks) needs every rank to call the backend with the same job and the same input frames,
at the same time. Rank 0 runs the ordinary
render (cache, clips, film, run.json); its backend is wrapped so that each job it renders is first announced,
with the frames it continues (rank 0's decoded pixels), to the other ranks. They run `follow`: receive each
job, render it with their own backend in step, write nothing. The render loop never learns that ranks exist.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storyforge.errors import RenderError
from storyforge.executors.ranks import coupled, ranks, setup, share

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from storyforge.backends.base import Backend, RenderInputs
    from storyforge.plan.model import Job, Plan
    from storyforge.render import JobRecord, RenderProgress, RunReport


@dataclass(frozen=True)
class _Render:
    """Rank 0's word to the others: render this job from these frames (None: no input frames)."""

    job_id: str
    previous_frames: np.ndarray | None
    take: int = 1  # which take of the job (its own seed)
    start_image: Path | None = None  # its keyframe (read from the cache, which every rank of a node sees)
    next_frames: np.ndarray | None = None  # a bridge: the first frames of the shot it leads into


def render_ranked(plan: Plan, *, out: Path | None = None, backend: str = "auto", only: list[str] | None = None,
                  use_cache: bool = True, cache_root: Path | None = None, progress: RenderProgress | None = None,
                  backend_options: dict[str, Any] | None = None, keyframes_only: bool = False) -> RunReport:
    """This rank's part of a torchrun render: rank 0 renders and writes everything, the others follow it.

    Keyframes are made before any rank loads a video model, in one process (`--keyframes-only`): while rank 0
    made them, the other ranks would wait in a collective for longer than it allows."""
    if keyframes_only:  # no video, no process group: rank 0 makes them, the others have nothing to do
        from storyforge.render import RunReport, default_out, render

        if ranks().rank == 0:
            return render(plan, out=out, backend=backend, only=only, use_cache=use_cache, cache_root=cache_root,
                          progress=progress, backend_options=backend_options, keyframes_only=True)
        return RunReport(out=out or default_out(plan.story), backend="image-edit", jobs=[])
    _keyframes_made(plan, only, cache_root)
    if ranks().rank != 0:
        return follow(plan, out=out, backend=backend, only=only, backend_options=backend_options)
    from storyforge.render import choose_backend, render

    name, _notice = choose_backend(plan, backend)
    # built before anything else: a backend that splits generations joins the process group here, where
    # every follower joins it too
    leader = Leader(ranked_backend(name, backend_options or {}))
    try:
        return render(plan, out=out, backend=backend, only=only, use_cache=use_cache, cache_root=cache_root,
                      progress=progress, backend_options=backend_options, loaded=leader)
    finally:
        leader.release()
        leader.close()


def _keyframes_made(plan: Plan, only: list[str] | None, cache_root: Path | None) -> None:
    """Every keyframe the render needs is in the cache; else the same RenderError on every rank."""
    from storyforge.render import keyframes_missing

    missing = keyframes_missing(plan, only, cache_root)
    if missing:
        raise RenderError(f"{len(missing)} shots need keyframes that are not made yet ({', '.join(missing)}); make "
                          f"them first in one process with `storyforge render {plan.story.name} --keyframes-only`, "
                          "then launch torchrun again")


def ranked_backend(name: str, options: dict[str, Any]) -> Backend:
    """The backend `name` for this rank: one that splits generations joins the launch's Ulysses group (every rank
    builds it at the same point, so they join together); any other is built as usual."""
    from storyforge.backends.base import backend_class

    cls = backend_class(name)
    if getattr(cls, "splits_generations", False) and "parallel" not in options:
        options = {**options, "parallel": setup(ranks())}
    return cls(**options)  # type: ignore[no-any-return]


class Leader:
    """Rank 0's backend: announces each job (and the frames it continues) to the other ranks, then renders it."""

    def __init__(self, backend: Backend):
        self.inner = backend
        self.name = backend.name

    def identity(self, job: Job) -> dict[str, Any]:
        return self.inner.identity(job)

    def frames(self, job: Job, inputs: RenderInputs) -> Iterator[np.ndarray]:
        from storyforge.backends.base import frames_of

        share(_Render(job.id, inputs.previous_frames, job.take, inputs.start_image, inputs.next_frames))
        yield from frames_of(self.inner, job, inputs)

    def render(self, job: Job, inputs: RenderInputs) -> np.ndarray:
        import numpy as np

        return np.concatenate(list(self.frames(job, inputs)))

    def release(self) -> None:
        """Tell the other ranks that nothing more comes (after the last job, or when rank 0 fails)."""
        share(None)

    def close(self) -> None:
        self.inner.close()


def follow(plan: Plan, *, out: Path | None = None, backend: str = "auto", only: list[str] | None = None,
           backend_options: dict[str, Any] | None = None) -> RunReport:
    """A rank other than 0: render each job rank 0 announces, in step with it, and write nothing.

    When the backend forms no process group (the animatic), rank 0 cannot be heard: this rank then renders
    the graph's takes by itself (every take asked for), in graph order, each extension from its own last frames.
    """
    from storyforge.plan.graph import graph_of
    from storyforge.render import RunReport, choose_backend, default_out, select

    name, _notice = choose_backend(plan, backend)
    targets = select(plan, only)  # the same refusals as rank 0
    follower = _Follower(plan, ranked_backend(name, backend_options or {}))  # joins rank 0's process group
    try:
        if coupled():
            while (word := share(None)) is not None:
                if word.job_id not in follower.jobs:
                    raise RenderError(f"rank 0 renders {word.job_id}, which this rank's plan does not have; every "
                                      "torchrun process must render the same story file with the same options")
                follower.render(follower.jobs[word.job_id].for_take(word.take), word.previous_frames,
                                word.start_image, word.next_frames)
        else:
            for node in graph_of(plan, targets):  # takes and bridges: keyframes were made before any rank began
                follower.alone(node.job)
    finally:
        follower.backend.close()
    where = ranks()
    return RunReport(out=out or default_out(plan.story), backend=name, jobs=follower.records,
                     notices=[f"this is rank {where.rank} of {where.world_size}: rank 0 writes the clips, run.json "
                              "and the film"])


class _Follower:
    """A follower's backend, the last frames of what it rendered, and its records."""

    def __init__(self, plan: Plan, backend: Backend):
        self.plan, self.backend = plan, backend
        self.jobs = {job.id: job for job in plan.jobs}
        self.records: list[JobRecord] = []
        self.tails: dict[str, np.ndarray] = {}
        self.heads: dict[str, np.ndarray] = {}  # the first frames of each shot, for a bridge into it
        self.keep = max((job.settings.overlap_frames for job in plan.jobs), default=0)
        self.done: set[tuple[str, int]] = set()  # (job id, take) rendered

    def render(self, job: Job, previous: np.ndarray | None, start_image: Path | None = None,
               following: np.ndarray | None = None) -> None:
        """Render `job` from `previous` (or its keyframe), keeping only its last frames (the chunks are dropped
        as they come)."""
        import numpy as np

        from storyforge.backends.base import RenderInputs, frames_of
        from storyforge.render import Host, JobRecord, clip_name
        from storyforge.seams import SIDE

        started = time.time()
        tail = head = None
        inputs = RenderInputs(previous_frames=previous, start_image=start_image, next_frames=following)
        for chunk in frames_of(self.backend, job, inputs):
            tail = chunk if tail is None else np.concatenate([tail, chunk])
            tail = tail[len(tail) - min(self.keep, len(tail)):]
            head = chunk[:SIDE + 1] if head is None else np.concatenate([head, chunk])[:SIDE + 1]
        self.done.add((job.id, job.take))
        if job.take == self.jobs[job.id].take and head is not None:
            self.heads[job.id] = head
        if job.take == self.jobs[job.id].take:  # what a continuing job continues is the picked take
            self.tails[job.id] = tail if tail is not None else np.empty((0, 0, 0, 3), np.uint8)
        finished = time.time()
        self.records.append(JobRecord(job.id, job.key, "rendered", clip_name(job), round(finished - started, 3),
                                      round(started, 3), round(finished, 3), take=job.take,
                                      rendered_by=Host.here()))

    def alone(self, job: Job) -> None:
        """Render take `job` unless done, after what it continues, from this rank's own frames of that."""
        import numpy as np

        if (job.id, job.take) in self.done:
            return
        previous = following = None
        if job.before is not None:  # a bridge: after the shot it leads into, from that shot's first frames
            self.alone(self.plan.job(job.before))
            following = self.heads.get(job.before)
        if job.continues:
            needed, have = job.settings.overlap_frames, 0
            parts: list[np.ndarray] = []
            upstream = self.plan.job(job.after) if job.after else None
            while upstream is not None and have < needed:
                self.alone(upstream)
                parts.insert(0, self.tails[upstream.id][-(needed - have):])
                have += len(parts[0])
                upstream = self.plan.job(upstream.after) if upstream.after else None
            previous = np.concatenate(parts)[-needed:] if parts else None
        self.render(job, previous, following=following)
