"""The ray executor without a shared cluster: the local executor never imports Ray, Ray missing or an unknown
executor is one message, the cluster a render starts for itself (its object store, its token kept out of the home
folder), where skyreels tasks are placed, and RAY_ADDRESS=auto with no cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT
from ray_local import STORY

from storyforge import api
from storyforge.api import render


def test_the_local_executor_never_imports_ray(write_story) -> None:
    story = write_story(STORY)
    code = ("import sys\nfrom storyforge import api\n"
            f"api.render(api.plan({str(story)!r}), backend='animatic', executor='local')\n"
            "print('ray' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=story.parent,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_without_ray_the_ray_executor_names_the_extra(write_story) -> None:
    story = write_story(STORY)
    code = "import sys\nsys.modules['ray'] = None\nfrom storyforge.cli import main\nmain()\n"  # as if not installed
    done = subprocess.run([sys.executable, "-c", code, "render", str(story), "--executor", "ray"],
                          capture_output=True, text=True, cwd=story.parent, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: the ray executor needs the Python package 'ray', which is not installed. Install it with: "
        "pip install 'storyforge[ray]'")


def test_an_unknown_executor_is_refused(write_story) -> None:
    with pytest.raises(Exception, match="unknown executor 'dask'; choose one of: local, ray"):
        render(api.plan(write_story(STORY)), backend="animatic", executor="dask")


def test_a_local_cluster_keeps_its_object_store_small_and_out_of_a_small_dev_shm(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from storyforge.executors import ray_cluster

    def free(megabytes: int) -> None:
        monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_bavail=megabytes * 256, f_frsize=4096))

    free(64)  # a container's default /dev/shm
    assert ray_cluster.object_store() == {"object_store_memory": 128 << 20,
                                            "_plasma_directory": tempfile.gettempdir()}
    free(2048)
    assert ray_cluster.object_store() == {"object_store_memory": 512 << 20}
    free(24 << 10)  # this machine's
    assert ray_cluster.object_store() == {"object_store_memory": 1 << 30}


def test_skyreels_tasks_take_a_gpu_when_the_cluster_has_them() -> None:
    from types import SimpleNamespace

    from storyforge.executors.ray_executor import _placement

    gpus, cpus = (SimpleNamespace(cluster_resources=lambda n=n: {"CPU": 8.0, "GPU": n}) for n in (4.0, 0.0))
    assert _placement(gpus, "animatic", {}) == ({}, 0)
    assert _placement(gpus, "skyreels-df", {}) == ({"device": "cuda"}, 1)  # the same device in every cache key
    assert _placement(cpus, "skyreels-df", {"dtype": "float32"}) == ({"dtype": "float32", "device": "cpu"}, 0)
    assert _placement(cpus, "skyreels-df", {"device": "cuda:3"}) == ({"device": "cuda"}, 1)  # Ray picks the GPU


@pytest.mark.ray
@pytest.mark.slow
def test_a_cluster_started_for_the_render_keeps_its_token_out_of_the_home_folder(write_story, tmp_path: Path) -> None:
    story = write_story(STORY)
    home = tmp_path / "home"
    home.mkdir()
    env = {name: value for name, value in os.environ.items() if not name.startswith("RAY_")}
    done = subprocess.run([sys.executable, "-m", "storyforge", "render", str(story), "--backend", "animatic",
                           "--executor", "ray"], capture_output=True, text=True, cwd=story.parent,
                          env={**env, "PYTHONPATH": str(ROOT), "HOME": str(home),
                               "STORYFORGE_RAY_LISTEN": "127.0.0.1"},  # loopback asked for: the default, as it is
                          timeout=300)
    assert done.returncode == 0, done.stderr
    # the cluster started for this render, on loopback (issue 27), with token authentication on
    assert re.search(r"note: rendered on the Ray cluster at 127\.0\.0\.1:\d+ \(1 node, ", done.stderr), done.stderr
    assert "Token authentication" not in done.stderr
    assert list(home.iterdir()) == []  # Ray would have written ~/.ray/auth_token, and `ray start` obeys it later


def test_ray_address_auto_without_a_cluster_says_what_to_do() -> None:
    from storyforge.executors.ray_cluster import explain

    # Ray's own words when RAY_ADDRESS=auto finds nothing (a live test would find any cluster on the machine)
    ray_says = ConnectionError("Could not find any running Ray instance. Please specify the one to connect to by "
                               "setting `--address` flag or `RAY_ADDRESS` environment variable.")
    assert str(explain(ray_says, "auto")) == (
        "RAY_ADDRESS=auto but no Ray cluster runs on this machine: start one with `ray start --head`, give the head "
        "node's HOST:PORT, or unset RAY_ADDRESS and storyforge starts one for the render")
    assert explain(ValueError("something else"), "auto") is None  # not a cluster problem: raised as a bug
