"""The render loop: a plan's graph of work (storyforge.plan.graph) brought into the cache, then the film finished.

Its rooms live in storyforge.loop: the model holder (one model per process, handed on, freed), the job store
(each node found in the cache or made; tails) and finishing (outputs placed, the cut, run.json, the review page).

The interface executors (storyforge.executors) use, and the only one (an import-linter contract says so):
- `opened(plan, ...)`: one film's `Run`, its output folder held; `Run.graph` is the work to schedule;
- `Run.pending()`, `Run.execute(node)` (here), `Run.cached(node)`, `Run.deliver_take` / `Run.deliver_keyframe`
  (what another process made), `Run.announce(node)`, `Run.complete()` (finish the film), `Run.release()`;
- `worker(...)`: a `Run` without outputs, for a process rendering nodes for a driver (a Ray worker);
- `ModelHolder`, `local`, `choose_backend`, `select`, `keyframes_missing`, `default_out`, `clip_name`,
  `take_name`, the report types (`RunReport`, `JobRecord`, `Host`, `KeyframeRecord`).
This module imports no executor and never asks which process of a launch it runs in.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from storyforge.cache import Cache, Entry, default_root
from storyforge.cache import present as cache_present
from storyforge.errors import StoryforgeError
from storyforge.keyframes import KeyframeRecord
from storyforge.loop.holder import ModelHolder
from storyforge.loop.names import clip_name, take_name
from storyforge.loop.store import JobStore, Setup
from storyforge.plan.graph import KEYFRAME, Graph, Node, graph_of
from storyforge.report import RUN_FORMAT, Host, JobRecord, RunReport

if TYPE_CHECKING:
    from storyforge.backends.base import Backend
    from storyforge.plan.model import Job, Plan

__all__ = ["RUN_FORMAT", "Host", "JobRecord", "KeyframeRecord", "ModelHolder", "RenderProgress", "Run",
           "RunReport", "choose_backend", "clip_name", "default_out", "keyframes_missing", "local", "opened",
           "render", "select", "take_name", "worker"]


class RenderProgress(Protocol):
    """What a caller hears while a plan renders; the CLI draws it, the library never prints."""

    def job_started(self, index: int, count: int, job: Job) -> None:
        """Job `index` (1-based) of `count` is being looked up or rendered."""

    def step(self, step: int, total: int) -> None:
        """The running job has done `step` of `total` denoising steps (or frames, for the animatic)."""

    def job_finished(self, job: Job, status: str, seconds: float) -> None:
        """The job's clip is ready: `status` is "rendered" or "cached"."""


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


