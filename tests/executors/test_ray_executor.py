"""The ray executor on a local 2-CPU cluster: the multi-scene example frame for frame as the local executor renders
it, chains overlapping in time, longest first, --only, a failing shot retried once and then reported by id, Ctrl-C
cancelling the cluster's tasks, the cluster on loopback. (Keyframes: test_ray_keyframes.py; without a shared
cluster: test_ray_setup.py.)"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT
from flaky import FLAKY, FLAKY_FAILURES, FLAKY_LOG, FLAKY_SHOT
from ray_local import STORY, local_cluster, statuses  # noqa: F401 - local_cluster: the module's own Ray cluster, `cluster`

from storyforge import api
from storyforge.api import render
from storyforge.backends.animatic import DELAY_VARIABLE
from storyforge.backends.base import REGISTRY
from storyforge.clipfile import read_frames
from storyforge.errors import RenderError

SMALL = "resolution: 128x96"  # the example at a size the animatic draws in milliseconds (multiples of 16)


@pytest.fixture
def swan_lake(story_dir: Path) -> Path:
    """examples/stories/swan-lake.yaml (7 shots in 5 chains, start and end images) at 128x96."""
    story = story_dir / "swan-lake.yaml"
    story.write_text((EXAMPLES / "swan-lake.yaml").read_text().replace("resolution: 540p", SMALL))
    return story


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setitem(REGISTRY, "flaky", FLAKY)  # the worker gets this entry with its task
    log = tmp_path / "tries.log"
    monkeypatch.setenv(FLAKY_LOG, str(log))
    return log


def entries(cache: Path) -> list[str]:
    return sorted(json.loads(p.read_text())["job"] for p in cache.glob("??/*/meta.json"))


@pytest.mark.ray
def test_ray_renders_the_multi_scene_example_as_the_local_executor_does(
        cluster, swan_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = api.plan(swan_lake)
    assert len(plan.chains()) == 5 and len(plan.jobs) == 7
    local = render(plan, out=tmp_path / "local", backend="animatic", cache_root=tmp_path / "local-cache")
    monkeypatch.setenv(DELAY_VARIABLE, "0.7")  # slow jobs, so chains visibly overlap; tasks see it
    distributed = render(plan, out=tmp_path / "ray", backend="animatic", cache_root=tmp_path / "ray-cache",
                         executor="ray")
    assert set(statuses(distributed).values()) == {"rendered"} and distributed.total_frames == plan.total_frames

    film = read_frames(tmp_path / "ray" / "film.mp4")
    assert film.shape[0] == plan.total_frames
    assert np.array_equal(film, read_frames(tmp_path / "local" / "film.mp4"))
    for job in plan.jobs:  # each clip is the very bytes the local executor encodes
        name = "clips/" + job.id.replace("/", "__") + ".mp4"
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), job.id
    assert [job.key for job in distributed.jobs] == [job.key for job in local.jobs]
    # each entry's lossless tail (what a continuation conditions on) comes back with its clip, byte for byte
    tails = [{json.loads((p.parent / "meta.json").read_text())["job"]: p.read_bytes()
              for p in (tmp_path / name).glob("??/*/tail.npy")} for name in ("ray-cache", "local-cache")]
    assert tails[0] == tails[1] and len(tails[0]) == len(plan.jobs)

    run = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert run["seams"] == json.loads((tmp_path / "local" / "run.json").read_text())["seams"]
    times = {job["id"]: (job["started"], job["finished"]) for job in run["jobs"]}
    spans = [(min(times[j.id][0] for j in chain), max(times[j.id][1] for j in chain), chain[0].id)
             for chain in plan.chains()]
    overlapping = [(a[2], b[2]) for n, a in enumerate(spans) for b in spans[n + 1:] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, spans  # two chains rendered at the same time
    assert all(finished - started >= 0.7 for started, finished in times.values())  # the workers saw the delay
    # longest first: the two most expensive chains take the two CPUs before any other chain starts
    costs = {chain[0].id: (sum(job.transformer_calls for job in chain), sum(job.frames for job in chain))
             for chain in plan.chains()}  # the plan's cost model: transformer calls, then frames
    first_two = sorted(costs, key=costs.__getitem__, reverse=True)[:2]
    later = [times[head][0] for head in costs if head not in first_two]
    assert max(times[head][0] for head in first_two) < min(later), (first_two, times)

    again = render(plan, out=tmp_path / "ray", backend="animatic", cache_root=tmp_path / "ray-cache", executor="ray")
    assert set(statuses(again).values()) == {"cached"} and again.stitch_seconds == 0.0


@pytest.mark.ray
def test_every_take_renders_on_a_worker_and_the_driver_renders_none(cluster, write_story, tmp_path: Path) -> None:
    """Takes are nodes of the graph: the extra takes of a head and of a continued shot go to the workers too
    (on a head node without a GPU, a take rendered by the driver would fail or run on the wrong machine)."""
    import socket

    story = write_story(STORY.replace("render: {", "render: {takes: 2, "))
    plan = api.plan(story)
    report = render(plan, out=tmp_path / "ray", backend="animatic", cache_root=tmp_path / "cache", executor="ray")
    run = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert run["driver"] == {"host": socket.gethostname(), "pid": os.getpid()}
    takes = {(job["id"], take["take"]): take for job in run["jobs"] for take in job["takes"]}
    assert sorted(takes) == [(job.id, n) for job in plan.jobs for n in (1, 2)]
    assert {take["status"] for take in takes.values()} == {"rendered"} and report.rendered == 8
    workers = {take["rendered_by"]["pid"] for take in takes.values()}
    assert os.getpid() not in workers and all(isinstance(pid, int) for pid in workers)
    render(plan, out=tmp_path / "local", backend="animatic", cache_root=tmp_path / "local-cache")
    for job in plan.jobs:  # the very bytes the local executor encodes, take by take
        for n in (1, 2):
            name = f"takes/{job.id.replace('/', '__')}/take{n}.mp4"
            assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert {t["rendered_by"]["pid"] for j in json.loads((tmp_path / "local" / "run.json").read_text())["jobs"]
            for t in j["takes"]} == {os.getpid()}  # the local executor renders them here


BRIDGE = STORY.split("  - id: two")[0] + """  - id: two
    shots:
      - id: c
        prompt: a river at dusk
        duration: 17f
        transition: {type: bridge, duration: 1s, prompt: the camera flies over the hills to the river}
