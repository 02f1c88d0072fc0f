"""A backend's cache keys worked out without loading it: the same as the loaded backend's, and a render whose
every job is cached imports no torch, diffusers or transformers and loads no model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storyforge import api
from storyforge.backends import skyreels_key
from storyforge.backends.base import keyed
from storyforge.render import render

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import TINY  # noqa: E402

# Render the story again in a fresh process; say what it rendered and which heavy modules it imported.
AGAIN = """
import json, sys
from pathlib import Path
from storyforge import api
from storyforge.render import render
story, out, cache, backend = sys.argv[1:]
report = render(api.plan(Path(story)), out=Path(out), backend=backend, cache_root=Path(cache))
print(json.dumps({"rendered": report.rendered, "cached": report.cached, "model_loads": report.model_loads,
                  "heavy": sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules)}))
"""


def again(story: Path, out: Path, cache: Path, backend: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", AGAIN, str(story), str(out), str(cache), backend],
                          capture_output=True, text=True, cwd=story.parent, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.torch
def test_a_fully_cached_tiny_render_imports_no_torch_and_loads_no_model(write_story, tmp_path: Path) -> None:
    story = write_story(TINY)
    plan = api.plan(story)
    out, cache = tmp_path / "out", tmp_path / "cache"
    first = render(plan, out=out, backend="skyreels-df", cache_root=cache)
    assert first.rendered == 3 and first.model_loads == 1
    assert again(story, out, cache, "skyreels-df") == {"rendered": 0, "cached": 3, "model_loads": 0, "heavy": []}

    from storyforge.backends.skyreels_df import SkyReelsDF

    for options in ({}, {"dtype": "bf16"}, {"device": "cpu", "dtype": "float32"}, {"device": "cpu:0"}):
        loaded, light = SkyReelsDF(**options), keyed("skyreels-df", options)
        try:
            assert light is not None and light.notices == tuple(loaded.notices)
            assert [light.identity(job) for job in plan.jobs] == [loaded.identity(job) for job in plan.jobs]
        finally:
            loaded.close()


def test_a_fully_cached_animatic_render_imports_no_torch(write_story, tmp_path: Path) -> None:
    story = write_story(TINY)
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert render(api.plan(story), out=out, backend="animatic", cache_root=cache).rendered == 3
    assert again(story, out, cache, "animatic") == {"rendered": 0, "cached": 3, "model_loads": 0, "heavy": []}


@pytest.mark.parametrize("options", [
    {"parallel": True},  # a torchrun launch: only the loaded backend knows its group
    {"dtype": "int8"},  # refused when loading, with the message that says so
    {"device": "cuda:x"},  # a device string only torch reads
    {"offload": True},  # an option the backend does not take
])
def test_keys_only_the_loaded_backend_can_tell_are_left_to_it(options: dict[str, object]) -> None:
    assert keyed("skyreels-df", options) is None


def test_device_types_are_read_from_the_names_torch_gives_them() -> None:
    assert [skyreels_key.device_type(d) for d in ("cpu", "cuda", "cuda:1", "mps", "cuda:", "vulkan", "cuda:1:2")] \
        == ["cpu", "cuda", "cuda", "mps", None, None, None]
    assert keyed("no-such-backend", {}) is None