class Run:
    """One film's render: its graph of work, the job store that brings each node in, and where it finishes."""

    def __init__(self, store: JobStore, graph: Graph, *, out: Path | None = None, whole: bool = True,
                 reuse_film: bool = True):
        self.store, self.graph = store, graph
        self.plan = store.plan
        self.out, self.whole, self.reuse_film = out, whole, reuse_film

    @property
    def backend_name(self) -> str:
        return self.store.setup.backend

    @property
    def options(self) -> dict[str, Any]:
        return self.store.setup.options

    @options.setter
    def options(self, options: dict[str, Any]) -> None:
        """Decided by an executor (a Ray cluster's device): what every process renders this film with."""
        from dataclasses import replace

        self.store.setup = replace(self.store.setup, options=options)

    @property
    def cache(self) -> Cache:
        return self.store.cache

    @property
    def notices(self) -> list[str]:
        return self.store.notices

    @property
    def keyframes_found(self) -> dict[str, tuple[str, Path]]:
        """The film's keyframes so far: job id -> (entry key, picture)."""
        return dict(self.store.starts.found)

    def done(self, node: Node) -> bool:
        return self.store.done(node)

    def pending(self) -> list[Node]:
        """The graph's nodes not brought in yet, in graph order."""
        return [node for node in self.graph if not self.store.done(node)]

    def execute(self, node: Node) -> None:
        """Bring the node in here: from the cache, or made by this process's model holder."""
        if not self.store.done(node):
            self.store.run(node)

    def cached(self, node: Node) -> bool:
        """Whether the cache has the node's result (then it is recorded as found); keyframes in the cache were
        found when the film was opened."""
        if self.store.done(node):
            return True
        return node.kind != KEYFRAME and self.store.cached(node.job) is not None

    def entry(self, job: Job) -> Entry | None:
        """The job's (picked take's, or `job`'s take's) entry brought in so far."""
        return self.store.entries.get(self.store.slot(job))

    def announce(self, node: Node) -> None:
        if node.kind != KEYFRAME:
            self.store.announce(node.job)

    def index(self, node: Node) -> int:
        """The node's place in the film (for ordering messages)."""
        return self.store.index.get(self.store.slot(node.job), 0) if node.kind != KEYFRAME else 0

    def deliver_take(self, job: Job, entry: Entry, status: str, started: float, finished: float, *,
                     rendered_by: Host | None, model_loads: int, notices: list[str], warnings: list[str]) -> None:
        """A take another process brought in (its entry already in this cache)."""
        if self.store.slot(job) not in self.store.entries:
            self.store.record(job, entry, status, started, finished, rendered_by=rendered_by)
        self.store.notices.extend(notices)
        self.store.warnings.extend(warnings)
        self.store.model_loads += model_loads

    def deliver_keyframe(self, job: Job, pictures: list[tuple[str, bytes, KeyframeRecord]], picked: str | None,
                         model_loads: int) -> None:
        """A keyframe another process made: its pictures (entry key, PNG bytes, record; every candidate when the
        shot has several), kept in this film's keyframe store; `picked`: the entry key of the one it starts from."""
        from storyforge.keyframes import StartFrames

        assert self.store.keyframe_store is not None
        made = StartFrames()
        told = getattr(self.store.setup.progress, "keyframe_finished", None)
        for key, png, record in pictures:
            path = self.store.keyframe_store.put_bytes(key, png)
            if record.candidate is not None:
                made.candidates.setdefault(job.id, {})[record.candidate] = path
            if key == picked:
                made.found[job.id] = (key, path)
            made.records.append(record)
            if told is not None and (key == picked or record.status == "rendered"):
                told(job, record.status, record.seconds)
        self.store.adopt_keyframes(job, made)
        self.store.model_loads += model_loads

    def keyframe_pictures(self) -> dict[str, tuple[str, bytes]]:
        """The film's start pictures so far, read through the cache's door (those checked when found, never a
        link swapped in since): job id -> (entry key, PNG bytes)."""
        return self.store.starts.picked_bytes()

    def pictures(self, job: Job) -> tuple[list[tuple[str, bytes, KeyframeRecord]], str | None]:
        """The job's keyframe pictures this run has (entry key, PNG bytes read through the cache's door, record)
        and the entry key it starts from: what a worker sends its driver."""
        return self.store.starts.pictures(job.id)

    def complete(self, *, free: bool = True) -> RunReport:
        """The film's outputs in the folder `opened` holds for it: every take placed, the cut, run.json, the
        review page; `free`: the model is freed before the cut (False: a next film uses it)."""
        from storyforge.loop.finish import finish

        assert self.out is not None, "a Run made by opened()"
        return finish(self.store, self.out, whole=self.whole, reuse_film=self.reuse_film,
                      before_cut=self.release if free else None)

    def keyframes_report(self) -> RunReport:
        """`--keyframes-only`: the keyframes linked into `out/keyframes/`; no video, no film, and the last
        render's run.json is kept."""
        from storyforge.keyframes import write_out

        assert self.out is not None
        write_out(self.plan, self.store.starts, self.out, whole=self.whole)
        order = {job.id: n for n, job in enumerate(self.plan.jobs)}
        report = RunReport(out=self.out, backend="image-edit", jobs=[], driver=Host.here(),
                           keyframes=sorted(self.store.starts.records, key=lambda r: order.get(r.id, 0)))
        report.model_loads = self.store.model_loads
        if not any(job.keyframe is not None for job in self.plan.jobs):
            report.notices.append("no shot gets a keyframe: add `keyframes:` to the story and reference images to "
                                  "its characters or locations")
        return report

    def release(self) -> None:
        """Free the model this film's holder holds."""
        self.store.holder.free()


