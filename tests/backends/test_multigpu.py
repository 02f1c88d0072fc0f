"""Multi-GPU plumbing without GPUs: torchrun's variables, rank-0-only writes, the refusals word for word, and the
Ulysses split itself on CPU over gloo (two torchrun ranks compute exactly what one process does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, TINY

from storyforge import api
from storyforge.api import render
from storyforge.backends import multigpu
from storyforge.backends.multigpu import SequenceParallel
from storyforge.errors import MissingExtra, StoryforgeError
from storyforge.executors import ranks as rank_plumbing
from storyforge.executors.ranks import CPU_VARIABLE, Ranks, coupled, is_writer, ranks, share

TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", CPU_VARIABLE)

STORY = """\
storyforge: 1
title: Ranks
render: {resolution: 128x96, fps: 16, base_frames: 17, overlap_frames: 5}
scenes:
  - id: s
    shots:
      - id: a
        prompt: a red fox wakes up
        duration: 17f
      - id: b
        prompt: the fox stretches
        duration: 12f
        transition: continue
      - id: c
        prompt: the fox runs
        duration: 13f
        transition: {type: crossfade, duration: 4f}
"""


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts as a plain process, whatever launched pytest."""
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_ranks_read_torchrun_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ranks() == Ranks(1, 0, 0, 1) and not ranks().parallel and is_writer()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two machines of two GPUs
    assert ranks() == Ranks(4, 3, 1, 2) and ranks().parallel and not is_writer()
    assert ranks({"WORLD_SIZE": "2", "RANK": "1"}) == Ranks(2, 1, 1, 2)  # one machine: local = global
    monkeypatch.setenv("RANK", "0")
    assert is_writer()


@pytest.mark.parametrize(("environ", "message"), [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not a whole number; it is set by torchrun, so launch with "
                            "torchrun --nproc_per_node=N or unset it"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2, LOCAL_RANK=2 and WORLD_SIZE=2 do not fit together; they are set "
                                       "by torchrun, so launch with torchrun --nproc_per_node=N or unset them"),
])  # fmt: skip
def test_ranks_refuse_variables_that_do_not_fit(environ: dict[str, str], message: str) -> None:
    with pytest.raises(StoryforgeError) as caught:
        ranks(environ)
    assert str(caught.value) == message


def test_without_a_process_group_share_is_the_value_itself() -> None:
    assert not coupled()
    assert share({"cached": True}) == {"cached": True} and share(None) is None


def test_setup_refuses_without_xfuser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rank_plumbing.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtra) as caught:
        rank_plumbing.setup(Ranks(2, 0, 0, 2))
    assert str(caught.value) == (
        "splitting one generation across 2 GPUs (torchrun --nproc_per_node=2) needs the Python package 'xfuser', "
        "which is not installed. Install it with: pip install 'storyforge[multigpu]'")


@pytest.mark.parametrize(("gpus", "message"), [
    (0, "torchrun started 2 processes on this machine and the skyreels-df backend needs one CUDA GPU for each, "
        "but no CUDA GPU is visible; run without torchrun"),
    (1, "torchrun started 2 processes on this machine and the skyreels-df backend needs one CUDA GPU for each, "
        "but only 1 CUDA GPU is visible; run without torchrun"),
])  # fmt: skip
def test_setup_refuses_fewer_gpus_than_processes(monkeypatch: pytest.MonkeyPatch, gpus: int, message: str) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(rank_plumbing.importlib.util, "find_spec", lambda name: object())  # as if xfuser were there
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    with pytest.raises(StoryforgeError) as caught:
        rank_plumbing.setup(Ranks(2, 0, 0, 2))
    assert str(caught.value) == message


