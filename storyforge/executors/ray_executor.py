"""The Ray executor: one task per chain on a Ray cluster, the cache as the only shared state."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.cache import Cache, Entry
from storyforge.errors import MissingExtra, RenderError, StoryforgeError

if TYPE_CHECKING:
    from storyforge.backends.base import Backend
    from storyforge.plan.model import Job, Plan
    from storyforge.render import Run

ATTEMPTS = 2  # a chain task that fails is tried once more, from the first job it had not delivered
# Opt in to workers writing straight into the driver's cache folder (see `execute`); 1/true/yes turns it on.
SHARED_CACHE_VARIABLE = "STORYFORGE_RAY_SHARED_CACHE"
# What a task sees of the driver's environment: storyforge's own settings (STORYFORGE_HOME, the animatic's
# delay, ...) and the hub's offline switch. Paths and threads are left to each node.
FORWARDED_PREFIX = "STORYFORGE_"
FORWARDED = ("HF_HUB_OFFLINE",)
# A local cluster's object store only ever holds a few encoded clips at once: keep it small, in /dev/shm.
OBJECT_STORE_BYTES = (128 << 20, 1 << 30)  # at least, at most
MIN_SHM_BYTES = 256 << 20  # below this free in /dev/shm (small containers), the object store lives in /tmp


def execute(run: Run, chains: list[list[Job]], *, shared_cache: bool | None = None) -> None:
    """Render `chains` as Ray tasks, longest first, and bring every finished clip into `run`'s cache.

    Connects to the cluster in RAY_ADDRESS, or starts a local one for this render. What the cache already
    holds is taken here, as the local executor would; each chain with work left becomes one task (num_cpus=1,
    and num_gpus=1 when the skyreels-df backend runs on CUDA) that renders its jobs in order and yields each
    clip as it is done.

    By default each clip travels back as its encoded bytes and this process stores it (staged, then renamed,
    as Cache.put does): it works on any cluster, this process stays the cache's only writer, and a clip is a
    few MB against minutes of GPU time. `shared_cache=True` (or STORYFORGE_RAY_SHARED_CACHE=1) lets workers
    write into the cache folder themselves, for a folder every node mounts at the same path: nothing is
    copied, and clips are cached even if this process dies. A task that fails is tried once more; then the
    render fails with the shot's id, after the other chains finish. Ctrl-C cancels the cluster's tasks.
    """
    from storyforge.backends.multigpu import ranks

    cache = run.cache
    if ranks().parallel:  # every rank says so, not only rank 0
        raise StoryforgeError("the ray executor does not run under torchrun (a Ray task gets one GPU); use "
                              "--executor ray for chains on many GPUs, or torchrun for one generation on several")
    ray = _import_ray()
    if shared_cache is None:
        shared_cache = os.environ.get(SHARED_CACHE_VARIABLE, "").strip().lower() in ("1", "true", "yes")
    started_here = False
    try:
        if run.backend_name == "skyreels-df" and "device" not in run.options:
            started_here = _connect(ray)  # the cluster's GPUs decide the device, and so the cache keys
        run.options, gpus = _placement(ray, run.backend_name, run.options)
        pending = [p for p in (_Pending(chain) for chain in chains) if p.take_cached(run)]
        # longest first: the film is done when its longest chain is, so that one must not start last
        pending.sort(key=lambda p: p.cost(), reverse=True)
        if pending:  # a cache that has everything needs no cluster
            started_here = _connect(ray) or started_here
            _Scheduler(ray, run, cache, gpus, shared_cache).drive(pending)
    finally:
        if started_here:
            ray.shutdown()


def _import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] != "ray":
            raise
        raise MissingExtra("ray", "ray", "the ray executor") from None
    return ray


def _connect(ray: Any) -> bool:
    """Connect to RAY_ADDRESS's cluster, or start a local one; True when this call started Ray."""
    if ray.is_initialized():  # the caller connected already (a notebook, the tests): use that cluster
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Ray's notice about accelerator variables, not ours
        if os.environ.get("RAY_ADDRESS"):
            ray.init(**quiet)
        else:
            ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet,
                     **_object_store())
    return True