def local(run: Run) -> None:
    """The local executor: every node of the graph here, in graph order (keyframes, then takes in film order)."""
    for node in run.graph:
        run.execute(node)


Executor = Callable[[Run], None]


def render(plan: Plan, *, out: Path | None = None, backend: str = "auto", only: list[str] | None = None,
           use_cache: bool = True, cache_root: Path | None = None, progress: RenderProgress | None = None,
           backend_options: dict[str, Any] | None = None, executor: Executor | str | None = None,
           loaded: Backend | None = None, keyframes_only: bool = False) -> RunReport:
    """Render every job of `plan` (or those `only` names) into `out`, reusing cached clips, and cut the film.

    `use_cache=False` renders every job again into a throw-away cache: the shared cache is neither read nor
    written. `executor` schedules the film's graph of work (default: `local`, here in graph order;
    storyforge.executors has the others and chooses among them by name). `loaded`: the backend `backend`
    names, built by the caller, who also closes it. Raises RenderError when a backend fails; completed cache
    entries are kept, so a new run resumes. KeyboardInterrupt propagates the same way. The output folder is
    held for the run and only storyforge's own files in it are ever replaced or removed (see storyforge.outdir).

    Keyframes (generated start frames) are the graph's first nodes, with the edit model freed before any video
    loads; the animatic makes none and shows those already cached. `keyframes_only`: them alone, no video.
    """
    if isinstance(executor, str):  # executors by name live above this loop, in storyforge.executors
        if executor != "local":
            raise StoryforgeError(f"storyforge.render.render runs the chains with an executor function; to choose "
                                  f"the '{executor}' executor by name, call storyforge.api.render")
        executor = local
    with opened(plan, out=out, backend=backend, only=only, use_cache=use_cache, cache_root=cache_root,
                progress=progress, backend_options=backend_options, loaded=loaded,
                keyframes_only=keyframes_only) as run:
        (executor or local)(run)
        return run.keyframes_report() if keyframes_only else run.complete()


@contextlib.contextmanager
def opened(plan: Plan, *, out: Path | None = None, backend: str = "auto", only: list[str] | None = None,
           use_cache: bool = True, cache_root: Path | None = None, progress: RenderProgress | None = None,
           backend_options: dict[str, Any] | None = None, loaded: Backend | None = None,
           keyframes_only: bool = False, holder: ModelHolder | None = None) -> Iterator[Run]:
    """A film's Run, ready for an executor to bring in `run.graph` and then `run.complete()`: its output folder
    held (see storyforge.outdir), its cache, and on exit its model freed (unless `holder`, the caller's, keeps
    it for the next film) and a --no-cache scratch removed. An executor of several films opens one each.

    `loaded`: a backend the caller built and closes; `holder`: a model holder shared with other films."""
    name, notice = choose_backend(plan, backend)
    if loaded is not None and loaded.name != name:
        raise ValueError(f"the loaded backend is {loaded.name!r} but {backend!r} chooses {name!r}")
    out = Path(out) if out is not None else default_out(plan.story)
    targets = select(plan, only)
    if name == "skyreels-df":  # every hub model on this machine before any work (or --download fetches it now)
        from storyforge import hub as weights

        weights.ensure([needed for needed in (weights.video_model(m) for m in
                                              dict.fromkeys(job.settings.model for job in targets)) if needed])
    from storyforge import outdir

    with contextlib.ExitStack() as stack:
        out = stack.enter_context(outdir.claimed(out, plan.story, _written(plan), getattr(progress, "notice", None)))
        # --no-cache: a private folder of this run (its nonce in the name), removed afterwards or by the next run
        scratch = None if use_cache else stack.enter_context(outdir.scratch(out, "cache"))
        cache = Cache(scratch or Path(cache_root or default_root(plan.story)))
        shared_root = Path(cache_root or default_root(plan.story))
        # --no-cache renders what it is asked to again; the shots it is not asked for come from the shared cache,
        # read only, so re-rolling one shot keeps the others and the film is cut again with the new clip
        shared = Cache(shared_root, readonly=True) if scratch is not None and only and cache_present(shared_root) \
            else None
        own = holder is None
        held = holder or ModelHolder(loaded, name=name, options=backend_options or {})
        try:
            run = _film(plan, cache, Setup(name, backend_options or {}, progress), held, targets,
                        make=keyframes_only or name != "animatic", keyframes_only=keyframes_only)
            run.out, run.whole, run.reuse_film = out, not only, use_cache
            run.store.shared, run.store.reroll = shared, scratch is not None and bool(only)
            if notice:
                run.notices.append(notice)
            run.notices.extend(run.store.starts.notices)  # keyframe pictures found damaged in the cache
            missing = run.store.starts.missing
            if missing and name == "animatic":
                run.notices.append(f"the animatic makes no keyframes: {', '.join(missing)} show their "
                                   f"references; `storyforge render {plan.story.name} --keyframes-only` makes them")
            yield run
        finally:
            if own:
                held.free()


