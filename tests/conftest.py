"""Shared fixtures: story files written into a temporary folder, and the repository's paths."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "stories"
# A three-shot story on the tiny model (a chain and a crossfade) that renders in seconds on CPU.
TINY = """\
storyforge: 1
title: Tiny
render: {model: tiny, resolution: 64x64, fps: 12, steps: 2, base_frames: 17, overlap_frames: 5}
scenes:
  - id: s
    shots:
      - id: a
        prompt: a red fox
        duration: 17f
      - id: b
        prompt: the fox runs
        duration: 8f
        transition: continue
      - id: c
        prompt: the fox sleeps
        duration: 13f
        transition: {type: crossfade, duration: 3f}
"""

# Generated keyframes on the tiny models: two candidates for the first shot (its start picture), and a shot that
# continues it.
CANDIDATES = """\
storyforge: 1
title: Candidates
render: {model: tiny, resolution: 64x64, fps: 12, steps: 2, base_frames: 17, overlap_frames: 5}
keyframes: {model: tiny, steps: 2, guidance: 1.0, takes: 2}
characters:
  swan: {description: a white swan, reference: refs/swan.png}
scenes:
  - id: s
    shots:
      - id: a
        prompt: "{{ characters.swan }} glides"
        duration: 17f
      - id: b
        prompt: the swan dips
        duration: 8f
        transition: continue
"""


# Two threads only add noise on the 2-core CI machines; torch reads this when (and if) a test imports it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a model hub



HANG_SECONDS = 120  # far beyond any honest run on a busy 2-core machine: a guard against hangs, not a speed goal


@contextlib.contextmanager
def within(seconds: int = HANG_SECONDS) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the block runs longer than `seconds`: for inputs that could make
    work explode (a YAML bomb, a loop over a billion blocks). How fast things are lives in bench/, side by side."""
    def expired(*_: object) -> None:
        raise TimeoutError(f"took longer than {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def _one_thread():
    """torch.set_num_threads(1) for tests that use torch, without importing it for those that don't."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    yield


@pytest.fixture
def story_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding the example reference images under refs/, as the current directory."""
    shutil.copytree(EXAMPLES / "refs", tmp_path / "refs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def write_story(story_dir: Path):
    """Write a story file into the working folder and return its path."""

    def write(text: str, name: str = "film.yaml") -> Path:
        path = story_dir / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str | None] | None = None,
            stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`storyforge ARGS` run in this process, as a terminal would run it: its exit code, stdout and stderr.

    For tests of what the CLI says and does; spawn a real process only where the process is the point (exit
    codes from signals, what it imports, interpreter start-up). `env`: variables to set (None removes one)."""
    import contextlib
    import io

    from storyforge import cli, console

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        if cwd is not None:
            patch.chdir(cwd)
        for name, value in (env or {}).items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        patch.setattr(sys, "argv", ["storyforge", *args])
        patch.setattr(sys, "stdin", io.StringIO(stdin))
        for name in ("out", "err"):  # rich consoles are made on first use, for the streams of that moment
            patch.delitem(console.__dict__, name, raising=False)
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else 0 if done.code is None else 1
            finally:
                for name in ("out", "err"):
                    console.__dict__.pop(name, None)
    return subprocess.CompletedProcess(["storyforge", *args], code, out.getvalue(), err.getvalue())


def story_errors(path: Path) -> list[str]:
    """The problems `api.validate` refuses the story at `path` with (it must refuse), each as printed
    (`file:line: where: what`), within the hang guard."""
    from storyforge import api
    from storyforge.errors import StoryError

    with within(), pytest.raises(StoryError) as caught:
        api.validate(path)
    return [str(problem) for problem in caught.value.problems]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's temporary folder as the current directory (messages name files as given), nothing in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def story(*shots: str, title: str = "Test", render: str = "resolution: 128x96, fps: 16, base_frames: 17, "
          "overlap_frames: 5", extra: str = "") -> str:
    """A story file's text: `shots` are YAML flow mappings of one scene's shots, in order, e.g.
    `story("{id: a, prompt: a fox, duration: 17f}", "{id: b, prompt: it runs, duration: 8f, transition: continue}")`.
    `extra`: top-level lines (characters:, keyframes:, ...) placed before the scenes."""
    body = "".join(f"      - {shot}\n" for shot in shots)
    return (f"storyforge: 1\ntitle: {title}\nrender: {{{render}}}\n{extra}"
            f"scenes:\n  - id: s\n    shots:\n{body}")


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium driven by Playwright; skipped, saying why, where either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the browser test needs Playwright's Python package: pip install -e '.[browser]'")
    if not Path(CHROMIUM).exists():
        pytest.skip("the browser test needs Chromium: apt-get install -y chromium (no browser here)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--regen-golden", action="store_true",
                     help="rewrite tests/golden/*.plan.json from the current planner instead of comparing")


# What a test's markers say about its cost, against 1 for an unmarked test (a guess for ordering, not a measure).
COST = {"ray": 20, "slow": 20, "torch": 10}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The costliest modules first. Each module goes whole to one xdist worker (--dist loadscope), in this order
    (--no-loadscope-reorder): a Ray or torch module handed out last would keep one worker busy while the others
    idle, so the longest go first (the classic longest-first rule); tests keep their order within a module."""
    cost: dict[str, int] = {}
    for item in items:
        module = item.nodeid.partition("::")[0]
        cost[module] = cost.get(module, 0) + 1 + sum(c for name, c in COST.items() if item.get_closest_marker(name))
    items.sort(key=lambda item: -cost[item.nodeid.partition("::")[0]])  # stable: collection order otherwise
