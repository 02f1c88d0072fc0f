"""The Ray executor: one task per chain on a Ray cluster, the cache as the only shared state."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.cache import Cache, Entry
from storyforge.errors import MissingExtra, RenderError, StoryforgeError
from storyforge.executors.ray_cluster import check_listen, connect, describe, import_ray
from storyforge.plan.graph import KEYFRAME
from storyforge.render import Host, KeyframeRecord, ModelHolder

if TYPE_CHECKING:
    from collections.abc import Callable

    from storyforge.plan.graph import Node
    from storyforge.plan.model import Job, Plan
    from storyforge.render import Run

    # called once per film when its strands are all in (error None: cut it) or one of them failed twice (the error)
    OnDone = Callable[[Run, RenderError | None], None]

ATTEMPTS = 2  # a chain task that fails is tried once more, from the first job it had not delivered
# Opt in to workers writing straight into the driver's cache folder (see `execute`); 1/true/yes turns it on.
SHARED_CACHE_VARIABLE = "STORYFORGE_RAY_SHARED_CACHE"
# What a task sees of the driver's environment: storyforge's own settings (STORYFORGE_HOME, the animatic's
# delay, ...) and the hub's offline switch. Paths and threads are left to each node.
FORWARDED_PREFIX = "STORYFORGE_"
FORWARDED = ("HF_HUB_OFFLINE",)


def execute(run: Run, *, shared_cache: bool | None = None, listen: str | None = None) -> None:
    """The executor of one film (see storyforge.render.render): its graph as Ray tasks, as `execute_films` does."""
    failures: list[RenderError] = []
    execute_films([run], lambda _run, error: failures.append(error) if error else None, shared_cache=shared_cache,
                  listen=listen)
    if failures:
        raise failures[0]


def execute_films(runs: list[Run], on_done: OnDone, *, shared_cache: bool | None = None,
                  listen: str | None = None) -> None:
    """Render the graph of every run as Ray tasks, longest first, and bring every result into its film's cache.

    Connects to the cluster in RAY_ADDRESS, or starts a local one for this render (on 127.0.0.1 only, unless
    `listen` names an address of this machine to open it at: see ray_cluster.connect). What the cache already
    holds is taken here, as the local executor would; every other node renders on a worker, keyframes and
    every take included (this process renders none). A strand of the graph (a node and the picked takes that
    continue it, storyforge.plan.graph) is one task (num_cpus=1, and num_gpus=1 when the skyreels-df backend
    runs on CUDA), submitted once the nodes it waits for are in; it yields each result as it is done. The
    strands of all films are one queue; a film goes to `on_done` (and is cut) as soon as its own are in.

    By default each clip travels back as its encoded bytes and this process stores it (staged, then renamed,
    as Cache.put does): it works on any cluster, this process stays the cache's only writer, and a clip is a
    few MB against minutes of GPU time. `shared_cache=True` (or STORYFORGE_RAY_SHARED_CACHE=1) lets workers
    write into the cache folder themselves, for a folder every node mounts at the same path: nothing is
    copied, and clips are cached even if this process dies. A task that fails is tried once more; then its
    film fails with the shot's id, after its other strands finish. Ctrl-C cancels the cluster's tasks.
    """
    from storyforge.executors.ranks import ranks

    if ranks().parallel:  # every rank says so, not only rank 0
        raise StoryforgeError("the ray executor does not run under torchrun (a Ray task gets one GPU); use "
                              "--executor ray for chains on many GPUs, or torchrun for one generation on several")
    listen = check_listen(listen)  # a wrong --ray-listen is said before any work, cached or not
    ray = _import_ray()
    if shared_cache is None:
        shared_cache = os.environ.get(SHARED_CACHE_VARIABLE, "").strip().lower() in ("1", "true", "yes")
    started_here = False
    try:
        gpus: dict[int, int] = {}
        for run in runs:
            if run.backend_name == "skyreels-df" and "device" not in run.options:
                # the cluster's GPUs decide the device, and the keys
                started_here = connect(ray, listen=listen) or started_here
            run.options, gpus[id(run)] = _placement(ray, run.backend_name, run.options)
        strands = [_Pending(run, strand) for run in runs for strand in run.graph.strands()]
        for strand in strands:
            strand.take_cached()
        strands = [strand for strand in strands if strand.left()]
        scheduler = None
        if strands:  # a cache that has everything needs no cluster
            started_here = connect(ray, listen=listen) or started_here
            where = f"rendered on {describe(ray)}"
            for run in {id(p.run): p.run for p in strands}.values():
                run.notices.append(where)
            scheduler = _Scheduler(ray, gpus, shared_cache, on_done)
        waiting = {id(p.run) for p in strands}
        for run in runs:  # films whose nodes are all cached are cut now, before any task runs
            if id(run) not in waiting:
                on_done(run, None)
        if scheduler is not None:
            scheduler.drive(strands)
    finally:
        if started_here:
            ray.shutdown()


def _import_ray() -> Any:
    try:
        ray = import_ray()
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] != "ray":
            raise
        raise MissingExtra("ray", "ray", "the ray executor") from None
    return ray


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
    """One strand of a film's graph still to bring in, and how its task is doing."""

    def __init__(self, run: Run, nodes: list[Node]):
        self.run, self.nodes = run, nodes
        self.attempts = 0
        self.cause = ""
        self.nodes_tried: list[str] = []  # where each failed try ran, for the message

    def take_cached(self) -> None:
        """Take what the cache has (as the local executor would), from the strand's start while it has it."""
        while self.nodes and self.ready() and self.run.cached(self.nodes[0]):
            self.nodes = self.nodes[1:]

    def left(self) -> list[Node]:
        return [node for node in self.nodes if not self.run.done(node)]

    def ready(self) -> bool:
        """Whether every node the strand waits for outside itself is in."""
        graph = self.run.graph
        return all(self.run.done(graph.node(parent)) for parent in graph.external_parents(self.left()))

    def cost(self) -> tuple[int, int]:
        """Transformer calls of the takes left, then frames: the plan's cost model of this strand's task."""
        takes = [node.job for node in self.left() if node.kind != KEYFRAME]
        return sum(job.transformer_calls for job in takes), sum(job.frames for job in takes)

    def upstream(self) -> list[Job]:
        """The picked takes before the strand's first node that it reads: the chain it continues, upstream, and
        (a bridge) the shot it leads into."""
        plan, first = self.run.plan, self.left()[0].job
        found: list[Job] = []
        job = first
        while job.after is not None:
            job = plan.job(job.after)
            found.insert(0, job)
        return found + ([plan.job(first.before)] if first.before is not None else [])