def _written(plan: Plan) -> tuple[str, ...]:
    """Every file a render of `plan` may write in its output folder (its manifest)."""
    from storyforge.keyframes import keyframe_names
    from storyforge.review import written_names

    return ("film.mp4", "plan.json", "run.json", *(clip_name(job) for job in plan.jobs),
            *(take_name(take) for job in plan.jobs for take in job.all_takes), *written_names(plan),
            *(name for job in plan.jobs for name in keyframe_names(job)))


def _film(plan: Plan, cache: Cache, setup: Setup, holder: ModelHolder, targets: list[Job], *, make: bool,
          keyframes_only: bool = False) -> Run:
    """A Run over the graph that renders `targets`: keyframes the cache has are found now; with `make`, a
    keyframe node for each one their chains start from that it lacks."""
    from storyforge.keyframes import KeyframeStore, prepare

    store_of_pictures = KeyframeStore(cache.root / "keyframes")
    done = getattr(setup.progress, "keyframe_finished", None)
    starts = prepare(plan, plan.jobs, store_of_pictures, make=(), on_done=done)
    heads = _heads(plan, targets)
    missing = [job_id for job_id in starts.missing if job_id in heads] if make else []
    graph = graph_of(plan, targets, keyframes=missing, takes=not keyframes_only)
    store = JobStore(plan, cache, setup, holder, {job.id for job in targets}, starts, store_of_pictures)
    store.pending_keyframes = {node.job.id for node in graph.of_kind(KEYFRAME)}
    return Run(store, graph)


def keyframes_missing(plan: Plan, only: list[str] | None, cache_root: Path | None) -> list[str]:
    """The shots whose keyframe a render of `only` starts from and the cache lacks (the graph's keyframe nodes)."""
    from storyforge.keyframes import KeyframeStore, prepare

    if not any(job.keyframe is not None for job in plan.jobs):
        return []
    root = Path(cache_root or default_root(plan.story))
    starts = prepare(plan, plan.jobs, KeyframeStore(root / "keyframes"), make=())
    heads = _heads(plan, select(plan, only))
    return sorted(job_id for job_id in starts.missing if job_id in heads)


def _heads(plan: Plan, targets: list[Job]) -> set[str]:
    """The chain heads `targets` start from (their keyframes are made first); a bridge has two chains."""
    heads = set()
    for job in [*targets, *(plan.job(job.before) for job in targets if job.before is not None)]:
        while job.after is not None:
            job = plan.job(job.after)
        heads.add(job.id)
    return heads


def worker(plan: Plan, cache: Cache, backend: str, options: dict[str, Any], holder: ModelHolder,
           keyframes: dict[str, tuple[str, Path]], wanted: set[str], progress: RenderProgress | None = None) -> Run:
    """A Run without outputs for a process that renders nodes for a driver: `keyframes` are the film's start
    pictures the driver has (job id -> (entry key, file)); pictures this process makes go to `cache`'s
    keyframes/. Its `execute` brings nodes into `cache`; nothing is placed or cut."""
    from storyforge.keyframes import KeyframeStore, StartFrames

    store = JobStore(plan, cache, Setup(backend, options, progress), holder, wanted,
                     StartFrames(found=dict(keyframes)), KeyframeStore(cache.root / "keyframes"))
    store.pending_keyframes = {job.id for job in plan.jobs if job.keyframe is not None
                               and job.id not in keyframes and backend != "animatic"}
    return Run(store, Graph(()))
