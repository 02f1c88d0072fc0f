"""The README's cluster path on a real Ray cluster: `ray start --head` with token authentication on this machine's
loopback address and a second node joined with `ray start --address`, a driver pointed at it by address; each way
of getting that wrong is one message and exit 1 within seconds; a worker killed mid-chain is retried from the first
job it had not delivered; several films share the cluster."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT
from ray_cluster import Cluster, free_port, start_cluster

from storyforge import api
from storyforge.backends.animatic import Animatic
from storyforge.clipfile import read_frames
from storyforge.render import render

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TESTS = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent  # this module, which the workers import for the tests' backends
SMALL = "resolution: 128x96"  # the example at a size the animatic draws in milliseconds
BOUND = 30  # seconds a refused driver may take, Python's and Ray's imports included, on a busy 2-core machine
CRASH_SHOT, CRASH_MARK, CRASH_LOG = "STORYFORGE_TEST_CRASH_SHOT", "STORYFORGE_TEST_CRASH_MARK", \
    "STORYFORGE_TEST_CRASH_LOG"  # STORYFORGE_*: the executor forwards them to its tasks
CRASH_AFTER, CRASH_CACHE = "STORYFORGE_TEST_CRASH_AFTER", "STORYFORGE_TEST_CRASH_CACHE"

STORY = """\
storyforge: 1
title: Crash
render: {resolution: 128x96, fps: 16, base_frames: 17, overlap_frames: 5}
scenes:
  - id: one
    shots:
      - id: a
        prompt: a red fox wakes up
        duration: 17f
      - id: b
        prompt: the fox stretches
        duration: 12f
        transition: continue
      - id: c
        prompt: the fox yawns
        duration: 12f
        transition: continue
  - id: two
    shots:
      - id: d
        prompt: the fox runs between the trees
        duration: 17f