@dataclass(frozen=True)
class _Clip:
    """An encoded cache entry on the move: a seed for a worker, or a worker's finished job."""

    key: str
    clip: bytes | None  # None when the worker wrote it into a shared cache folder
    meta: dict[str, Any] | None
    tail: bytes | None = None  # its lossless tail (storyforge.cache.TAIL), what a continuation conditions on


@dataclass(frozen=True)
class _Done:
    """What a task yields for each node it brought in: a take's clip, or a keyframe's picture."""

    id: str  # the job's id
    take: int  # which take (a keyframe: 0)
    status: str  # rendered | cached
    started: float
    finished: float
    entry: _Clip | None  # a take's clip
    notices: list[str]
    warnings: list[str]
    model_loads: int  # models the worker read from disk for this node: 0 when it had them loaded already
    rendered_by: Host | None = None  # the worker process that rendered it
    # a keyframe: its pictures (entry key, PNG bytes, record: where and when it was made) and the entry key it
    # starts from
    picture: tuple[list[tuple[str, bytes, KeyframeRecord]], str | None] | None = None


class _JobFailed(Exception):
    """A chain task failed at `job_id` on `node`; raised on the worker, read on the driver."""

    def __init__(self, job_id: str, message: str, node: str):
        super().__init__(job_id, message, node)
        self.job_id, self.message, self.node = job_id, message, node

    def __str__(self) -> str:
        return f"{self.job_id}: {self.message}"


