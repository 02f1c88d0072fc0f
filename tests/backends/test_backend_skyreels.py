"""The skyreels-df backend through diffusers' real DF pipelines, on the offline tiny model (CPU, 64x64)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
np = pytest.importorskip("numpy")

from storyforge.backends.base import RenderInputs  # noqa: E402
from storyforge.cache import entry_key  # noqa: E402
from storyforge.errors import RenderError  # noqa: E402
from storyforge.plan.compiler import compile_plan  # noqa: E402
from storyforge.plan.model import Job  # noqa: E402
from storyforge.story.load import load  # noqa: E402
from storyforge.story.resolve import ResolvedFilm, resolve  # noqa: E402
from storyforge.story.texts import ShotText  # noqa: E402

pytestmark = pytest.mark.torch

SIZE = 64
RENDER = {"model": "tiny", "resolution": f"{SIZE}x{SIZE}", "steps": 2, "base_frames": 17, "overlap_frames": 5}
ASYNC = {"base_frames": 37, "overlap_frames": 17, "ar_step": 2, "causal_block_size": 5}  # 10-latent windows


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private STORYFORGE_HOME for the module, so the tiny model is built once, here."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("storyforge-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORYFORGE_HOME", str(root))
        yield root


@pytest.fixture(scope="module")
def backend(home: Path):
    from storyforge.backends.base import load_backend

    instance = load_backend("skyreels-df")
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def stories(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for story files, with a start and an end image of another aspect ratio than the frames."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("stories")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)).save(folder / "start.png")
    Image.fromarray(rng.integers(0, 256, (96, 48, 3), dtype=np.uint8)).save(folder / "end.png")
    return folder


def literal_texts(film: ResolvedFilm) -> dict[str, ShotText]:
    """Prompts as written: these tests exercise the backend, not the template engine."""
    return {s.id: ShotText(prompt=s.shot.prompt, camera=s.shot.camera) for s in film.shots}


def plan_jobs(folder: Path, name: str, shots: list[dict[str, Any]], **render: Any) -> tuple[Job, ...]:
    """The jobs the planner compiles from a one-scene story with these shots and render settings."""
    import yaml

    story = {"storyforge": 1, "title": name, "render": {**RENDER, **render},
             "scenes": [{"id": "s", "shots": shots}]}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(story, sort_keys=False), encoding="utf-8")
    return compile_plan(resolve(load(path)), literal_texts).jobs


def shot(shot_id: str, frames: int, **extra: Any) -> dict[str, Any]:
    return {"id": shot_id, "prompt": f"a red fox, shot {shot_id}", "duration": f"{frames}f", **extra}


def render(backend, job: Job, previous: Any = None, on_step=None) -> Any:
    return backend.render(job, RenderInputs(previous_frames=previous, on_step=on_step))


def check_clip(clip: Any, job: Job) -> None:
    assert clip.dtype == np.uint8
    assert clip.shape == (job.frames, SIZE, SIZE, 3)  # the decoded count is exactly the plan's


@pytest.fixture(scope="module")
def t2v(backend, stories: Path) -> tuple[Job, Any]:
    (job,) = plan_jobs(stories, "short", [shot("one", 17)])
    return job, render(backend, job)


# -- every job kind renders to exactly the planned frames ----------------------------------------------------
def test_t2v_short_is_planned_length_and_deterministic(backend, t2v) -> None:
    job, clip = t2v
    assert job.kind == "t2v" and len(job.segments) == 1
    check_clip(clip, job)
    assert np.array_equal(render(backend, job), clip)
    other = render(backend, dataclasses.replace(job, seed=job.seed + 1))
    check_clip(other, job)
    assert not np.array_equal(other, clip)


def test_t2v_long_several_windows(backend, stories: Path, caplog: pytest.LogCaptureFixture) -> None:
    (job,) = plan_jobs(stories, "long", [shot("long", 41)])
    assert [w.latent_frames for w in job.segments] == [5, 5, 5]
    steps: list[tuple[int, int]] = []
    with caplog.at_level(logging.WARNING, logger="storyforge.backends.skyreels_df"):
        clip = render(backend, job, on_step=lambda step, total: steps.append((step, total)))
    check_clip(clip, job)
    assert not caplog.records  # the pipeline ran exactly the plan's denoising rows
    assert steps == [(i, job.rows) for i in range(1, job.rows + 1)]


def test_async_and_sticky_causal_block_size_is_reset(backend, stories: Path, home: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    (job,) = plan_jobs(stories, "async", [shot("a", 57)], **ASYNC)
    assert [(w.latent_frames, w.prefix_latents) for w in job.segments] == [(10, 0), (10, 5)]  # no truncation
    with caplog.at_level(logging.WARNING, logger="storyforge.backends.skyreels_df"):
        check_clip(render(backend, job), job)
    # only our own logger: whether diffusers' records reach the root logger depends on its propagation setting
    assert not [r for r in caplog.records if r.name.startswith("storyforge")]
    # two blocks of 5 latents: block-causal attention would change this window if c = 5 stuck
    (sync,) = plan_jobs(stories, "sync", [shot("a", 37)], base_frames=37, overlap_frames=21)
    after_async = render(backend, sync)  # the transformer's config still says 5 unless we pass 1
    from storyforge.backends.skyreels_df import SkyReelsDF

    fresh = SkyReelsDF()
    try:
        assert np.array_equal(after_async, render(fresh, sync))
    finally:
        fresh.close()


def test_i2v_start_image(backend, stories: Path) -> None:
    (job,) = plan_jobs(stories, "i2v", [shot("i", 17, image="start.png")])
    assert job.kind == "i2v"
    check_clip(render(backend, job), job)


def test_i2v_long_start_image(backend, stories: Path) -> None:
    (job,) = plan_jobs(stories, "i2v-long", [shot("i", 29, image="start.png")])
    assert len(job.segments) == 2
    check_clip(render(backend, job), job)


@pytest.mark.parametrize("frames, end", [(21, False), (33, False), (21, True), (29, True)])
def test_long_image_shots_of_any_length(backend, stories: Path, frames: int, end: bool) -> None:
    # base 17 / overlap 5: windows of 5 latents stepping by 3, so 21f ([5, 4]) and 33f ([5, 5, 3]) end on a short
    # window, which diffusers' long I2V cannot render; the first window is I2V, the rest a V2V extension
    # with an end image, ar_step 1 makes its latent a block the schedule must step through: counted rows prove it
    extra = {"end_image": "end.png", "render": {"ar_step": 1}} if end else {}
    (job,) = plan_jobs(stories, f"i2v-any-{frames}-{end}", [shot("i", frames, image="start.png", **extra)])
    assert job.kind == "i2v" and len(job.segments) > 1
    if end:  # the last window generates its new latents plus the end latent: one row per block at ar_step 1
        last = job.segments[-1]
        assert last.rows == 2 + (last.latent_frames - last.prefix_latents + 1 - 1)
    steps: list[int] = []
    clip = render(backend, job, on_step=lambda step, total: steps.append(step))
    check_clip(clip, job)  # frame-exact: exactly the planned count
    assert steps[-1] == job.rows and len(steps) == job.rows  # the two calls ran exactly the plan's rows
    assert np.array_equal(render(backend, job), clip)
    (short,) = plan_jobs(stories, f"i2v-first-{frames}-{end}",
                         [shot("i", 17, image="start.png", **({"render": {"ar_step": 1}} if end else {}))])
    assert np.array_equal(clip[:17], render(backend, short))  # the first window is the plain I2V call



def test_continue_towards_an_end_image(backend, stories: Path, t2v) -> None:
    head, clip = t2v
    end = {"end_image": "end.png", "render": {"ar_step": 1}}
    job = plan_jobs(stories, "extend-end", [shot("one", 17), shot("two", 12, transition="continue", **end)])[1]
    plain = plan_jobs(stories, "extend-plain", [shot("one", 17), shot("two", 12, transition="continue",
                                                                       render={"ar_step": 1})])[1]
    assert job.kind == "extend" and job.end_image is not None and job.num_frames == 17
    assert job.rows == plain.rows + 1  # at ar_step 1 the end latent is one more block to step through
    previous = clip[-job.settings.overlap_frames:]
    steps: list[int] = []
    new = render(backend, job, previous, on_step=lambda step, total: steps.append(step))
    check_clip(new, job)  # the decoded end latent's frames are not in the clip
    assert len(steps) == job.rows  # the pipeline stepped through the end latent exactly as planned
    assert np.array_equal(render(backend, job, previous), new)


def test_block_causal_attention_only_when_asked(backend, stories: Path) -> None:
    (job,) = plan_jobs(stories, "attention", [shot("a", 57)], **ASYNC)
    pipe = backend.pipeline(job.settings.model, "t2v")
    masks: list[Any] = []
    hook = pipe.transformer.blocks[0].register_forward_pre_hook(lambda _module, args: masks.append(args[4]))
    try:
        full = render(backend, job)
        assert masks and all(mask is None for mask in masks)  # the reference's default: full attention
        masks.clear()
        causal_job = dataclasses.replace(job, settings=dataclasses.replace(job.settings, causal_attention=True))
        causal = render(backend, causal_job)
    finally:
        hook.remove()
    tokens = 10 * (SIZE // 16) ** 2
    assert masks and all(tuple(mask.shape[-2:]) == (tokens, tokens) for mask in masks)
    assert causal_job.attention_mask_bytes == tokens * tokens and job.attention_mask_bytes == 0
    check_clip(causal, job)
    assert not np.array_equal(full, causal)
    assert pipe.transformer.config.num_frame_per_block == 1  # never left sticky


def test_seams_are_where_the_pipeline_puts_them(backend) -> None:
    # overlap 21 (6 latents) with causal_block_size 5: the pipeline keeps 5 as the prefix, regenerates the sixth
    # and appends each window from latent 6 on; the planner refuses this overlap, the arithmetic must still hold
    from storyforge.plan import frames as fx

    pipe = backend.pipeline("tiny", "t2v")
    num_frames, base, overlap = fx.pixel_frames(18), 37, 21
    finals: list[Any] = []

    def keep(_pipe: Any, _step: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        finals.append(tensors["latents"].clone())
        return {}

    try:
        out = pipe(prompt="a fox", height=SIZE, width=SIZE, num_frames=num_frames, num_inference_steps=2,
                   guidance_scale=1.0, output_type="latent", overlap_history=overlap, base_num_frames=base,
                   ar_step=2, causal_block_size=5, generator=torch.Generator().manual_seed(0),
                   callback_on_step_end=keep, callback_on_step_end_tensor_inputs=["latents"]).frames
    finally:
        pipe.transformer.register_to_config(num_frame_per_block=1)
    rows = [w.rows for w in fx.generation(num_frames, fx.Geometry(base, overlap, 5, 2, 2)).windows]
    assert len(finals) == sum(rows)
    windows = [finals[sum(rows[:k + 1]) - 1] for k in range(len(rows))]  # each window's latents at its last row
    starts = fx.window_start_frames(num_frames, base, overlap)
    assert starts == [0, 37, 53]
    o = fx.latents(overlap)
    assert len(windows) == 3
    for index, start in enumerate(starts[1:], start=1):
        first_latent = (start + 3) // 4  # latent n > 0 decodes to frames 4n - 3 .. 4n
        added = windows[index][:, :, o:]
        assert torch.equal(out[:, :, first_latent:first_latent + added.shape[2]], added)


def test_an_exception_in_a_pipeline_is_a_render_error_naming_the_shot(backend, stories: Path) -> None:
    (job,) = plan_jobs(stories, "one-frame", [shot("i", 5, image="start.png")])
    broken = dataclasses.replace(job, frames=1, num_frames=1)  # what the planner now refuses: nothing to generate
    with pytest.raises(RenderError) as caught:
        render(backend, broken)
    assert str(caught.value).startswith("s/i: the skyreels-df backend failed: RuntimeError: ")
    assert str(caught.value).endswith(f"(at {job.source}); if the story is valid, please report it with the plan "
                                      f"(storyforge plan --json)")


def test_dtype_keyword_and_verified_versions() -> None:
    import re

    import diffusers

    from storyforge.backends.skyreels_df import VERIFIED_DIFFUSERS, diffusers_notice, dtype_keyword

    assert (dtype_keyword("0.39.0"), dtype_keyword("0.40.0"), dtype_keyword("0.42.1")) == (
        "torch_dtype", "dtype", "dtype")
    assert diffusers_notice(diffusers.__version__) is None  # the tests run on a verified version
    assert diffusers_notice("0.39.0") == (
        "diffusers 0.39.0 is installed, but storyforge's plans were verified against diffusers >=0.42,<0.43: frame "
        "counts and seams may differ from the plan; install a verified one with `pip install 'diffusers>=0.42,<0.43'` "
        "(or the repository's constraints.txt)")
    floors = re.findall(r'"diffusers>=([\d.]+)"', (Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert floors and all(tuple(int(x) for x in f.split(".")[:2]) == VERIFIED_DIFFUSERS[0] for f in floors)


def test_i2v_start_and_end_image(backend, stories: Path) -> None:
    (job,) = plan_jobs(stories, "i2v-end", [shot("i", 13, image="start.png", end_image="end.png")])
    assert job.end_image is not None
    clip = render(backend, job)
    check_clip(clip, job)
    assert np.array_equal(render(backend, job), clip)


def test_extend_continues_the_previous_frames(backend, stories: Path, t2v) -> None:
    head, clip = t2v
    jobs = plan_jobs(stories, "extend", [shot("one", 17), shot("two", 8, transition="continue")])
    assert jobs[0].key == head.key
    job = jobs[1]
    assert job.kind == "extend" and job.num_frames == 13 and job.frames == 8
    previous = clip[-job.settings.overlap_frames:]
    new = render(backend, job, previous)
    check_clip(new, job)
    assert np.array_equal(render(backend, job, previous), new)
    assert not np.array_equal(render(backend, job, previous[::-1].copy()), new)  # it depends on the input
    with pytest.raises(RenderError, match="needs its last 5 frames"):
        render(backend, job, None)


# -- contract details ----------------------------------------------------------------------------------
def test_progress_ends_at_the_plans_rows(backend, stories: Path) -> None:
    (job,) = plan_jobs(stories, "progress", [shot("a", 57)], **ASYNC)
    steps: list[tuple[int, int]] = []
    render(backend, job, on_step=lambda step, total: steps.append((step, total)))
    assert steps[-1] == (job.rows, job.rows)
    assert [s for s, _ in steps] == sorted({s for s, _ in steps})


def test_frame_count_mismatch_is_a_render_error(backend, t2v) -> None:
    job, _ = t2v
    with pytest.raises(RenderError, match="plan needs 13"):
        render(backend, dataclasses.replace(job, frames=13))


def test_out_of_memory_gives_advice(backend, t2v, monkeypatch: pytest.MonkeyPatch) -> None:
    job, _ = t2v
    pipe = backend.pipeline(job.settings.model, "t2v")

    def oom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(type(pipe), "__call__", oom)
    with pytest.raises(RenderError, match="out of memory.*lower resolution"):
        render(backend, job)


def test_magcache_on_equal_windows_only(backend, stories: Path) -> None:
    # MagCache never skips the first 20 % of steps nor a step whose ratio is far from 1 (the last): use 8
    (equal,) = plan_jobs(stories, "cache", [shot("a", 29)], steps=8)
    assert [w.latent_frames for w in equal.segments] == [5, 5]
    plain = render(backend, equal)
    cached_job = dataclasses.replace(equal, settings=dataclasses.replace(equal.settings, cache="magcache"))
    cached = render(backend, cached_job)
    check_clip(cached, equal)
    assert not np.array_equal(cached, plain)  # the cache skipped work
    assert np.array_equal(render(backend, equal), plain)  # and was switched off after the job
    first_block = dataclasses.replace(equal, settings=dataclasses.replace(equal.settings, cache="firstblock"))
    check_clip(render(backend, first_block), equal)

    (unequal,) = plan_jobs(stories, "cache-unequal", [shot("a", 21)])  # the plan refuses it with cache set
    assert [w.latent_frames for w in unequal.segments] == [5, 3]
    unequal = dataclasses.replace(unequal, settings=dataclasses.replace(unequal.settings, cache="magcache"))
    with pytest.raises(RenderError, match="windows of one size"):  # the backend still refuses a job made by hand
        render(backend, unequal)
    assert np.array_equal(render(backend, equal), plain)


# -- models: the tiny folder, identity, missing models ------------------------------------------------
def test_tiny_folder_builds_once_and_loads(home: Path, tmp_path: Path) -> None:
    from diffusers import SkyReelsV2DiffusionForcingPipeline

    from storyforge.backends.skyreels_df import SkyReelsDF
    from storyforge.backends.tiny import TINY_RECIPE, tiny_model_folder

    folder = tiny_model_folder()
    assert folder == home / "models" / TINY_RECIPE and (folder / "model_index.json").is_file()
    stamp = (folder / "model_index.json").stat().st_mtime_ns
    assert tiny_model_folder() == folder and (folder / "model_index.json").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
    pipe = SkyReelsV2DiffusionForcingPipeline.from_pretrained(folder)
    assert pipe.transformer.config.rope_max_seq_len == 1024 and pipe.transformer.config.inject_sample_info
    other = tiny_model_folder(tmp_path)  # built again elsewhere: byte-identical, so the same hash
    hasher = SkyReelsDF()
    assert hasher.folder_hash(other) == hasher.folder_hash(folder)


def test_identity_follows_the_model_files(backend, t2v, tmp_path: Path) -> None:
    import shutil

    import diffusers

    job, _ = t2v
    tiny = backend.identity(job)
    assert tiny["backend"] == "skyreels-df" and tiny["model"]["tiny"] == "tiny-df-v1"
    assert tiny["dtype"] == "float32" and tiny["device"] == "cpu" and tiny["diffusers"] == diffusers.__version__
    assert backend.identity(job) == tiny

    from storyforge.backends.tiny import tiny_model_folder

    folder = tmp_path / "my-model"
    shutil.copytree(tiny_model_folder(), folder)
    local = dataclasses.replace(job, settings=dataclasses.replace(job.settings, model=str(folder)))
    before = backend.identity(local)
    assert before["model"]["folder_sha256"] == tiny["model"]["sha256"]
    config = folder / "scheduler" / "scheduler_config.json"
    config.write_text(config.read_text().replace("\n", "\n ", 1))
    assert backend.identity(local) != before


def test_a_hub_model_is_keyed_by_the_snapshot_the_local_cache_holds(backend, t2v, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit behind `main` in the Hugging Face cache, found offline: new weights behind the same hub id are
    a new identity (their clips render again); a model the cache lacks is the error that says what to do."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    job, _ = t2v
    hub = dataclasses.replace(job, settings=dataclasses.replace(job.settings, model="df-14b-720p"))
    repo = tmp_path / "hub" / "models--Skywork--SkyReels-V2-DF-14B-720P-Diffusers"

    def snapshot(commit: str) -> None:
        (repo / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
        (repo / "snapshots" / commit / "model_index.json").write_text("{}")
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(commit)

    from storyforge.backends.skyreels_df import SkyReelsDF

    with pytest.raises(RenderError) as missing:
        SkyReelsDF(device="cpu").identity(hub)
    assert str(missing.value) == (
        f"{job.source}: render.model: the model Skywork/SkyReels-V2-DF-14B-720P-Diffusers is not on this machine, "
        "and storyforge does not download it in the middle of a render. Download it once with `hf download "
        "Skywork/SkyReels-V2-DF-14B-720P-Diffusers`, or set render.model to a local folder that holds it")
    snapshot("a" * 40)
    first = SkyReelsDF(device="cpu").identity(hub)
    assert first["model"] == {"hub_id": "Skywork/SkyReels-V2-DF-14B-720P-Diffusers", "revision": "a" * 40}
    snapshot("b" * 40)  # `hf download` fetched new weights behind the same id
    second = SkyReelsDF(device="cpu").identity(hub)
    assert second["model"]["revision"] == "b" * 40 and entry_key(second, hub.key) != entry_key(first, hub.key)


@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument:UserWarning")
def test_missing_models_are_render_errors(backend, t2v, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    job, _ = t2v

    def with_model(model: str) -> Job:
        return dataclasses.replace(job, settings=dataclasses.replace(job.settings, model=model))

    with pytest.raises(RenderError, match="could not be loaded from the Hugging Face cache"):
        render(backend, with_model("storyforge-tests/no-such-model"))
    with pytest.raises(RenderError, match="does not exist"):
        render(backend, with_model(str(tmp_path / "missing" / "folder")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RenderError, match="could not be loaded"):
        render(backend, with_model(str(tmp_path / "empty")))


# -- the sweep: every length the planner accepts renders to exactly its planned frames ----------------------
def _sweep_cases() -> list[tuple[str, int, bool]]:
    cases = [("i2v", n, end) for n in range(5, 46, 4) for end in (False, True)]
    cases += [("extend", n, end) for n in range(4, 41, 8) for end in (False, True)]
    return cases + [("async", n, False) for n in range(17, 98, 20)]  # base 37 / overlap 17 / blocks of 5


@pytest.mark.parametrize("kind, frames, end", _sweep_cases(), ids=lambda v: str(v))
def test_render_sweep_is_frame_exact(backend, stories: Path, t2v, kind: str, frames: int, end: bool) -> None:
    # base 17 / overlap 5 (windows of 5 latents, 3 new each): up to four windows, short last windows included
    head, clip = t2v
    name = f"sweep-{kind}-{frames}-{end}"
    extra: dict[str, Any] = {"end_image": "end.png"} if end else {}
    if kind == "i2v":
        (job,) = plan_jobs(stories, name, [shot("i", frames, image="start.png", **extra)], steps=1)
        previous = None
    elif kind == "extend":
        job = plan_jobs(stories, name, [shot("one", 17), shot("two", frames, transition="continue", **extra)],
                        steps=1)[1]
        previous = clip[-job.settings.overlap_frames:]
    else:
        (job,) = plan_jobs(stories, name, [shot("a", frames)], steps=1, **ASYNC)
        previous = None
    steps: list[int] = []
    check_clip(render(backend, job, previous, on_step=lambda step, total: steps.append(step)), job)
    assert len(steps) == job.rows  # and ran the plan's denoising rows


def test_an_unverified_diffusers_renders_with_a_notice(home: Path, write_story, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # diffusers 0.42 still takes the old `torch_dtype=` spelling, so this loads through the pre-0.40 branch for real
    import diffusers

    from storyforge import api

    monkeypatch.setattr(diffusers, "__version__", "0.39.0")
    path = write_story("storyforge: 1\ntitle: Old\nrender: {model: tiny, resolution: 64x64, steps: 1, "
                       "base_frames: 17, overlap_frames: 5}\nscenes:\n  - id: s\n    shots:\n"
                       "      - {id: a, prompt: a fox, duration: 9f}\n")
    with pytest.warns(FutureWarning, match="`torch_dtype` is deprecated"):  # the spelling diffusers < 0.40 needs
        report = api.render(api.plan(path), out=tmp_path / "out", backend="skyreels-df",
                            cache_root=tmp_path / "cache")
    assert report.rendered == 1
    assert report.notices == [
        "diffusers 0.39.0 is installed, but storyforge's plans were verified against diffusers >=0.42,<0.43: frame "
        "counts and seams may differ from the plan; install a verified one with `pip install 'diffusers>=0.42,<0.43'` "
        "(or the repository's constraints.txt)"]


# -- streaming: latents decoded a latent frame at a time, the pixels the pipelines' own decode makes ----------
def _stream_cases() -> list[tuple[str, int, bool]]:
    return [("t2v", 17, False), ("t2v", 29, False), ("i2v", 33, False), ("i2v", 29, True), ("extend", 12, False),
            ("extend", 12, True)]


@pytest.mark.parametrize("kind, frames, end", _stream_cases(), ids=lambda v: str(v))
def test_frames_stream_the_pipelines_own_pixels(backend, stories: Path, t2v, monkeypatch: pytest.MonkeyPatch,
                                                kind: str, frames: int, end: bool) -> None:
    from storyforge.backends import wan_latents

    head, clip = t2v
    extra: dict[str, Any] = {"end_image": "end.png"} if end else {}
    previous = None
    if kind == "extend":
        job = plan_jobs(stories, f"stream-{kind}-{end}", [shot("one", 17), shot("two", frames, transition="continue",
                                                                                 **extra)])[1]
        previous = clip[-job.settings.overlap_frames:]
    else:
        image = {"image": "start.png"} if kind == "i2v" else {}
        (job,) = plan_jobs(stories, f"stream-{kind}-{frames}-{end}", [shot("a", frames, **image, **extra)])
    chunks = list(backend.frames(job, RenderInputs(previous_frames=previous)))
    assert max(len(chunk) for chunk in chunks) <= 4  # one latent frame's pixels at a time, never the whole shot
    streamed = np.concatenate(chunks)
    check_clip(streamed, job)
    monkeypatch.setattr(wan_latents, "supported", lambda vae: False)  # the VAE's own decode of the whole clip
    assert np.array_equal(render(backend, job, previous), streamed)