"""


class Crashy(Animatic):
    """The animatic, whose worker process dies (os._exit, as the OOM killer would end it) on one shot, once."""

    name = "crashy"

    def identity(self, job):  # type: ignore[no-untyped-def]
        return {**super().identity(job), "backend": self.name}

    def frames(self, job, inputs):  # type: ignore[no-untyped-def]
        with open(os.environ[CRASH_LOG], "a", encoding="utf-8") as log:
            log.write(f"{job.id} {os.getpid()}\n")
        mark = Path(os.environ[CRASH_MARK])
        if job.id == os.environ.get(CRASH_SHOT) and not mark.exists():
            _await_delivery(Path(os.environ[CRASH_CACHE]), os.environ[CRASH_AFTER])
            mark.write_text("crashed once")
            os._exit(1)
        return super().frames(job, inputs)


def _await_delivery(cache: Path, job_id: str, bound: float = 120.0) -> None:
    """Wait until the driver has stored `job_id`'s clip: a yield still in flight when a worker dies is lost with
    it (and then rightly rendered again), so the test makes the delivery certain before it kills the worker."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        for meta in cache.glob("*/*/meta.json"):
            try:
                if json.loads(meta.read_text(encoding="utf-8")).get("job") == job_id:
                    return
            except (OSError, ValueError):
                continue
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster():
    """One real two-node cluster for the module (starting one takes half a minute on 2 cores); always stopped."""
    base = {name: value for name, value in os.environ.items() if not name.startswith(("RAY_", "STORYFORGE_"))}
    # every process the nodes start imports this checkout and these tests (the Crashy backend)
    base["PYTHONPATH"] = os.pathsep.join([str(HERE), str(TESTS), str(ROOT)])
    started = start_cluster(base, nodes=2)
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(started.folder, ignore_errors=True)


def storyforge(*arguments: str, env: dict[str, str], cwd: Path, code: str | None = None,
               timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """`storyforge ARGUMENTS` in a fresh process, as a user runs it (`code`: a driver script instead of the CLI)."""
    command = [sys.executable, "-c", code, *arguments] if code else [sys.executable, "-m", "storyforge", *arguments]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    return done.stderr.strip().splitlines()[-1]


@pytest.fixture
def swan_lake(story_dir: Path) -> Path:
    story = story_dir / "swan-lake.yaml"
    story.write_text((EXAMPLES / "swan-lake.yaml").read_text().replace("resolution: 540p", SMALL))
    return story


def test_the_readme_cluster_path_renders_the_film_the_local_executor_renders(
        cluster: Cluster, swan_lake: Path, tmp_path: Path) -> None:
    done = storyforge("render", str(swan_lake), "--backend", "animatic", "--executor", "ray", env=cluster.env,
                      cwd=swan_lake.parent)
    assert done.returncode == 0, done.stderr
    assert "7 rendered, 0 cached" in done.stdout
    assert "(2 nodes, 2 CPUs, 0 GPUs)" in done.stderr  # the notice: where it ran
    out = swan_lake.parent / "renders" / "swan-lake"
    plan = api.plan(swan_lake)
    local = render(plan, out=tmp_path / "local", backend="animatic", cache_root=tmp_path / "local-cache")
    film = read_frames(out / "film.mp4")
    assert film.shape[0] == plan.total_frames
    assert np.array_equal(film, read_frames(tmp_path / "local" / "film.mp4"))
    run = json.loads((out / "run.json").read_text())
    assert [job["key"] for job in run["jobs"]] == [job.key for job in local.jobs]
    assert {job["status"] for job in run["jobs"]} == {"rendered"}


def test_cannot_reach_the_cluster(write_story, cluster: Cluster) -> None:
    story = write_story(STORY)
    port = free_port()  # nothing listens there
    started = time.monotonic()
    done = storyforge("render", str(story), "--backend", "animatic", "--executor", "ray",
                      env={**cluster.env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, cwd=story.parent)
    assert done.returncode == 1, done.stderr
    assert last_line(done) == (
        f"error: cannot reach the Ray cluster at 127.0.0.1:{port} (RAY_ADDRESS): connection refused; start it with "
        f"`ray start --head --port={port}` on 127.0.0.1, or check the address, the port and the firewall, or unset "
        "RAY_ADDRESS to render on a Ray cluster started on this machine")
    assert time.monotonic() - started < BOUND


HOW = ("set RAY_AUTH_MODE=token and give this machine the cluster's token in RAY_AUTH_TOKEN, in a file named by "
       "RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token (`ray get-auth-token` on the head node prints it)")


@pytest.mark.parametrize("case", ["no token mode", "wrong token", "no token at all", "another ray"])
def test_a_cluster_that_refuses_the_driver_is_one_message(write_story, cluster: Cluster, tmp_path: Path,
                                                          case: str) -> None:
    import ray

    story = write_story(STORY)
    env, code = dict(cluster.env), None
    address = cluster.address
    if case == "no token mode":  # what the issue met: the token is there, but the driver does not send it
        del env["RAY_AUTH_MODE"]
        expected = f"the Ray cluster at {address} uses token authentication and this process sent no token: {HOW}"
    elif case == "wrong token":
        env["RAY_AUTH_TOKEN"] = "0" * 32
        expected = (f"the Ray cluster at {address} refused the token in RAY_AUTH_TOKEN: it is not the token the "
                    "cluster was started with; copy that one (`ray get-auth-token` on the head node prints it)")
    elif case == "no token at all":
        del env["RAY_AUTH_TOKEN_PATH"]
        env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
        expected = f"RAY_AUTH_MODE=token is set but this machine has no Ray token: {HOW}"
    else:  # this machine's Ray says it is another version than the cluster's: Ray's own check refuses it
        code = "import ray\nray.__version__ = '2.9.3'\nfrom storyforge.cli import main\nmain()\n"
        python = ".".join(map(str, sys.version_info[:3]))
        expected = (f"the Ray cluster at {address} runs Ray {ray.__version__} on Python {python}, and this machine "
                    f"has Ray 2.9.3 on Python {python}: every node and the machine running storyforge need the same "
                    f"versions (pip install 'ray=={ray.__version__}' here, on Python {python})")
    started = time.monotonic()
    done = storyforge("render", str(story), "--backend", "animatic", "--executor", "ray", env=env, cwd=story.parent,
                      code=code)
    assert done.returncode == 1, done.stderr
    assert last_line(done) == f"error: {expected}"
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < BOUND


def test_a_worker_killed_mid_chain_is_retried_from_its_first_undelivered_job(
        cluster: Cluster, write_story, tmp_path: Path) -> None:
    story = write_story(STORY)
    log, mark = tmp_path / "renders.log", tmp_path / "crashed"
    env = {**cluster.env, CRASH_SHOT: "one/b", CRASH_MARK: str(mark), CRASH_LOG: str(log),
           CRASH_AFTER: "one/a", CRASH_CACHE: str(story.parent / ".storyforge" / "cache")}
    code = ("import sys\nfrom storyforge import api\nfrom storyforge.backends.base import REGISTRY\n"
            "REGISTRY['crashy'] = 'test_ray_cluster:Crashy'\n"
            "report = api.render(api.plan(sys.argv[1]), backend='crashy', executor='ray')\n"
            "print('jobs:', *(f'{job.id}={job.status}' for job in report.jobs))\n")
    done = storyforge(str(story), env=env, cwd=story.parent, code=code)
    assert done.returncode == 0, done.stderr
    # (Ray prints its own "(raylet) A worker died" lines on stdout too)
    assert done.stdout.splitlines()[-1].split() == ["jobs:", "one/a=rendered", "one/b=rendered", "one/c=rendered",
                                                    "two/d=rendered"]
    assert mark.exists()  # a worker process did die
    renders = [line.split() for line in log.read_text().splitlines()]
    chain = [job for job, _pid in renders if job.startswith("one/")]
    assert chain == ["one/a", "one/b", "one/b", "one/c"]  # one/a was delivered before the crash: not rendered again
    run = json.loads((story.parent / "renders" / "film" / "run.json").read_text())
    assert [note for note in run["notices"] if "tried once more" in note] == [
        note for note in run["notices"] if note.startswith("one/b: ") and note.endswith(
            "; tried once more on the Ray cluster from one/b")] != []  # the worker's death is on record
    pids = {job: pid for job, pid in renders}
    assert pids["one/c"] != [pid for job, pid in renders if job == "one/b"][0]  # the retry ran in a new process
    plan = api.plan(story)
    film = read_frames(story.parent / "renders" / "film" / "film.mp4")
    local = render(plan, out=tmp_path / "local", backend="animatic", cache_root=tmp_path / "local-cache")
    assert film.shape[0] == local.total_frames == plan.total_frames
    assert np.array_equal(film, read_frames(tmp_path / "local" / "film.mp4"))


FOX = """\
storyforge: 1
title: Fox
render: {resolution: 128x96, fps: 16, base_frames: 17, overlap_frames: 5}
scenes:
  - id: one
    shots:
      - id: a
        prompt: a red fox wakes up
        duration: 17f
  - id: two
    shots:
      - id: b
        prompt: the fox runs between the trees
        duration: 17f
        transition: {type: crossfade, duration: 4f}
"""


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def test_the_cluster_and_its_driver_talk_on_loopback_only(cluster: Cluster, write_story, tmp_path: Path) -> None:
    """Issue 27: while a task runs on each of the two nodes, every established TCP connection of the cluster's
    processes and the driver's has both ends on 127.0.0.0/8 (or ::1), read from the socket table."""
    import psutil

    story = write_story(FOX)  # two chains: one task on each node
    log = tmp_path / "driver.log"
    with log.open("wb") as output:
        driver = subprocess.Popen([sys.executable, "-m", "storyforge", "render", str(story), "--backend", "animatic",
                                   "--executor", "ray"], cwd=story.parent, stdout=output, stderr=subprocess.STDOUT,
                                  env={**cluster.env, "STORYFORGE_ANIMATIC_DELAY": "3.0"})
    roots = [*cluster.nodes, driver]
    established: dict[tuple[str, str], str] = {}  # (local ip, remote ip) -> a process that had it
    listening: dict[str, str] = {}
    deadline = time.monotonic() + 240
    try:
        while driver.poll() is None and time.monotonic() < deadline:
            ours: dict[int, str] = {}
            for root in roots:
                with contextlib.suppress(psutil.Error):
                    top = psutil.Process(root.pid)
                    for process in (top, *top.children(recursive=True)):
                        with contextlib.suppress(psutil.Error):
                            ours[process.pid] = process.name()
            for connection in psutil.net_connections("tcp"):
                if connection.pid not in ours:
                    continue
                if connection.status == psutil.CONN_ESTABLISHED and connection.raddr:
                    established[(connection.laddr.ip, connection.raddr.ip)] = ours[connection.pid]
                elif connection.status == psutil.CONN_LISTEN:
                    listening[connection.laddr.ip] = ours[connection.pid]
            time.sleep(0.3)
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.wait(30)
    assert driver.returncode == 0, log.read_text(errors="replace")
    assert "(2 nodes, 2 CPUs, 0 GPUs)" in log.read_text()
    outside = {pair: name for pair, name in established.items() if not all(map(_loopback, pair))}
    assert outside == {}
    assert established  # not vacuous: the driver and both nodes did talk while the tasks ran
    assert {ip: name for ip, name in listening.items() if not _loopback(ip)} == {}  # nor does any of them listen there


def test_many_films_share_the_cluster_longest_chains_first_each_cut_when_its_own_are_in(
        cluster: Cluster, swan_lake: Path, tmp_path: Path) -> None:
    fox = swan_lake.parent / "fox.yaml"
    fox.write_text(FOX)
    env = {**cluster.env, "STORYFORGE_ANIMATIC_DELAY": "1.0"}  # slow jobs: the order on the 2 CPUs shows
    done = storyforge("render", str(swan_lake), str(fox), "--backend", "animatic", "--executor", "ray", env=env,
                      cwd=swan_lake.parent)
    assert done.returncode == 0, done.stderr
    plans = {story.stem: api.plan(story) for story in (swan_lake, fox)}
    runs, starts, cuts = {}, {}, {}
    for name, plan in plans.items():
        out = swan_lake.parent / "renders" / name
        alone = render(plan, out=tmp_path / name, backend="animatic", cache_root=tmp_path / "cache")
        assert np.array_equal(read_frames(out / "film.mp4"), read_frames(tmp_path / name / "film.mp4"))
        runs[name] = json.loads((out / "run.json").read_text())
        assert [(job["id"], job["key"], job["status"]) for job in runs[name]["jobs"]] == \
            [(job.id, job.key, "rendered") for job in alone.jobs]
        assert runs[name]["cut_key"] == json.loads((tmp_path / name / "run.json").read_text())["cut_key"]
        times = {job["id"]: (job["started"], job["finished"]) for job in runs[name]["jobs"]}
        for chain in plan.chains():
            starts[(name, chain[0].id)] = (min(times[j.id][0] for j in chain),
                                           (sum(j.transformer_calls for j in chain), sum(j.frames for j in chain)))
        cuts[name] = ((out / "film.mp4").stat().st_mtime, max(finished for _, finished in times.values()))
    # longest first over both films: the two most expensive chains took the two CPUs before any other started
    ranked = sorted(starts, key=lambda chain: starts[chain][1], reverse=True)
    assert max(starts[chain][0] for chain in ranked[:2]) < min(starts[chain][0] for chain in ranked[2:]), starts
    # a film is cut as soon as its own chains are in, while the other film's chains still render
    (first, (cut, _)), (_, (_, other_last)) = sorted(cuts.items(), key=lambda item: item[1][0])
    assert cut < other_last, (first, cuts)


@pytest.mark.torch
def test_a_worker_keeps_its_model_across_chains_and_films(cluster: Cluster, write_story, tmp_path: Path) -> None:
    from conftest import TINY

    stories = [write_story(TINY, "a.yaml"), write_story(TINY.replace("red fox", "grey owl"), "b.yaml")]
    chains = sum(len(api.plan(story).chains()) for story in stories)
    env = {**cluster.env, "STORYFORGE_HOME": str(tmp_path / "home")}  # the tiny model, built once, for every node
    done = storyforge("render", *map(str, stories), "--backend", "skyreels-df", "--executor", "ray", env=env,
                      cwd=stories[0].parent)
    assert done.returncode == 0, done.stderr
    loads = [json.loads((story.parent / "renders" / story.stem / "run.json").read_text())["model_loads"]
             for story in stories]
    # two single-CPU nodes: at most one worker process each renders, and each loads the model once for all chains
    assert 1 <= sum(loads) <= 2 < chains == 4, loads


@pytest.mark.torch
def test_a_node_without_the_model_is_named_with_what_is_missing(cluster: Cluster, write_story,
                                                                tmp_path: Path) -> None:
    from conftest import TINY

    from storyforge.backends.tiny import tiny_model_folder

    home = tmp_path / "home"  # the driver's home holds the model; the nodes' homes do not (separate machines)
    (home / "models").mkdir(parents=True)
    (home / "models" / "tiny").symlink_to(tiny_model_folder(tmp_path / "storyforge-home"))
    story = write_story(TINY.replace("model: tiny", "model: ~/models/tiny").replace("fps: 12", "fps: 16"))
    started = time.monotonic()
    done = storyforge("render", str(story), "--backend", "skyreels-df", "--executor", "ray", cwd=story.parent,
                      env={**cluster.env, "HOME": str(home)})
    assert done.returncode == 1, done.stderr
    node = "127.0.0.1"  # every node of the test cluster is there (tests/ray_cluster.py)
    missing = ("model folder '~/models/tiny' does not exist; give the folder of a diffusers-format SkyReels-V2 DF "
               "model, a hub id, or a preset")
    errors = [line for line in done.stderr.splitlines() if "rendering failed" in line]
    assert [line.split(": rendering failed")[0] for line in errors] == ["error: s/a", "error: s/c"], done.stderr
    assert all(missing in line and line.endswith(f"(on node {node})") for line in errors), errors
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 240