def test_setup_with_four_processes_and_two_gpus_says_how_many_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(rank_plumbing.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(StoryforgeError, match=r"but only 2 CUDA GPUs are visible; start at most 2 "
                                              r"\(torchrun --nproc_per_node=2\)$"):
        rank_plumbing.setup(Ranks(4, 0, 0, 4))


@pytest.mark.parametrize(("heads", "size", "message"), [
    (12, 5, "Ulysses sequence parallelism gives each GPU an equal share of the model's 12 attention heads, which 5 "
            "GPUs cannot split; use torchrun --nproc_per_node with one of: 2, 3, 4, 6, 12"),
    (12, 4, "s/a: at 976x544 a frame is 2074 tokens, which 4 GPUs cannot split evenly; choose a resolution whose "
            "(width/16)*(height/16) is a multiple of 4"),
])  # fmt: skip
def test_a_split_that_cannot_be_even_is_refused(heads: int, size: int, message: str) -> None:
    with pytest.raises(StoryforgeError) as caught:
        multigpu.check_size(SequenceParallel(size, 0, "cpu", None), heads, 976, 544, "s/a")
    assert str(caught.value) == message
    multigpu.check_size(SequenceParallel(4, 0, "cpu", None), 12, 960, 544, "s/a")  # 540p splits 2, 4 or 8 ways


def test_a_rank_other_than_0_renders_in_step_and_writes_nothing(write_story, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    story = write_story(STORY)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    report = render(api.plan(story), out=tmp_path / "out", backend="animatic", cache_root=tmp_path / "cache")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no cache, clips, film
    assert [(job.id, job.status) for job in report.jobs] == [("s/a", "rendered"), ("s/b", "rendered"),
                                                             ("s/c", "rendered")]
    assert report.film is None and report.notices == ["this is rank 1 of 2: rank 0 writes the clips, run.json and "
                                                      "the film"]
    report = render(api.plan(story), out=tmp_path / "out", backend="animatic", use_cache=False)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # --no-cache: no scratch either

    monkeypatch.setenv("RANK", "0")  # rank 0 of the same launch writes everything
    report = render(api.plan(story), out=tmp_path / "out", backend="animatic", cache_root=tmp_path / "cache")
    assert report.film == tmp_path / "out" / "film.mp4" and report.film.exists()
    assert len(list((tmp_path / "cache").glob("??/*/meta.json"))) == 3


def test_a_rank_other_than_0_renders_every_take_of_the_graph(write_story, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A follower that cannot hear rank 0 (the animatic forms no process group) walks the same graph: every take
    of every shot, each continuation from the picked take it continues."""
    story = write_story(STORY.replace("render: {", "render: {takes: 2, ", 1))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    report = render(api.plan(story), out=tmp_path / "out", backend="animatic", cache_root=tmp_path / "cache")
    assert [(job.id, job.take, job.status) for job in report.jobs] == [
        (shot, take, "rendered") for shot in ("s/a", "s/b", "s/c") for take in (1, 2)]
    assert {job.rendered_by.pid for job in report.jobs if job.rendered_by} == {os.getpid()}
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_the_cli_of_a_rank_other_than_0_prints_nothing(write_story) -> None:
    story = write_story(STORY)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}
    done = subprocess.run([sys.executable, "-m", "storyforge", "render", str(story), "--backend", "animatic"],
                          capture_output=True, text=True, cwd=story.parent, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    assert not (story.parent / "renders").exists() and not (story.parent / ".storyforge").exists()


def test_the_skyreels_backend_under_torchrun_without_xfuser_says_what_to_install(write_story) -> None:
    pytest.importorskip("diffusers")
    story = write_story(STORY.replace("render: {", "render: {model: tiny, steps: 1, "))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
    if subprocess.run([sys.executable, "-c", "import xfuser"], capture_output=True).returncode == 0:
        pytest.skip("xfuser is installed here")
    done = subprocess.run([sys.executable, "-m", "storyforge", "render", str(story), "--backend", "skyreels-df"],
                          capture_output=True, text=True, cwd=story.parent, env=env, timeout=300)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: splitting one generation across 2 GPUs (torchrun --nproc_per_node=2) needs the Python package "
        "'xfuser', which is not installed. Install it with: pip install 'storyforge[multigpu]'")


# -- the split itself, on CPU over gloo ----------------------------------------------------------------------
ULYSSES = textwrap.dedent("""\
    import sys
    import torch
    import torch.distributed as dist
    from storyforge.backends import multigpu
    from storyforge.backends.tiny import build_tiny_pipeline

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    reference, split = build_tiny_pipeline().transformer, build_tiny_pipeline().transformer  # same seeds
    multigpu.shard_transformer(split, multigpu.SequenceParallel(2, dist.get_rank(), "cpu", dist.group.WORLD))
    tokens = []
    split.blocks[1].register_forward_pre_hook(lambda block, args: tokens.append(args[0].shape[1]))
    torch.manual_seed(1)
    latents, prompt = torch.randn(1, 16, 4, 8, 8), torch.randn(1, 512, 32)
    for block_size in (1, 2):  # 2: asynchronous mode's causal block mask
        for model in (reference, split):
            model.register_to_config(num_frame_per_block=block_size)
        with torch.no_grad():
            want = reference(latents, torch.tensor([[999, 700, 400, 100]]), prompt, enable_diffusion_forcing=True,
                             fps=[0], return_dict=False)[0]
            got = split(latents, torch.tensor([[999, 700, 400, 100]]), prompt, enable_diffusion_forcing=True,
                        fps=[0], return_dict=False)[0]
        sys.stdout.write(f"rank {dist.get_rank()} block {block_size}: tokens {tokens[-1]} of 64, "
                         f"max difference {(want - got).abs().max().item():.2e}\\n")  # one write: lines stay whole
        sys.stdout.flush()
    dist.barrier()  # neither rank tears gloo down while the other still talks (an abort at exit, now and then)
    dist.destroy_process_group()
""")


def torchrun(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.mark.torch
def test_the_ulysses_split_computes_what_one_process_does(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    script = tmp_path / "ulysses.py"
    script.write_text(ULYSSES)
    done = torchrun(str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = sorted(line for line in done.stdout.splitlines() if line.startswith("rank "))
    assert [line.split(", max")[0] for line in lines] == [
        "rank 0 block 1: tokens 32 of 64", "rank 0 block 2: tokens 32 of 64",
        "rank 1 block 1: tokens 32 of 64", "rank 1 block 2: tokens 32 of 64"]
    assert all(float(line.rsplit(" ", 1)[1]) < 1e-5 for line in lines), lines


@pytest.mark.torch
@pytest.mark.slow
def test_torchrun_renders_the_tiny_model_on_two_ranks_and_rank_0_writes(write_story, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("diffusers")
    from storyforge.backends.tiny import tiny_model_folder
    from storyforge.clipfile import read_frames

    home = tmp_path / "home"
    monkeypatch.setenv("STORYFORGE_HOME", str(home))
    tiny_model_folder()  # built once here: the ranks only load it
    env = {CPU_VARIABLE: "1"}
    story = write_story(TINY)
    done = torchrun("-m", "storyforge", "render", str(story), "--backend", "skyreels-df", "--out", "two",
                    cwd=story.parent, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("✓") == 1  # rank 1 prints nothing
    run = json.loads((story.parent / "two" / "run.json").read_text())
    assert [(job["id"], job["status"]) for job in run["jobs"]] == [("s/a", "rendered"), ("s/b", "rendered"),
                                                                   ("s/c", "rendered")]
    meta = [json.loads(p.read_text()) for p in (story.parent / ".storyforge" / "cache").glob("??/*/meta.json")]
    assert len(meta) == 3 and {m["backend"]["ulysses"] for m in meta} == {2}

    # the same film in one process: the split adds up to the same pixels
    render(api.plan(story), out=tmp_path / "one", backend="skyreels-df", cache_root=tmp_path / "cache")
    for name in ("film.mp4", "clips/s__b.mp4"):
        one, two = read_frames(tmp_path / "one" / name), read_frames(story.parent / "two" / name)
        assert abs(one.astype(int) - two.astype(int)).mean() < 0.5, name

    # an edit of the continued shot: both ranks take rank 0's cache hits and its decoded pixels of s/a
    story.write_text(TINY.replace("the fox runs", "the fox runs fast"))
    done = torchrun("-m", "storyforge", "render", str(story), "--backend", "skyreels-df", "--out", "two",
                    cwd=story.parent, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = json.loads((story.parent / "two" / "run.json").read_text())
    assert [(job["id"], job["status"]) for job in run["jobs"]] == [("s/a", "cached"), ("s/b", "rendered"),
                                                                   ("s/c", "cached")]


def test_ray_and_torchrun_do_not_combine(write_story, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        with pytest.raises(StoryforgeError) as caught:
            render(api.plan(write_story(STORY)), out=tmp_path / "out", backend="animatic", executor="ray")
        assert str(caught.value) == (
            "the ray executor does not run under torchrun (a Ray task gets one GPU); use --executor ray for chains "
            "on many GPUs, or torchrun for one generation on several")