class _Scheduler:
    """Submits the strands of every film as their parents come in, stores what they yield, retries a failed task
    once, hands each film to `on_done` when its strands are in, and cancels every task on interrupt."""

    def __init__(self, ray: Any, gpus: dict[int, int], shared: bool, on_done: OnDone):
        self.ray, self.gpus, self.shared, self.on_done = ray, gpus, shared, on_done
        self.plans: dict[int, Any] = {}  # one copy of each film's plan in the object store
        self.tasks: dict[int, Any] = {}
        self.running: dict[Any, _Pending] = {}
        self.waiting: list[_Pending] = []  # strands whose parents are not all in yet
        self.open: dict[int, int] = {}  # strands of each film not finished yet
        self.failures: dict[int, list[tuple[int, str]]] = {}

    def drive(self, pending: list[_Pending]) -> None:
        for strand in pending:
            self.open[id(strand.run)] = self.open.get(id(strand.run), 0) + 1
        self.waiting = list(pending)
        try:
            self._submit_ready()
            while self.running:
                [ready], _ = self.ray.wait(list(self.running), num_returns=1)
                self._advance(ready)
        except BaseException:  # Ctrl-C (or a failure here): the cluster must not go on rendering for nobody
            for generator in self.running:
                self.ray.cancel(generator)
            raise

    def _submit_ready(self) -> None:
        """Submit every waiting strand whose parents are in, longest first (a film is done when its longest
        strand is, so that one must not start last); a strand the cache now has is done at once."""
        ready = [strand for strand in self.waiting if strand.ready()]
        self.waiting = [strand for strand in self.waiting if not strand.ready()]
        for strand in sorted(ready, key=lambda p: p.cost(), reverse=True):
            strand.take_cached()
            if strand.left():
                self._submit(strand)
            else:
                self._strand_done(strand)

    def _task(self, run: Run) -> Any:
        from storyforge.backends.base import REGISTRY

        gpus = self.gpus[id(run)]
        if gpus not in self.tasks:
            self.tasks[gpus] = self.ray.remote(_strand_task).options(num_cpus=1, num_gpus=gpus, max_retries=0,
                                                                     runtime_env={"env_vars": _forwarded()})
        if id(run) not in self.plans:
            self.plans[id(run)] = self.ray.put(run.plan)
        # the spec travels: the worker may not know a backend registered here at run time
        return self.tasks[gpus], self.plans[id(run)], REGISTRY.get(run.backend_name, "")

    def _submit(self, strand: _Pending) -> None:
        run, cache = strand.run, strand.run.cache
        strand.attempts += 1
        left = strand.left()
        seeds: list[_Clip] = []
        for job in strand.upstream():  # recorded as cached, as the local executor's extension would
            entry = run.entry(job)
            if entry is not None and not self.shared:
                seeds.append(_Clip(entry.key, cache.clip_bytes(entry), entry.meta, cache.tail_bytes(entry)))
        jobs = [node.job for node in left]
        images = {image.sha256: image.read() for job in jobs
                  for image in (job.image, job.end_image, *(r.image for r in job.references)) if image is not None}
        # generated start frames (keyframes) the film has, read through the cache's door: (entry key, PNG bytes)
        starts = run.keyframe_pictures()
        run.announce(left[0])
        task, plan, spec = self._task(run)
        wanted = sorted({node.job.id for node in left if node.wanted})
        generator = task.remote(code_fingerprint(), plan, [(node.kind, node.job.id, node.job.take) for node in left],
                                run.backend_name, spec, run.options, str(cache.root) if self.shared else None, seeds,
                                images, starts, wanted)
        self.running[generator] = strand

    def _advance(self, generator: Any) -> None:
        """Take the next thing a strand's task yielded: a finished node, its end, or its failure."""
        strand = self.running[generator]  # stays listed while its clip is stored: an interrupt then cancels it
        try:
            ref = next(generator)
        except StopIteration:
            del self.running[generator]
            self._strand_done(strand)
            return
        try:
            done = self.ray.get(ref)
        except self.ray.exceptions.RayError as error:
            del self.running[generator]
            if self._failed(strand, error):
                self._strand_done(strand)
            return
        self._adopt(strand.run, done)
        left = strand.left()
        if left:
            strand.run.announce(left[0])
        self._submit_ready()

    def _strand_done(self, strand: _Pending) -> None:
        """A strand is in (or failed twice): when it was its film's last, the film is done and is cut."""
        run = strand.run
        self.open[id(run)] -= 1
        lost = {node.id for node in strand.left()}  # given up: what waits for it can never run
        while lost:
            orphans = [other for other in self.waiting
                       if other.run is run and run.graph.external_parents(other.left()) & lost]
            self.waiting = [other for other in self.waiting if all(other is not o for o in orphans)]
            self.open[id(run)] -= len(orphans)
            lost = {node.id for other in orphans for node in other.left()}
        if self.open[id(run)] == 0:
            failures = [text for _, text in sorted(self.failures.pop(id(run), []))]  # in film order
            self.on_done(run, RenderError.several(failures) if failures else None)

    def _adopt(self, run: Run, done: _Done) -> None:
        cache = run.cache
        job = run.plan.job(done.id)
        if done.picture is not None:
            pictures, picked = done.picture
            run.deliver_keyframe(job, pictures, picked, done.model_loads)
            run.notices.extend(done.notices)
            return
        assert done.entry is not None
        job = job.for_take(done.take)
        if run.entry(job) is not None:
            return
        if done.entry.clip is None:
            entry = cache.get(done.entry.key)
            if entry is None:
                raise RenderError(f"{done.id}: a Ray worker wrote its clip into {cache.root}, but this machine "
                                  "does not see it there: the cache folder is not shared by every node at the same "
                                  f"path; unset {SHARED_CACHE_VARIABLE} to bring clips back to this machine")
        else:
            assert done.entry.meta is not None
            entry = store(cache, done.entry.key, done.entry.clip, done.entry.meta, done.entry.tail)
        run.deliver_take(job, entry, done.status, done.started, done.finished, rendered_by=done.rendered_by,
                         model_loads=done.model_loads, notices=done.notices, warnings=done.warnings)

    def _failed(self, strand: _Pending, error: Exception) -> bool:
        """Try a failed strand once more from its first undelivered node; True when it is given up (or done)."""
        cause = getattr(error, "cause", None)
        left = strand.left()
        if not left:
            return True  # it failed after delivering every clip (while freeing the model, say): nothing is lost
        if isinstance(cause, _JobFailed):
            shot, message, node = cause.job_id, cause.message, cause.node
        elif isinstance(cause, StoryforgeError):  # the node refused the task before any job (another storyforge)
            shot, message, node = left[0].job.id, str(cause), ""
        else:  # the worker died (out of memory, a node lost): blame the first node it had not delivered
            shot, message, node = left[0].job.id, (str(error).strip().splitlines() or [type(error).__name__])[0], ""
        strand.nodes_tried.append(node)
        if strand.attempts < ATTEMPTS:
            strand.cause = message
            why = message.rstrip(".")
            strand.run.notices.append(f"{shot}: {why}; tried once more on the Ray cluster from {left[0].job.id}")
            self._submit(strand)
            return False
        first = "" if strand.cause == message else f" (the first try: {strand.cause})"
        nodes = list(dict.fromkeys(n for n in strand.nodes_tried if n))
        where = f" (on node {' and '.join(nodes)})" if nodes else ""
        text = f"{shot}: rendering failed on the Ray cluster, twice: {message}{first}{where}"
        self.failures.setdefault(id(strand.run), []).append((strand.run.index(left[0]), text))
        return True


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