"""


@pytest.mark.ray
def test_a_bridge_renders_on_a_worker_once_both_shots_it_joins_are_in(cluster, write_story, tmp_path: Path) -> None:
    """A node with two parents: the scheduler submits it when the end of one chain and the start of another are
    in, and the worker gets both clips with it."""
    plan = api.plan(write_story(BRIDGE))
    report = render(plan, out=tmp_path / "ray", backend="animatic", cache_root=tmp_path / "cache", executor="ray")
    assert set(statuses(report)) == {"one/a", "one/b", "two/c~bridge", "two/c"}
    assert set(statuses(report).values()) == {"rendered"}
    run = json.loads((tmp_path / "ray" / "run.json").read_text())
    times = {job["id"]: job for job in run["jobs"]}
    assert times["two/c~bridge"]["started"] >= max(times["one/b"]["finished"], times["two/c"]["finished"])
    assert os.getpid() not in {job["rendered_by"]["pid"] for job in run["jobs"]}
    render(plan, out=tmp_path / "local", backend="animatic", cache_root=tmp_path / "local-cache")
    assert (tmp_path / "ray" / "film.mp4").read_bytes() == (tmp_path / "local" / "film.mp4").read_bytes()


@pytest.mark.ray
def test_only_and_a_cached_upstream_clip_reach_the_worker(cluster, swan_lake: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    report = render(api.plan(swan_lake), out=tmp_path / "out", backend="animatic", cache_root=cache,
                    executor="ray", only=["dawn/dip"])
    assert statuses(report) == {"dawn/glide": "rendered", "dawn/dip": "rendered", "dawn/ripples": "rendered"}
    assert "dawn/glide was rendered too: a shot you asked for continues it, and its clip was not in the cache" \
        in report.notices
    # a new prompt for ripples, which continues dip: the worker conditions on dip's clip as this machine's
    # cache holds it (sent along with the task), exactly as the local executor does
    swan_lake.write_text(swan_lake.read_text().replace("ripples spread in rings", "rings of ripples spread"))
    plan = api.plan(swan_lake)
    report = render(plan, out=tmp_path / "out", backend="animatic", cache_root=cache, executor="ray",
                    only=["dawn/ripples"])
    assert statuses(report) == {"dawn/glide": "cached", "dawn/dip": "cached", "dawn/ripples": "rendered"}
    render(plan, out=tmp_path / "local", backend="animatic", cache_root=tmp_path / "local-cache",
           only=["dawn/ripples"])
    assert (tmp_path / "out" / "clips" / "dawn__ripples.mp4").read_bytes() == \
        (tmp_path / "local" / "clips" / "dawn__ripples.mp4").read_bytes()


@pytest.mark.ray
def test_the_cli_renders_on_the_cluster_in_ray_address(cluster, write_story) -> None:
    story = write_story(STORY)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": cluster.get_runtime_context().gcs_address,
           "STORYFORGE_RAY_SHARED_CACHE": "1"}  # a local cluster shares this machine's folders
    done = subprocess.run([sys.executable, "-m", "storyforge", "render", str(story), "--backend", "animatic",
                           "--executor", "ray"], capture_output=True, text=True, cwd=story.parent, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "4 rendered, 0 cached" in done.stdout
    run = json.loads((story.parent / "renders" / "film" / "run.json").read_text())
    assert [job["id"] for job in run["jobs"]] == ["one/a", "one/b", "two/c", "two/d"]
    assert entries(story.parent / ".storyforge" / "cache") == ["one/a", "one/b", "two/c", "two/d"]


@pytest.mark.ray
def test_a_failing_task_is_retried_once(cluster, write_story, tmp_path: Path, flaky: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FLAKY_SHOT, "one/b")
    monkeypatch.setenv(FLAKY_FAILURES, "1")
    report = render(api.plan(write_story(STORY)), out=tmp_path / "out", backend="flaky",
                    cache_root=tmp_path / "cache", executor="ray")
    assert set(statuses(report).values()) == {"rendered"} and report.film is not None
    assert flaky.read_text().splitlines() == ["one/b", "one/b"]  # failed, then tried once more and done


@pytest.mark.ray
@pytest.mark.parametrize("shared_cache", [False, True])
def test_a_task_that_fails_twice_names_its_shot_and_the_other_chains_are_kept(
        cluster, write_story, tmp_path: Path, flaky: Path, monkeypatch: pytest.MonkeyPatch,
        shared_cache: bool) -> None:
    monkeypatch.setenv(FLAKY_SHOT, "one/b")
    monkeypatch.setenv(FLAKY_FAILURES, "99")
    cache = tmp_path / "cache"
    with pytest.raises(RenderError) as caught:
        render(api.plan(write_story(STORY)), out=tmp_path / "out", backend="flaky", cache_root=cache,
               executor="ray", executor_options={"shared_cache": shared_cache})
    node = cluster.util.get_node_ip_address()  # where it failed: a node may lack what another has
    assert str(caught.value) == \
        f"one/b: rendering failed on the Ray cluster, twice: the model files are missing (on node {node})"
    assert flaky.read_text().splitlines() == ["one/b", "one/b"]
    assert entries(cache) == ["one/a", "two/c", "two/d"]  # one/a came back before one/b failed; two/* finished
    assert list((cache / "tmp").iterdir()) == []


@pytest.mark.ray
def test_ctrl_c_cancels_the_cluster_tasks(cluster, swan_lake: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DELAY_VARIABLE, "1.5")
    cache = tmp_path / "cache"

    class Interrupt:  # Ctrl-C as soon as the first clip is in
        def job_started(self, index, count, job):  # type: ignore[no-untyped-def]
            pass

        def step(self, step, total):  # type: ignore[no-untyped-def]
            pass

        def job_finished(self, job, status, seconds):  # type: ignore[no-untyped-def]
            raise KeyboardInterrupt

    plan = api.plan(swan_lake)
    with pytest.raises(KeyboardInterrupt):
        # shared_cache: the workers write entries themselves, so one that kept going would show up
        render(plan, out=tmp_path / "out", backend="animatic", cache_root=cache, executor="ray",
               executor_options={"shared_cache": True}, progress=Interrupt())
    kept = entries(cache)
    assert 1 <= len(kept) <= 2, kept  # the first clip, and perhaps the other CPU's finishing at the same moment
    time.sleep(2.5)  # longer than a job: a task still running would have written its clip by now
    assert entries(cache) == kept
    monkeypatch.delenv(DELAY_VARIABLE)
    report = render(plan, out=tmp_path / "out", backend="animatic", cache_root=cache, executor="ray")
    assert sorted(job_id for job_id, status in statuses(report).items() if status == "cached") == kept


@pytest.mark.ray
def test_the_cluster_started_here_listens_and_talks_on_loopback_only(cluster, write_story) -> None:
    """Issue 27: every socket of the cluster storyforge starts (ray_cluster.start_local, as the executor does) is on
    127.0.0.0/8, read from the socket table while a task runs."""
    import psutil

    @cluster.remote
    def held() -> str:
        time.sleep(2)
        return "done"

    task = held.remote()
    time.sleep(1)
    ours = {process.pid for process in psutil.Process().children(recursive=True)} | {os.getpid()}
    sockets = [c for c in psutil.net_connections("tcp") if c.pid in ours]
    assert cluster.get(task) == "done"

    def loopback(ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        return (getattr(address, "ipv4_mapped", None) or address).is_loopback

    listening = [c.laddr.ip for c in sockets if c.status == psutil.CONN_LISTEN]
    talking = [(c.laddr.ip, c.raddr.ip) for c in sockets if c.status == psutil.CONN_ESTABLISHED and c.raddr]
    assert listening and talking  # the GCS, the raylet and the workers were there
    assert [ip for ip in listening if not loopback(ip)] == []
    assert [pair for pair in talking if not all(map(loopback, pair))] == []
    assert cluster.get_runtime_context().gcs_address.startswith("127.0.0.1:")


@pytest.mark.ray
def test_a_node_with_another_storyforge_is_refused_by_name(cluster, write_story, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from storyforge.executors import ray_executor

    theirs = ray_executor.code_fingerprint()  # what the workers run: this checkout
    monkeypatch.setattr(ray_executor, "_FINGERPRINT", "0.0.9 (000000000000)")  # this process: other code
    with pytest.raises(RenderError) as caught:
        render(api.plan(write_story(STORY)), out=tmp_path / "out", backend="animatic", cache_root=tmp_path / "cache",
               executor="ray")
    refusal = (f"node {cluster.util.get_node_ip_address()} runs storyforge {theirs} from {ROOT / 'storyforge'}, not "
               "the storyforge 0.0.9 (000000000000) of the machine running the render: install the same storyforge "
               "on every node")
    assert str(caught.value).splitlines() == [f"{shot}: rendering failed on the Ray cluster, twice: {refusal}"
                                              for shot in ("one/a", "two/c", "two/d")]


