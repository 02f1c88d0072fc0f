"""The render loop: a plan's jobs through a backend into the cache, chain by chain, then the cut.

Executors (storyforge.executors) sit above this loop and drive it: they choose where the chains run and pass
that choice in; this module imports none of them and never asks which process of a launch it runs in.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from storyforge.atomic import link, regular, write_text
from storyforge.cache import Cache, CorruptEntry, Entry, default_root, entry_key
from storyforge.errors import RenderError, StoryforgeError
from storyforge.seams import report as seam_report

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    import numpy as np

    from storyforge.backends.base import Backend, Keyed
    from storyforge.keyframes import KeyframeRecord, StartFrames
    from storyforge.plan.model import Job, Plan

RUN_FORMAT = 1


class RenderProgress(Protocol):
    """What a caller hears while a plan renders; the CLI draws it, the library never prints."""

    def job_started(self, index: int, count: int, job: Job) -> None:
        """Job `index` (1-based) of `count` is being looked up or rendered."""

    def step(self, step: int, total: int) -> None:
        """The running job has done `step` of `total` denoising steps (or frames, for the animatic)."""

    def job_finished(self, job: Job, status: str, seconds: float) -> None:
        """The job's clip is ready: `status` is "rendered" or "cached"."""


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

    def to_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {"id": self.id, "key": self.key, "status": self.status, "clip": self.clip,
                                "seconds": self.seconds, "started": self.started, "finished": self.finished}
        if self.takes:
            line["take"] = self.take
            line["takes"] = [{"take": t.take, "key": t.key, "clip": t.clip, "status": t.status,
                              "seconds": t.seconds} for t in self.takes]
        return line


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
    model_loads: int = 0  # models read from disk for this film's jobs (0 when a worker had them loaded already)

    @property
    def rendered(self) -> int:
        """Takes rendered (a job without takes is one)."""
        return sum(1 for job in self.jobs for take in job.takes or (job,) if take.status == "rendered")

    @property
    def cached(self) -> int:
        return sum(1 for job in self.jobs for take in job.takes or (job,) if take.status == "cached")

    def to_json(self) -> dict[str, Any]:
        film = regular(self.film) if self.film is not None else None
        film_bytes = film.st_size if film is not None else None
        return {
            "jobs": [job.to_json() for job in self.jobs],
            "stitch_seconds": self.stitch_seconds,
            "total_frames": self.total_frames,
            "storyforge_run": RUN_FORMAT,
            "backend": self.backend,
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


def default_out(story: Path) -> Path:
    """`renders/<story stem>/` beside the story file."""
    return story.resolve().parent / "renders" / story.stem


def choose_backend(plan: Plan, requested: str) -> tuple[str, str | None]:
    """The backend to use for `requested` and, when `auto` falls back to the animatic, a notice saying so."""
    from storyforge.backends.base import REGISTRY

    if requested != "auto":
        if requested not in REGISTRY:
            raise StoryforgeError(f"unknown backend '{requested}'; choose one of: auto, {', '.join(sorted(REGISTRY))}")
        return requested, None
    if all(job.settings.model == "tiny" for job in plan.jobs) or cuda_available():
        return "skyreels-df", None
    return "animatic", fallback_notice(torch_installed=importlib.util.find_spec("torch") is not None,
                                       gpu_driver=gpu_driver_present())


ANIMATIC = ("an animatic preview (title cards or start images, camera moves, captions, timecode) at the planned "
            "frame counts")


def fallback_notice(*, torch_installed: bool, gpu_driver: bool) -> str:
    """Why `auto` renders the animatic, given what the machine has, and what would render the model's video."""
    if gpu_driver and not torch_installed:
        return (f"this machine has a GPU driver but torch is not installed, so this is {ANIMATIC}; to render the "
                "model's video, install the render extra: pip install 'storyforge[render]' (PyPI's torch for Linux "
                "is built for CUDA)")
    if gpu_driver:
        return (f"torch is installed but sees no CUDA GPU (a CPU-only build of torch?), so this is {ANIMATIC}; "
                "install a CUDA build of torch (https://pytorch.org/get-started/locally/) to render the model's video")
    return f"no CUDA GPU here, so this is {ANIMATIC}; render on a machine with CUDA for the model's video"


def gpu_driver_present() -> bool:
    """Whether a GPU driver is installed (NVIDIA or ROCm), without importing torch."""
    return any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd")) \
        or shutil.which("nvidia-smi") is not None


def cuda_available() -> bool:
    """Whether torch sees a CUDA device; torch is imported (seconds) only where a GPU driver is present."""
    if importlib.util.find_spec("torch") is None or not gpu_driver_present():
        return False
    import torch

    return bool(torch.cuda.is_available())


def select(plan: Plan, only: list[str] | None) -> list[Job]:
    """The jobs `--only` asks for (shots `scene/shot` or whole scenes) and every job that continues them."""
    if not only:
        return list(plan.jobs)
    scenes = list(dict.fromkeys(job.id.split("/")[0] for job in plan.jobs))
    shots = [job.id for job in plan.jobs]
    unknown = [name for name in only if name not in shots and name not in scenes]
    if unknown:
        raise StoryforgeError(f"--only: no shot or scene called {', '.join(repr(u) for u in unknown)}; "
                              f"valid ids: {', '.join(scenes + shots)}")
    chosen: set[str] = set()
    for job in plan.jobs:
        if job.id in only or job.id.split("/")[0] in only or (job.after is not None and job.after in chosen):
            chosen.add(job.id)
    # a bridge joins two shots: rendering either of them again renders the bridge again (it comes after both)
    chosen |= {job.id for job in plan.bridges() if job.after in chosen or job.before in chosen}
    return [job for job in plan.jobs if job.id in chosen]


def clip_name(job: Job) -> str:
    """`clips/<scene>__<shot>.mp4`, relative to the output folder."""
    return "clips/" + job.id.replace("/", "__") + ".mp4"


def take_name(job: Job, take: int | None = None) -> str:
    """`takes/<scene>__<shot>/take<N>.mp4` (the job's own take by default), relative to the output folder."""
    return f"takes/{job.id.replace('/', '__')}/take{job.take if take is None else take}.mp4"


def render_takes(run: Run, jobs: Sequence[Job]) -> None:
    """Every take of `jobs` besides the picked one (which the chains rendered): each continues what the
    picked take continues, so they need nothing but the chains' entries, and run after them."""
    for job in jobs:
        for take in job.all_takes:
            if take.take != job.take:
                run.ensure(take)


def render_bridges(run: Run, jobs: Sequence[Job]) -> None:
    """The bridges among `jobs`, each after both shots it joins (it brings them in first when they are missing)."""
    for job in jobs:
        if job.is_bridge:
            run.ensure(job)


def chains_of(plan: Plan, jobs: Sequence[Job]) -> list[list[Job]]:
    """`jobs` grouped by the plan's chains, in film order: what an executor schedules (chains are independent)."""
    wanted = {job.id for job in jobs}
    grouped = ([job for job in chain if job.id in wanted] for chain in plan.chains())
    return [chain for chain in grouped if chain]


def render_chain(run: Run, jobs: Sequence[Job]) -> Iterator[Job]:
    """Bring one chain's `jobs` into the run's cache in order, each after what it continues; yields each job as
    its entry is ready. The work of one chain, the same in this process (local) and on a Ray worker."""
    for job in jobs:
        run.ensure(job)
        yield job


def local(run: Run, chains: list[list[Job]]) -> None:
    """The local executor: every chain here, one after the other, in film order."""
    for chain in chains:
        for _job in render_chain(run, chain):
            pass


def render(plan: Plan, *, out: Path | None = None, backend: str = "auto", only: list[str] | None = None,
           use_cache: bool = True, cache_root: Path | None = None, progress: RenderProgress | None = None,
           backend_options: dict[str, Any] | None = None,
           executor: Callable[[Run, list[list[Job]]], None] | str | None = None,
           loaded: Backend | None = None, keyframes_only: bool = False) -> RunReport:
    """Render every job of `plan` (or those `only` names) into `out`, reusing cached clips, and cut the film.

    `use_cache=False` renders every job again into a throw-away cache: the shared cache is neither read nor
    written. `executor` runs the chains (default: `local`, here in film order; storyforge.executors has the
    others and chooses among them by name). `loaded`: the backend `backend` names, built by the caller, who
    also closes it. Raises RenderError when a backend fails; completed cache entries are kept, so a new run
    resumes. KeyboardInterrupt propagates the same way. The output folder is held for the run and only
    storyforge's own files in it are ever replaced or removed (see storyforge.outdir).

    Keyframes (generated start frames) come first, all of them, with the edit model freed before any video;
    the animatic makes none and shows those already cached. `keyframes_only` stops after them: no video.
    """
    if isinstance(executor, str):  # executors by name live above this loop, in storyforge.executors
        if executor != "local":
            raise StoryforgeError(f"storyforge.render.render runs the chains with an executor function; to choose "
                                  f"the '{executor}' executor by name, call storyforge.api.render")
        executor = local
    with opened(plan, out=out, backend=backend, only=only, use_cache=use_cache, cache_root=cache_root,
                progress=progress, backend_options=backend_options, loaded=loaded,
                keyframes_only=keyframes_only) as run:
        if keyframes_only:
            assert run.out is not None
            return _keyframes_only(plan, run.starts, run.out, whole=run.whole)
        (executor or local)(run, run.chains)
        return run.complete()


@contextlib.contextmanager
def opened(plan: Plan, *, out: Path | None = None, backend: str = "auto", only: list[str] | None = None,
           use_cache: bool = True, cache_root: Path | None = None, progress: RenderProgress | None = None,
           backend_options: dict[str, Any] | None = None, loaded: Backend | None = None,
           keyframes_only: bool = False) -> Iterator[Run]:
    """A film's Run, ready for an executor to bring in `run.chains` and then `run.complete()`: its output folder
    held (see storyforge.outdir), its cache, and on exit its backend closed and a --no-cache scratch removed.
    What render() does for one film; an executor of several films opens one each (storyforge.executors).

    The film's keyframes are made here, before any video: the animatic makes none (it shows those cached)."""
    name, notice = choose_backend(plan, backend)
    if loaded is not None and loaded.name != name:
        raise ValueError(f"the loaded backend is {loaded.name!r} but {backend!r} chooses {name!r}")
    out = Path(out) if out is not None else default_out(plan.story)
    targets = select(plan, only)
    from storyforge import outdir
    from storyforge.keyframes import keyframe_names
    from storyforge.review import written_names

    names = ("film.mp4", "plan.json", "run.json", *(clip_name(job) for job in plan.jobs),
             *(take_name(take) for job in plan.jobs for take in job.all_takes), *written_names(plan),
             *(name for job in plan.jobs for name in keyframe_names(job)))
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(outdir.claimed(out, plan.story, names, getattr(progress, "notice", None)))
        # --no-cache: a private folder of this run (its nonce in the name), removed afterwards or by the next run
        scratch = None if use_cache else stack.enter_context(outdir.scratch(out, "cache"))
        cache = Cache(scratch or Path(cache_root or default_root(plan.story)))
        run: Run | None = None
        try:
            starts = start_frames(plan, targets, cache.root, make=keyframes_only or name != "animatic",
                                  options=backend_options or {}, progress=progress)
            run = Run(plan, cache, name, backend_options or {}, progress, {job.id for job in targets}, loaded=loaded,
                      starts=starts)
            run.out, run.whole, run.reuse_film = out, not only, use_cache
            run.chains = chains_of(plan, targets)
            if notice:
                run.notices.append(notice)
            run.notices.extend(starts.notices)  # keyframe pictures found damaged in the cache
            if starts.missing and name == "animatic":
                run.notices.append(f"the animatic makes no keyframes: {', '.join(starts.missing)} show their "
                                   f"references; `storyforge render {plan.story.name} --keyframes-only` makes them")
            yield run
        finally:
            if run is not None:
                run.close_backend()


def start_frames(plan: Plan, targets: Sequence[Job], cache_root: Path, *, make: bool, options: dict[str, Any],
                 progress: RenderProgress | None) -> StartFrames:
    """The plan's keyframes found in the cache; with `make`, those the targets' chains start from are rendered
    first (the edit model loaded once and freed before any video model)."""
    from storyforge.keyframes import KeyframeStore, StartFrames, prepare

    if not any(job.keyframe is not None for job in plan.jobs):
        return StartFrames()
    heads = set()
    # a chain's head: what its continuations start from, rendered first when not cached (a bridge has two chains)
    for job in [*targets, *(plan.job(job.before) for job in targets if job.before is not None)]:
        while job.after is not None:
            job = plan.job(job.after)
        heads.add(job.id)

    def load() -> Any:
        from storyforge.backends.base import load_keyframe_backend

        return load_keyframe_backend(**{k: v for k, v in options.items() if k in ("device", "dtype")})

    done = getattr(progress, "keyframe_finished", None)
    return prepare(plan, plan.jobs, KeyframeStore(cache_root / "keyframes"), make=sorted(heads) if make else (),
                   load=load, on_done=done)


def _keyframes_only(plan: Plan, starts: StartFrames, out: Path, *, whole: bool) -> RunReport:
    """The keyframes linked into `out/keyframes/`; no video, no film, and the last render's run.json is kept."""
    from storyforge.keyframes import write_out

    write_out(plan, starts, out, whole=whole)
    report = RunReport(out=out, backend="image-edit", jobs=[], keyframes=starts.records)
    if not any(job.keyframe is not None for job in plan.jobs):
        report.notices.append("no shot gets a keyframe: add `keyframes:` to the story and reference images to "
                              "its characters or locations")
    return report


class Run:
    """One render's state: the backend (loaded on first use), the entries found or made, and the records."""

    def __init__(self, plan: Plan, cache: Cache, backend: str, options: dict[str, Any],
                 progress: RenderProgress | None, targets: set[str], loaded: Backend | None = None,
                 starts: StartFrames | None = None):
        """`loaded`: the backend, already loaded by the caller, who also closes it (a Ray worker keeps its
        model across chains); by default it is loaded on first use and closed with close_backend."""
        from storyforge.cut import keyframes
        from storyforge.keyframes import StartFrames

        self.starts = starts or StartFrames()  # generated start frames (the plan's keyframes) by job id
        self.plan, self.cache, self.backend_name, self.options, self.progress = plan, cache, backend, options, progress
        self.targets = targets  # what was asked for; anything else rendered is upstream of it
        self.keyframes = dict(zip((job.id for job in plan.jobs), keyframes(plan.jobs), strict=True))
        self._picked = {job.id: job.take for job in plan.jobs}
        slots = [self.slot(take) for job in plan.jobs for take in job.all_takes]
        self.index = {name: n for n, name in enumerate(slots, start=1)}  # progress: every take of every job
        self.entries: dict[str, Entry] = {}
        self.records: dict[str, JobRecord] = {}
        self.notices: list[str] = []
        self.warnings: list[str] = []
        self._backend: Backend | None = loaded
        self._owns_backend = loaded is None
        self._entry_keys: dict[str, str] = {}
        self._keyed: Keyed | None | bool = False  # False: not asked yet (see identity)
        self.model_loads = 0  # models this run's jobs read from disk (a backend handed over brings none)
        self._loads_seen = int(getattr(loaded, "model_loads", 0))  # the backend's own count when this run looked
        # what `opened` sets for a whole film: where it goes, and the chains an executor is to bring in
        self.out: Path | None = None
        self.whole, self.reuse_film = True, True
        self.chains: list[list[Job]] = []

    def slot(self, job: Job) -> str:
        """Where a take's entry and record are kept: the job id for the picked take, `id#takeN` for another."""
        return job.id if job.take == self._picked.get(job.id, 1) else f"{job.id}#take{job.take}"

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from storyforge.backends.base import load_backend

            self._backend = load_backend(self.backend_name, **self.options)
            self._owns_backend, self._loads_seen = True, 0
            # e.g. an unverified diffusers version (said already if the keys were worked out without loading)
            self.notices.extend(n for n in getattr(self._backend, "notices", ()) if n not in self.notices)
        return self._backend

    def count_loads(self) -> None:
        """Add the model loads the backend did for this run since it last looked (see RunReport.model_loads)."""
        if self._backend is None:
            return
        loads = int(getattr(self._backend, "model_loads", 0))
        self.model_loads += max(0, loads - self._loads_seen)
        self._loads_seen = loads

    def hand_backend_to(self, other: Run) -> None:
        """Give `other` (a film rendered next) this run's loaded backend when both would load the same one."""
        if (self._backend is None or not self._owns_backend or other._backend is not None
                or (self.backend_name, self.options) != (other.backend_name, other.options)):
            return
        self.count_loads()
        other._backend, other._owns_backend, other._loads_seen = self._backend, True, self._loads_seen
        other.notices.extend(getattr(self._backend, "notices", ()))  # what loading it said holds for that film too
        self._backend = None

    def close_backend(self) -> None:
        self.count_loads()
        if self._backend is not None and self._owns_backend:
            self._backend.close()
        self._backend = None

    def complete(self) -> RunReport:
        """The film's outputs (see finish) in the folder `opened` holds for it."""
        assert self.out is not None, "a Run made by opened()"
        targets = [job for job in self.plan.jobs if job.id in self.targets]
        render_bridges(self, targets)  # after the chains: each bridge needs the end of one and the start of another
        # every take besides the pick continues what the pick continues: the chains brought all of that in
        render_takes(self, targets)
        return self.finish(self.out, whole=self.whole, reuse_film=self.reuse_film)

    def identity(self, job: Job) -> dict[str, Any]:
        """What the backend adds to the job's key: the loaded backend's word, or, before it is loaded, the same
        worked out without loading it (storyforge.backends.base.keyed): a render whose every job is cached
        then imports no torch and loads no model."""
        if self._backend is None:
            if self._keyed is False:
                from storyforge.backends.base import keyed

                self._keyed = keyed(self.backend_name, self.options)
                if self._keyed is not None:
                    self.notices.extend(self._keyed.notices)
            if self._keyed is not None:
                return self._keyed.identity(job)
        return self.backend.identity(job)

    def entry_key(self, job: Job) -> str:
        if job.key not in self._entry_keys:
            identity = self.identity(job)
            head = job
            while head.after is not None:
                head = self.plan.job(head.after)
            if head.keyframe is not None:  # the chain starts from this picture (or, in the animatic, the references)
                found = self.starts.found.get(head.id)
                identity = {**identity, "start_frame": found[0] if found else "references"}
            if job.before is not None:  # a bridge ends on the pixels of that shot's entry
                identity = {**identity, "before": self.entry_key(self.plan.job(job.before))}
            self._entry_keys[job.key] = entry_key(identity, job.key)
        return self._entry_keys[job.key]

    def lookup(self, job: Job) -> Entry | None:
        """The job's cache entry with the keyframes the cut needs now (re-encoded, not re-rendered, if not)."""
        entry = self.cache.get(self.entry_key(job))
        needed = self.keyframes[job.id]
        if entry is not None and not set(needed) <= set(entry.keyframes):
            try:
                entry = self.cache.reencode(entry, needed)
            except CorruptEntry:
                return None
            self.notices.append(f"{job.id}: re-encoded its cached clip with keyframes at {needed} "
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
        self.record(job, entry, "rendered", started)
        return entry

    def cached(self, job: Job) -> Entry | None:
        """The job's entry when the cache has it, recorded as cached; None when it must be rendered."""
        started = time.time()
        entry = self.lookup(job)
        if entry is not None:
            self.announce(job)
            self.record(job, entry, "cached", started)
        return entry

    def record(self, job: Job, entry: Entry, status: str, started: float, finished: float | None = None) -> None:
        """Keep the job's entry and its run.json line (`finished` defaults to now) and tell the progress."""
        finished = time.time() if finished is None else finished
        self.entries[self.slot(job)] = entry
        seconds = round(finished - started, 3)
        clip = clip_name(job) if self.slot(job) == job.id else take_name(job)
        self.records[self.slot(job)] = JobRecord(job.id, job.key, status, clip, seconds, round(started, 3),
                                            round(finished, 3), take=job.take)
        if self.progress is not None:
            self.progress.job_finished(job, status, seconds)

    def announce(self, job: Job) -> None:
        """Tell the progress that the job is being looked up or rendered."""
        if self.progress is not None:
            self.progress.job_started(self.index[self.slot(job)], len(self.index), job)

    def _render(self, job: Job, previous: np.ndarray | None, following: np.ndarray | None = None) -> Entry:
        """Render the job straight into its cache entry: each chunk of frames is encoded as the backend hands
        it over, so host memory stays flat however long the shot is."""
        from storyforge.backends.base import RenderInputs, frames_of

        on_step = self.progress.step if self.progress is not None else None
        chunks = frames_of(self.backend, job, RenderInputs(previous_frames=previous, on_step=on_step,
                                                           start_image=self.starts.start(job.id),
                                                           next_frames=following))
        # black or frozen output means a model failed; the animatic's pictures are synthetic (a static
        # camera is meant to be frozen), so the check would only cry wolf there
        preview = getattr(self.backend, "preview", False)  # drawn cards (the animatic), not a model's output
        checked = _Checked(job, self.backend_name, chunks, look=not preview)
        # a preview's pictures are title cards: colour matching would only tint them
        finished = _Seams(job, checked, previous, match=job.settings.color_match and not preview,
                          following=following)
        try:
            entry = self.cache.put(self.entry_key(job), iter(finished), job=job, fps=self.plan.fps,
                                   keyframes=self.keyframes[job.id], identity=self.backend.identity(job),
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

    # -- outputs ---------------------------------------------------------------------------------

    def finish(self, out: Path, *, whole: bool, reuse_film: bool) -> RunReport:
        """Clips linked into out/clips, plan.json, the film (unless nothing in it changed), run.json."""
        plan = self.plan
        missing: list[str] = []
        for job in plan.jobs:  # with --only, the film is cut when the other shots' clips are cached
            for take in job.all_takes:
                if self.slot(take) not in self.entries:
                    started = time.time()
                    entry = self.lookup(take)
                    if entry is not None:
                        self.record(take, entry, "cached", started)
                    elif take.take == job.take:
                        missing.append(job.id)
        self.close_backend()  # free the model before the cut (every entry key is known by now)
        self._place(out, whole)
        write_text(out / "plan.json", plan.dumps())
        from storyforge.keyframes import write_out

        write_out(plan, self.starts, out, whole=whole)
        report = RunReport(out=out, backend=self.backend_name,
                           jobs=[self._job_record(job) for job in plan.jobs if job.id in self.records],
                           keyframes=self.starts.records)
        report.notices = self.notices + self.cache.discarded
        report.warnings = self.warnings
        picked = {job.id: self.entries[job.id] for job in plan.jobs if job.id in self.entries}  # the film's seams
        report.seams, report.chains = seam_report(plan, {job_id: entry.meta["seams"] for job_id, entry in
                                                         picked.items() if "seams" in entry.meta})
        report.model_loads = self.model_loads
        if missing:
            # what is left of an earlier cut or clip of these shots shows their old version: not current
            from storyforge.outdir import remove_files

            removed = remove_files(out, ["film.mp4", *(clip_name(plan.job(j)) for j in missing)])
            shots = f"{len(missing)} shots have" if len(missing) > 1 else "1 shot has"
            gone = f"; removed the out-of-date {', '.join(removed)}"
            report.notices.append(f"film.mp4 was not cut: {shots} no clip yet ({', '.join(missing)}); render "
                                  f"without --only to make them" + (gone if removed else ""))
        else:
            self._cut(out, report, reuse_film)
        write_text(out / "run.json", json.dumps(report.to_json(), indent=2) + "\n")
        from storyforge.review import build

        report.review = build(plan, out).page  # reads the run.json just written
        return report

    def _place(self, out: Path, whole: bool) -> None:
        """Every take at takes/<scene>__<shot>/take<N>.mp4, stamped with how it was made (packets copied from
        the cache), and the picked one linked to clips/<scene>__<shot>.mp4; with `whole`, files of takes and
        shots no longer in the plan go."""
        from storyforge.provenance import stamp, take_tags

        plan = self.plan
        expected: set[Path] = set()
        for job in plan.jobs:
            for take in job.all_takes:
                entry = self.entries.get(self.slot(take))
                target = out / take_name(take)
                expected.add(target)
                if entry is None:
                    continue
                stamp(entry.clip, target, take_tags(plan, take, entry.key))
                if take.take == job.take:
                    link(target, out / clip_name(job))
        if whole:  # only files the manifest says storyforge wrote
            from storyforge.outdir import remove_stale

            remove_stale(out, "clips", (out / clip_name(job) for job in plan.jobs))
            remove_stale(out, "takes", expected)  # and the folders of takes it made that this leaves empty

    def _job_record(self, job: Job) -> JobRecord:
        """The job's run.json line: its picked take's record, with every take's."""
        takes = tuple(replace(self.records[self.slot(take)], clip=take_name(take)) for take in job.all_takes
                      if self.slot(take) in self.records)
        return replace(self.records[job.id], takes=takes)

    def _cut(self, out: Path, report: RunReport, reuse_film: bool) -> None:
        from storyforge.clipfile import count_frames
        from storyforge.cut import CutClip, cut_key
        from storyforge.plan.keys import digest
        from storyforge.provenance import film_tags
        from storyforge.stitch import stitch

        plan = self.plan
        clips = [CutClip(job.id, out / clip_name(job), job.frames, job.transition.type, job.transition.frames)
                 for job in plan.jobs]
        # the film's tags are part of its key: a new title or pick is a new film file, even from the same clips
        tags = film_tags(plan, {job.id: self.entries[job.id].key for job in plan.jobs})
        key = digest({"cut": cut_key(clips, [self.entries[job.id].key for job in plan.jobs],
                                     plan.audio.sha256 if plan.audio else None), "tags": tags})
        film = out / "film.mp4"
        report.film, report.cut_key = film, key
        from storyforge.outdir import folder_of
        from storyforge.readback import read_run

        previous = read_run(folder_of(out))  # typed and bounded: whatever run.json holds, this cannot crash
        now = folder_of(out).stat("film.mp4")
        if (reuse_film and now is not None and previous.cut_key == key and previous.film_bytes == now.st_size
                and previous.total_frames == plan.total_frames):
            report.total_frames = plan.total_frames
            return
        from storyforge.outdir import scratch

        with scratch(out, "stitch") as work_dir:  # verify="packets": the decode below checks the frames once
            result = stitch(clips, film, fps=plan.fps, audio=plan.audio.path if plan.audio else None,
                            work_dir=work_dir, verify="packets", metadata=tags)
        decoded = count_frames(film)
        if decoded != plan.total_frames:
            raise RuntimeError(f"{film} decodes to {decoded} frames but the plan has {plan.total_frames}")
        report.stitch_seconds = result.seconds
        report.total_frames = decoded
        report.warnings.extend(result.warnings)


class _Checked:
    """A backend's chunks of frames, checked as they pass: uint8 of the job's size, as many as it plans, and
    (when `look`) whether the clip is all black or frozen; `seconds` counts the time spent in the backend."""

    def __init__(self, job: Job, backend: str, chunks: Iterable[np.ndarray], *, look: bool):
        from storyforge.stitch import ClipCheck

        self.job, self.backend, self.chunks = job, backend, chunks
        self.look = ClipCheck() if look else None
        self.seconds = 0.0
        self.warning: str | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        import numpy as np

        job, s = self.job, self.job.settings
        expected = (s.height, s.width, 3)
        count = 0
        chunks = iter(self.chunks)
        while True:
            started = time.perf_counter()
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            finally:
                self.seconds += time.perf_counter() - started
            if not isinstance(chunk, np.ndarray) or chunk.dtype != np.uint8 or chunk.ndim != 4 \
                    or chunk.shape[1:] != expected:
                got = f"{chunk.dtype} {chunk.shape}" if isinstance(chunk, np.ndarray) else type(chunk).__name__
                raise RuntimeError(f"the {self.backend} backend returned {got} for {job.id}; "
                                   f"expected uint8 {(job.frames, *expected)}")
            count += len(chunk)
            if count > job.frames:
                break
            if self.look is not None:
                self.look.add(chunk)
            yield chunk
        if count != job.frames:
            raise RuntimeError(f"the {self.backend} backend returned {count} frames for {job.id}; "
                               f"expected uint8 {(job.frames, *expected)}")
        if self.look is not None:
            self.warning = self.look.warning()


class _Seams:
    """A job's checked chunks on their way to the encoder: colour-matched at its seams (when `match`) and
    measured for the seam report; after the last chunk, `tail` holds its last overlap_frames frames and
    `measured` the seam numbers (storyforge.seams.SeamMeter). Only a few frames are ever held."""

    def __init__(self, job: Job, chunks: Iterable[np.ndarray], previous: np.ndarray | None, *, match: bool,
                 following: np.ndarray | None = None):
        self.job, self.chunks, self.previous, self.match = job, chunks, previous, match
        self.following = following  # a bridge: the first frames of the shot it leads into
        self.tail: np.ndarray | None = None
        self.measured: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        import numpy as np

        from storyforge.colormatch import Arrival, ColorMatch
        from storyforge.seams import SeamMeter, window_starts

        job, keep = self.job, self.job.settings.overlap_frames
        matcher = ColorMatch(window_starts(job), self.previous if job.continues else None) \
            if self.match else None
        # a bridge also arrives in the colours of the shot after it (rendered before it): its last window eases there
        arrival = Arrival(window_starts(job)[-1], job.frames, self.following) \
            if self.match and job.is_bridge and self.following is not None else None
        meter = SeamMeter(job, self.previous, self.following if job.is_bridge else None)

        def out(frames: np.ndarray) -> Iterator[np.ndarray]:
            if arrival is not None:
                frames = arrival.feed(frames)
            if len(frames):
                meter.add(frames)
                self.tail = (frames if self.tail is None else np.concatenate([self.tail, frames]))[-keep:].copy()
                yield frames

        for chunk in self.chunks:
            yield from out(matcher.feed(chunk) if matcher is not None else chunk)
        if matcher is not None:
            yield from out(matcher.finish())
        if arrival is not None:
            last = arrival.finish()
            arrival = None
            yield from out(last)
        self.measured = meter.result()
