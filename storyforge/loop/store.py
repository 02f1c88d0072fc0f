"""The job store: each node's result found in the cache or made (a take's clip, a keyframe's picture), what a
continuation is rendered from (a tail), and the record of each."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storyforge.cache import Cache, CorruptEntry, Entry, entry_key
from storyforge.errors import RenderError, StoryforgeError
from storyforge.plan.graph import KEYFRAME
from storyforge.report import Host, JobRecord

if TYPE_CHECKING:

    import numpy as np

    from storyforge.keyframes import KeyframeStore, StartFrames
    from storyforge.loop.holder import ModelHolder
    from storyforge.plan.graph import Node
    from storyforge.plan.model import Job, Plan


@dataclass(frozen=True)
class Setup:
    """What a store renders with: the backend's name and options and where progress goes."""

    backend: str
    options: dict[str, Any]
    progress: Any = None  # storyforge.render.RenderProgress


class JobStore:
    """Entries and records of one film's takes, by slot (the job id for the picked take, `id#takeN` for another),
    and its keyframes; renders what the cache lacks with the holder's model."""

    def __init__(self, plan: Plan, cache: Cache, setup: Setup, holder: ModelHolder, targets: set[str],
                 starts: StartFrames, keyframe_store: KeyframeStore | None = None):
        from storyforge.cut import sync_frames

        self.plan, self.cache, self.setup, self.holder = plan, cache, setup, holder
        self.targets = targets  # what was asked for; anything else rendered is upstream of it
        self.starts, self.keyframe_store = starts, keyframe_store
        self.sync_frames = dict(zip((job.id for job in plan.jobs), sync_frames(plan.jobs), strict=True))
        self._picked = {job.id: job.take for job in plan.jobs}
        slots = [self.slot(take) for job in plan.jobs for take in job.all_takes]
        self.index = {name: n for n, name in enumerate(slots, start=1)}  # progress: every take of every job
        self.entries: dict[str, Entry] = {}
        self.records: dict[str, JobRecord] = {}
        self.shared: Cache | None = None  # --no-cache --only: the shared cache, read for the shots not asked for
        self.reroll = False  # --no-cache --only: what is in the output folder stays until it can be replaced
        self.notices: list[str] = []
        self.warnings: list[str] = []
        self.model_loads = 0  # models read from disk for this film's nodes
        self._entry_keys: dict[str, str] = {}
        self._keyed: Any = False  # a backends.base.Keyed, None when only loading tells, False: not asked yet
        self.pending_keyframes: set[str] = set()  # job ids whose keyframe node has not run yet

    def slot(self, job: Job) -> str:
        return job.id if job.take == self._picked.get(job.id, 1) else f"{job.id}#take{job.take}"

    @property
    def backend(self) -> Any:
        from storyforge.backends.base import load_backend

        setup = self.setup
        return self.holder.get(setup.backend, setup.options, lambda: load_backend(setup.backend, **setup.options))

    # -- nodes ---------------------------------------------------------------------------------------

    def run(self, node: Node) -> None:
        """Bring the node's result in (cached, or made here), counting the models it loaded."""
        before = self.holder.loads
        try:
            if node.kind == KEYFRAME:
                self.keyframe(node.job)
            else:
                self.ensure(node.job)
        finally:
            self.model_loads += self.holder.loads - before
            # what loading the model said (an unverified diffusers version, say) holds for every film it renders
            self.notices.extend(n for n in self.holder.notices if n not in self.notices)

    def done(self, node: Node) -> bool:
        if node.kind == KEYFRAME:
            return node.job.id not in self.pending_keyframes
        return self.slot(node.job) in self.entries

    def keyframe(self, job: Job) -> None:
        """The job's generated start picture (every candidate, when it has several), from the keyframe store or
        made with the edit model the holder holds."""
        from storyforge.keyframes import prepare

        assert job.keyframe is not None and self.keyframe_store is not None
        if job.id in self.starts.found:
            self.pending_keyframes.discard(job.id)
            return
        from storyforge import hub as weights

        needed = weights.keyframe_model(job.keyframe.model, str(job.keyframe.source))
        weights.ensure([needed] if needed else [])  # on this machine (or fetched now with --download)
        _edit_model_identity(job)
        options = {k: v for k, v in self.setup.options.items() if k in ("device", "dtype")}
        made = prepare(self.plan, [job], self.keyframe_store, make=[job.id], close=False,
                       load=lambda: self.holder.get("image-edit", options, lambda: _keyframe_backend(options)),
                       on_done=getattr(self.setup.progress, "keyframe_finished", None))
        self.adopt_keyframes(job, made)

    def adopt_keyframes(self, job: Job, made: StartFrames) -> None:
        """Keep the job's pictures made here or by a worker (`made`: what storyforge.keyframes.prepare returns)."""
        self.starts.found.update(made.found)
        self.starts.candidates.update(made.candidates)
        self.starts.records.extend(made.records)
        self.starts.notices.extend(made.notices)
        self.notices.extend(made.notices)
        if job.id in self.starts.found and job.id in self.starts.missing:
            self.starts.missing.remove(job.id)
        self.pending_keyframes.discard(job.id)

    # -- takes ---------------------------------------------------------------------------------------

    def identity(self, job: Job) -> dict[str, Any]:
        """What the backend adds to the job's key: the held backend's word when it is this film's, else the same
        worked out without loading it (storyforge.backends.base.keyed): a render whose every job is cached then
        imports no torch and loads no model."""
        # only the backend this film would be handed: one held with other options may key its pixels otherwise
        if self.holder.holding(self.setup.backend, self.setup.options) is None:
            if self._keyed is False:
                from storyforge.backends.base import keyed

                self._keyed = keyed(self.setup.backend, self.setup.options)
                if self._keyed is not None:
                    self.notices.extend(n for n in self._keyed.notices if n not in self.notices)
            if self._keyed is not None:
                return self._keyed.identity(job)  # type: ignore[no-any-return]
        return self.backend.identity(job)  # type: ignore[no-any-return]

    def entry_key(self, job: Job) -> str:
        if job.key not in self._entry_keys:
            identity = self.identity(job)
            head = self.chain_head(job)
            if head.keyframe is not None:  # the chain starts from this picture (or, in the animatic, the references)
                if head.id in self.pending_keyframes:
                    raise RuntimeError(f"{job.id}: its chain's keyframe node has not run")
                found = self.starts.found.get(head.id)
                identity = {**identity, "start_frame": found[0] if found else "references"}
            if job.before is not None:  # a bridge ends on the pixels of that shot's entry
                identity = {**identity, "before": self.entry_key(self.plan.job(job.before))}
            self._entry_keys[job.key] = entry_key(identity, job.key)
        return self._entry_keys[job.key]

    def key_known(self, job: Job) -> bool:
        """Whether the job's entry key can be known now: no keyframe it depends on is still to make."""
        if self.chain_head(job).id in self.pending_keyframes:
            return False
        return job.before is None or self.key_known(self.plan.job(job.before))

    def chain_head(self, job: Job) -> Job:
        while job.after is not None:
            job = self.plan.job(job.after)
        return job

    def lookup(self, job: Job) -> Entry | None:
        """The job's cache entry with the sync frames the cut needs now (re-encoded, not re-rendered, if not); for
        a job that was not asked for in a --no-cache run, the shared cache's (used as it is, never written)."""
        entry = self.cache.get(self.entry_key(job))
        needed = self.sync_frames[job.id]
        if entry is None and self.shared is not None and job.id not in self.targets:
            entry = self.shared.get(self.entry_key(job))
            return entry if entry is not None and set(needed) <= set(entry.keyframes) else None
        if entry is not None and not set(needed) <= set(entry.keyframes):
            try:
                entry = self.cache.reencode(entry, needed)
            except CorruptEntry:
                return None
            self.notices.append(f"{job.id}: re-encoded its cached clip with sync frames at {needed} "
                                "(a neighbouring transition changed)")
        return entry

    def ensure(self, job: Job) -> Entry:
        """The job's entry: from the cache, or rendered (after what it continues) and written to it."""
        if self.slot(job) in self.entries:
            return self.entries[self.slot(job)]
        entry = self.cached(job)
        if entry is not None:
            return entry
        previous = self.tail(job) if job.continues else None  # may render what it continues first
        following = self.head(job) if job.is_bridge else None  # may render the shot it leads into first
        started = time.time()
        self.announce(job)
        entry = self._render(job, previous, following)
        if job.id not in self.targets:
            self.notices.append(f"{job.id} was rendered too: a shot you asked for continues it, "
                                "and its clip was not in the cache")
        self.record(job, entry, "rendered", started, rendered_by=Host.here())
        return entry

    def cached(self, job: Job) -> Entry | None:
        """The job's entry when the cache has it, recorded as cached; None when it must be rendered (or its
        chain's keyframe is still to make, so its key is not known yet)."""
        if self.slot(job) in self.entries:
            return self.entries[self.slot(job)]
        if not self.key_known(job):
            return None
        started = time.time()
        entry = self.lookup(job)
        if entry is not None:
            self.announce(job)
            self.record(job, entry, "cached", started)
        return entry

    def record(self, job: Job, entry: Entry, status: str, started: float, finished: float | None = None,
               rendered_by: Host | None = None) -> None:
        """Keep the job's entry and its run.json line (`finished` defaults to now) and tell the progress."""
        from storyforge.loop.names import clip_name, take_name

        finished = time.time() if finished is None else finished
        self.entries[self.slot(job)] = entry
        seconds = round(finished - started, 3)
        clip = clip_name(job) if self.slot(job) == job.id else take_name(job)
        self.records[self.slot(job)] = JobRecord(job.id, job.key, status, clip, seconds, round(started, 3),
                                                 round(finished, 3), take=job.take, rendered_by=rendered_by)
        if self.setup.progress is not None:
            self.setup.progress.job_finished(job, status, seconds)

    def announce(self, job: Job) -> None:
        """Tell the progress that the job is being looked up or rendered."""
        if self.setup.progress is not None:
            self.setup.progress.job_started(self.index[self.slot(job)], len(self.index), job)

    def _render(self, job: Job, previous: np.ndarray | None, following: np.ndarray | None = None) -> Entry:
        """Render the job straight into its cache entry: each chunk of frames is encoded as the backend hands
        it over, so host memory stays flat however long the shot is."""
        from storyforge.backends.base import RenderInputs, frames_of
        from storyforge.loop.streams import Checked, Seams

        progress = self.setup.progress
        backend = self.backend
        chunks = frames_of(backend, job, RenderInputs(previous_frames=previous,
                                                      on_step=progress.step if progress is not None else None,
                                                      start_image=self.starts.start(job.id),
                                                      next_frames=following))
        # black or frozen output means a model failed; a preview's pictures (the animatic's title cards) are
        # synthetic (a static camera is meant to be frozen), and colour matching would only tint them
        preview = getattr(backend, "preview", False)
        checked = Checked(job, self.setup.backend, chunks, look=not preview)
        finished = Seams(job, checked, previous, match=job.settings.color_match and not preview,
                         following=following, score=not preview)  # a preview's seams are listed, not scored
        try:
            entry = self.cache.put(self.entry_key(job), iter(finished), job=job, fps=self.plan.fps,
                                   keyframes=self.sync_frames[job.id], identity=backend.identity(job),
                                   seconds=lambda: checked.seconds, tail=lambda: finished.tail,
                                   seams=lambda: finished.measured)
        except StoryforgeError:
            raise
        except MemoryError as error:
            raise RenderError(f"{job.id}: out of memory while rendering ({error}); try a smaller resolution, "
                              "fewer frames per window (base_frames) or a smaller model") from error
        except OSError as error:
            raise RenderError(f"{job.id}: rendering failed: {error}") from error
        if checked.warning:
            self.warnings.append(f"{job.id}: {checked.warning}")
        return entry

    def tail(self, job: Job) -> np.ndarray:
        """The last overlap_frames frames of the chain before `job`, from the cache entries it continues.

        Each entry's lossless tail (the frames exactly as they were encoded) where it holds the frames needed,
        else its decoded clip; always read back from the cache, never a backend's in-memory frames, so a
        resumed render conditions on exactly the pixels an uninterrupted one did.
        """
        import numpy as np

        needed = job.settings.overlap_frames
        parts: list[np.ndarray] = []
        have = 0
        upstream = self.plan.job(job.after) if job.after else None
        while upstream is not None and have < needed:
            frames = self._decoded(upstream, needed - have)[-(needed - have):]
            parts.insert(0, frames)
            have += len(frames)
            upstream = self.plan.job(upstream.after) if upstream.after else None
        return np.concatenate(parts)[-needed:]

    def head(self, bridge: Job) -> np.ndarray:
        """The first frames of the shot a bridge leads into (its picked take; rendered first if the cache lacks
        it): the frame the bridge ends on, and the frames its far seam is measured and colour-matched against."""
        from storyforge.seams import SIDE

        assert bridge.before is not None
        target = self.plan.job(bridge.before)
        for _attempt in range(2):
            try:
                return self.cache.head(self.ensure(target), SIDE + 1)
            except CorruptEntry:
                self.entries.pop(target.id, None)  # discarded: the next ensure renders it again
        raise RenderError(f"{target.id}: its clip was corrupt twice in a row in {self.cache.root}; check the disk")

    def _decoded(self, job: Job, last: int) -> np.ndarray:
        """The job's last `last` frames (rendered first if the cache lacks it): its entry's lossless tail when
        that holds them, else decoded from its clip."""
        for _attempt in range(2):
            try:
                entry = self.ensure(job)
                lossless = self.cache.tail(entry)
                if lossless is not None and len(lossless) >= min(last, entry.frames):
                    return lossless
                return self.cache.read(entry, last=last)
            except CorruptEntry:
                self.entries.pop(job.id, None)  # discarded: the next ensure renders it again
        raise RenderError(f"{job.id}: its clip was corrupt twice in a row in {self.cache.root}; check the disk")


def _edit_model_identity(job: Job) -> dict[str, Any]:
    """The edit model's identity; a hub model this machine lacks is the error that says what to do."""
    from storyforge.backends.keyframe import missing_weights
    from storyforge.backends.model_folder import NotOnThisMachine
    from storyforge.keyframes import model_identity

    assert job.keyframe is not None
    try:
        return model_identity(job.keyframe.model)
    except NotOnThisMachine as missing:
        raise RenderError(missing_weights(job.keyframe, str(missing))) from None


def _keyframe_backend(options: dict[str, Any]) -> Any:
    from storyforge.backends.base import load_keyframe_backend

    return load_keyframe_backend(**options)