def _object_store() -> dict[str, Any]:
    """A modest object store, in /dev/shm when it has room (containers often give it 64 MB), else in /tmp."""
    try:
        stat = os.statvfs("/dev/shm")
        free = stat.f_bavail * stat.f_frsize
    except OSError:
        free = 0
    low, high = OBJECT_STORE_BYTES
    if free < MIN_SHM_BYTES:
        return {"object_store_memory": low, "_plasma_directory": tempfile.gettempdir()}
    return {"object_store_memory": max(low, min(high, free // 4))}


def _placement(ray: Any, backend: str, options: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The backend options every process uses and the GPUs a task needs: one for skyreels-df on CUDA.

    The device is decided once, here, from the cluster: a backend's identity (and so every cache key) names
    its device type, and this process looks the cache up with the same identity the workers render with.
    """
    if backend != "skyreels-df":
        return options, 0
    device = options.get("device")
    if device is None:
        device = "cuda" if ray.cluster_resources().get("GPU", 0) >= 1 else "cpu"
    elif device.startswith("cuda"):
        device = "cuda"  # Ray makes the task's GPU the only one it sees
    return {**options, "device": device}, 1 if device == "cuda" else 0


class _Pending:
    """One chain's jobs still to bring in, and how its task is doing."""

    def __init__(self, jobs: list[Job]):
        self.jobs = jobs
        self.attempts = 0
        self.cause = ""

    def take_cached(self, run: Run) -> bool:
        """Take what the cache has (as the local executor would); True when some job is left to render."""
        self.jobs = [job for job in self.jobs if run.cached(job) is None]
        return bool(self.jobs)

    def left(self, run: Run) -> list[Job]:
        return [job for job in self.jobs if job.id not in run.entries]

    def cost(self) -> tuple[int, int]:
        """Transformer calls of the jobs left, then frames: the plan's cost model of this chain's task."""
        return sum(job.transformer_calls for job in self.jobs), sum(job.frames for job in self.jobs)

    def upstream(self, run: Run) -> list[Job]:
        """The chain's jobs before the last one left that are not left themselves: what an extension reads."""
        left = self.left(run)
        chain = next(c for c in run.plan.chains() if any(job.id == left[-1].id for job in c))
        ids = {job.id for job in left}
        position = [job.id for job in chain].index(left[-1].id)
        return [job for job in chain[:position] if job.id not in ids]


@dataclass(frozen=True)
class _Clip:
    """An encoded cache entry on the move: a seed for a worker, or a worker's finished job."""

    key: str
    clip: bytes | None  # None when the worker wrote it into a shared cache folder
    meta: dict[str, Any] | None


@dataclass(frozen=True)
class _Done:
    """What a task yields for each job it brought in."""

    id: str
    status: str  # rendered | cached
    started: float
    finished: float
    entry: _Clip
    notices: list[str]
    warnings: list[str]


class _JobFailed(Exception):
    """A chain task failed at `job_id`; raised on the worker, read on the driver."""

    def __init__(self, job_id: str, message: str):
        super().__init__(job_id, message)
        self.job_id, self.message = job_id, message

    def __str__(self) -> str:
        return f"{self.job_id}: {self.message}"


class _Scheduler:
    """Submits chain tasks, stores what they yield, retries a failed task once, cancels all on interrupt."""

    def __init__(self, ray: Any, run: Run, cache: Cache, gpus: int, shared: bool):
        from storyforge.backends.base import REGISTRY

        self.ray, self.run, self.cache, self.shared = ray, run, cache, shared
        self.plan_ref = ray.put(run.plan)
        self.spec = REGISTRY[run.backend_name]  # the worker may not know a backend registered here at run time
        self.task = ray.remote(_chain_task).options(num_cpus=1, num_gpus=gpus, max_retries=0,
                                                    runtime_env={"env_vars": _forwarded()})
        self.running: dict[Any, _Pending] = {}
        self.failures: list[str] = []

    def drive(self, pending: list[_Pending]) -> None:
        try:
            for chain in pending:
                self._submit(chain)
            while self.running:
                [ready], _ = self.ray.wait(list(self.running), num_returns=1)
                self._advance(ready)
        except BaseException:  # Ctrl-C (or a failure here): the cluster must not go on rendering for nobody
            for generator in self.running:
                self.ray.cancel(generator)
            raise
        if self.failures:
            raise RenderError("\n".join(self.failures))

    def _submit(self, chain: _Pending) -> None:
        run = self.run
        chain.attempts += 1
        left = chain.left(run)
        seeds: list[_Clip] = []
        for job in chain.upstream(run):  # recorded as cached, as the local executor's extension would
            entry = run.entries.get(job.id) or run.cached(job)
            if entry is not None and not self.shared:
                seeds.append(_Clip(entry.key, entry.clip.read_bytes(), entry.meta))
        images = {image.sha256: image.path.read_bytes() for job in left for image in (job.image, job.end_image)
                  if image is not None}
        run.announce(left[0])
        generator = self.task.remote(self.plan_ref, [job.id for job in left], run.backend_name, self.spec,
                                     run.options, str(self.cache.root) if self.shared else None, seeds, images)
        self.running[generator] = chain

    def _advance(self, generator: Any) -> None:
        """Take the next thing a chain's task yielded: a finished job, its end, or its failure."""
        chain = self.running[generator]  # stays listed while its clip is stored: an interrupt then cancels it
        try:
            ref = next(generator)
        except StopIteration:
            del self.running[generator]
            return
        try:
            done = self.ray.get(ref)
        except self.ray.exceptions.RayError as error:
            del self.running[generator]
            self._failed(chain, error)
            return
        self._adopt(done)
        left = chain.left(self.run)
        if left:
            self.run.announce(left[0])

    def _adopt(self, done: _Done) -> None:
        run = self.run
        if done.id in run.entries:
            return
        if done.entry.clip is None:
            entry = self.cache.get(done.entry.key)
            if entry is None:
                raise RenderError(f"{done.id}: a Ray worker wrote its clip into {self.cache.root}, but this machine "
                                  "does not see it there: the cache folder is not shared by every node at the same "
                                  f"path; unset {SHARED_CACHE_VARIABLE} to bring clips back to this machine")
        else:
            assert done.entry.meta is not None
            entry = store(self.cache, done.entry.key, done.entry.clip, done.entry.meta)
        run.record(run.plan.job(done.id), entry, done.status, done.started, done.finished)
        run.notices.extend(done.notices)
        run.warnings.extend(done.warnings)

    def _failed(self, chain: _Pending, error: Exception) -> None:
        cause = getattr(error, "cause", None)
        left = chain.left(self.run)
        if not left:
            return  # it failed after delivering every clip (while freeing the model, say): nothing is lost
        if isinstance(cause, _JobFailed):
            shot, message = cause.job_id, cause.message
        else:  # the worker died (out of memory, a node lost): blame the first job it had not delivered
            shot, message = left[0].id, (str(error).strip().splitlines() or [type(error).__name__])[0]
        if chain.attempts < ATTEMPTS:
            chain.cause = message
            self._submit(chain)
            return
        first = "" if chain.cause == message else f" (the first try: {chain.cause})"
        self.failures.append(f"{shot}: rendering failed on the Ray cluster, twice: {message}{first}")


def _forwarded() -> dict[str, str]:
    return {name: value for name, value in os.environ.items()
            if name.startswith(FORWARDED_PREFIX) or name in FORWARDED}


# -- on a worker -------------------------------------------------------------------------------------------
class _Current:
    """A worker's progress: only which job it is on, for the failure message."""

    job_id = ""

    def job_started(self, index: int, count: int, job: Job) -> None:
        self.job_id = job.id

    def step(self, step: int, total: int) -> None:
        pass

    def job_finished(self, job: Job, status: str, seconds: float) -> None:
        pass


def _chain_task(plan: Plan, job_ids: list[str], backend: str, spec: str, options: dict[str, Any],
                shared_root: str | None, seeds: list[_Clip], images: dict[str, bytes]) -> Iterator[_Done]:
    """One chain's jobs rendered in order on a worker, through the shared cache folder or a scratch one."""
    from storyforge.backends.base import REGISTRY
    from storyforge.render import Run, render_chain

    REGISTRY[backend] = spec
    scratch = Path(tempfile.mkdtemp(prefix="storyforge-ray-"))
    current = _Current()
    try:
        cache = Cache(Path(shared_root)) if shared_root else Cache(scratch / "cache")
        seeded = {store(cache, seed.key, seed.clip, seed.meta).key for seed in seeds if seed.clip and seed.meta}
        plan = _with_images(plan, images, scratch / "images")
        run = Run(plan, cache, backend, options, current, set(job_ids), loaded=_worker_backend(backend, options))
        sent: set[str] = set()
        told = [0, 0, 0]  # notices, warnings and discarded entries already sent
        for _job in render_chain(run, [plan.job(job_id) for job_id in job_ids]):
            # in order: a job `ensure` rendered first because a job asked for continues it comes first
            for job_id, record in list(run.records.items()):
                if job_id in sent:
                    continue
                sent.add(job_id)
                entry = run.entries[job_id]
                if entry.key in seeded:
                    continue  # the driver sent it: it has it
                notices = run.notices[told[0]:] + cache.discarded[told[2]:]
                warned = run.warnings[told[1]:]
                told = [len(run.notices), len(run.warnings), len(cache.discarded)]
                clip = _Clip(entry.key, None, None) if shared_root else _Clip(entry.key, entry.clip.read_bytes(),
                                                                                entry.meta)
                yield _Done(job_id, record.status, record.started, record.finished, clip, notices, warned)
    except Exception as error:  # noqa: BLE001 - every failure goes back to the driver with its shot
        _forget_backend()  # after a failure (out of memory, say) a fresh load is the safe start for the next chain
        text = str(error) if isinstance(error, StoryforgeError) else f"{type(error).__name__}: {error}"
        for prefix in (f"{current.job_id}: ", f"job {current.job_id}: "):
            text = text.removeprefix(prefix)
        raise _JobFailed(current.job_id or job_ids[0], text) from error
    except BaseException:  # cancelled (Ctrl-C on the driver) mid-render: the model's state is unknown
        _forget_backend()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# This worker process's backend, kept across chain tasks: a GPU worker loads the model once, not once per chain.
_LOADED: dict[str, Backend] = {}


def _worker_backend(name: str, options: dict[str, Any]) -> Backend:
    from storyforge.backends.base import load_backend

    key = json.dumps([name, options], sort_keys=True, default=str)
    if key not in _LOADED:
        _forget_backend()
        _LOADED[key] = load_backend(name, **options)
    return _LOADED[key]


def _forget_backend() -> None:
    for backend in _LOADED.values():
        backend.close()
    _LOADED.clear()


def _with_images(plan: Plan, images: dict[str, bytes], folder: Path) -> Plan:
    """`plan` with each start/end image this node cannot read at its path (by content) written into `folder`."""
    from storyforge.spec.resolve import file_sha256

    def local(image: Any) -> Any:
        if image is None or image.sha256 not in images:
            return image
        try:
            if image.path.is_file() and file_sha256(image.path) == image.sha256:
                return image
        except OSError:
            pass
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{image.sha256}{image.path.suffix}"
        path.write_bytes(images[image.sha256])
        return dataclasses.replace(image, path=path)

    jobs = tuple(dataclasses.replace(job, image=local(job.image), end_image=local(job.end_image))
                 for job in plan.jobs)
    return dataclasses.replace(plan, jobs=jobs)


def store(cache: Cache, key: str, clip: bytes, meta: dict[str, Any]) -> Entry:
    """The entry for `key` from a clip a worker encoded: not re-encoded, so it is the clip the local executor makes."""
    return cache.put_clip(key, clip, meta)