def code_fingerprint() -> str:
    """storyforge's version and a digest of its source files: what every node must share with the driver (a
    clip rendered by other code is not the clip the cache key promises, and the task's messages would not fit)."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        import hashlib

        import storyforge

        root = Path(storyforge.__file__).parent
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        _FINGERPRINT = f"{storyforge.__version__} ({digest.hexdigest()[:12]})"
    return _FINGERPRINT


_FINGERPRINT: str | None = None


def _strand_task(driver_code: str, plan: Plan, refs: list[tuple[str, str, int]], backend: str, spec: str,
                 options: dict[str, Any], shared_root: str | None, seeds: list[_Clip], images: dict[str, bytes],
                 starts: dict[str, tuple[str, bytes]], wanted: list[str]) -> Iterator[_Done]:
    """One strand's nodes (kind, job id, take) brought in order on a worker, through the shared cache folder or a
    scratch one, with this worker process's model holder."""
    from storyforge.backends.base import REGISTRY
    from storyforge.render import Host, worker

    if code_fingerprint() != driver_code:
        import storyforge

        raise StoryforgeError(f"node {_node()} runs storyforge {code_fingerprint()} from "
                              f"{Path(storyforge.__file__).parent}, not the storyforge {driver_code} of the machine "
                              "running the render: install the same storyforge on every node")

    if spec:
        REGISTRY[backend] = spec
    scratch = Path(tempfile.mkdtemp(prefix="storyforge-ray-"))
    current = _Current()
    try:
        cache = Cache(Path(shared_root)) if shared_root else Cache(scratch / "cache")
        seeded = {store(cache, seed.key, seed.clip, seed.meta, seed.tail).key for seed in seeds
                  if seed.clip and seed.meta}
        plan = _with_images(plan, images, scratch / "images")
        found = {}
        for job_id, (key, picture) in starts.items():
            path = scratch / "keyframes" / f"{key}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(picture)
            found[job_id] = (key, path)
        run = worker(plan, cache, backend, options, _HOLDER, found, set(wanted), current)
        sent: set[str] = set()
        told = [0, 0, 0]  # notices, warnings and discarded entries already sent
        for kind, job_id, take in refs:
            loads = run.store.model_loads
            node = _node_of(plan, kind, job_id, take)
            current.job_id = job_id
            run.execute(node)
            loads = run.store.model_loads - loads
            notices = run.notices[told[0]:] + cache.discarded[told[2]:]
            warned = run.store.warnings[told[1]:]
            told = [len(run.notices), len(run.store.warnings), len(cache.discarded)]
            if kind == KEYFRAME:  # every picture (candidates too) goes back, and the picked one
                pictures, picked = run.pictures(node.job)
                yield _Done(job_id, 0, "rendered", 0.0, 0.0, None, notices, warned, loads, Host.here(),
                            (pictures, picked))
                continue
            # in order: a take `ensure` rendered first because the one asked for continues it comes first
            for slot, record in list(run.store.records.items()):
                if slot in sent:
                    continue
                sent.add(slot)
                entry = run.store.entries[slot]
                if entry.key in seeded:
                    continue  # the driver sent it: it has it
                clip = _Clip(entry.key, None, None) if shared_root else _Clip(entry.key, cache.clip_bytes(entry),
                                                                                entry.meta, cache.tail_bytes(entry))
                yield _Done(record.id, record.take, record.status, record.started, record.finished, clip, notices,
                            warned, loads, record.rendered_by)
                notices, warned, loads = [], [], 0
    except Exception as error:  # noqa: BLE001 - every failure goes back to the driver with its shot
        _HOLDER.free()  # after a failure (out of memory, say) a fresh load is the safe start for the next strand
        text = str(error) if isinstance(error, StoryforgeError) else f"{type(error).__name__}: {error}"
        for prefix in (f"{current.job_id}: ", f"job {current.job_id}: "):
            text = text.removeprefix(prefix)
        raise _JobFailed(current.job_id or refs[0][1], text, _node()) from error
    except BaseException:  # cancelled (Ctrl-C on the driver) mid-render: the model's state is unknown
        _HOLDER.free()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _node_of(plan: Plan, kind: str, job_id: str, take: int) -> Node:
    from storyforge.plan.graph import Node

    job = plan.job(job_id)
    return Node(job_id, kind, job if kind == KEYFRAME else job.for_take(take))


# This worker process's model holder, kept across strand tasks and films: a GPU worker loads a model once, not
# once per strand, and holds one model at a time (the edit model is freed before the video model loads).
_HOLDER = ModelHolder()


def _node() -> str:
    """This worker's node, as the cluster names it."""
    import ray

    try:
        return str(ray.util.get_node_ip_address())
    except Exception:  # noqa: BLE001 - only for a message
        return ""


def _with_images(plan: Plan, images: dict[str, bytes], folder: Path) -> Plan:
    """`plan` with each start/end image this node cannot read at its path (by content) written into `folder`."""
    from storyforge.story.resolve import file_sha256

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

    jobs = tuple(dataclasses.replace(job, image=local(job.image), end_image=local(job.end_image),
                                     references=tuple(dataclasses.replace(r, image=local(r.image))
                                                      for r in job.references))
                 for job in plan.jobs)
    return dataclasses.replace(plan, jobs=jobs)


def store(cache: Cache, key: str, clip: bytes, meta: dict[str, Any], tail: bytes | None = None) -> Entry:
    """The entry for `key` from a clip a worker encoded: not re-encoded, so it is the clip the local executor makes."""
    return cache.put_clip(key, clip, meta, tail)
