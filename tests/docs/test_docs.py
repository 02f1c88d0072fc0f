"""The documentation runs: every YAML and shell snippet in docs/ and the README, page by page, as a reader would.

How a snippet is treated (the same rules the pages follow; see docs/hooks/generate.py for the generated pages):
- a block with `title="PATH"` is a file the reader writes: it is written to PATH in the page's folder (a story
  file there must validate);
- a YAML story (`storyforge:` at the top) validates and plans; a fragment of one is merged onto a small story and
  validated; a pre-commit config names hooks this repository has; a GitHub Actions step is one of
  examples/ci/storyforge.yml's;
- a `bash` block runs with `bash -e` in the page's folder, blocks of a page in order, so the page's steps build on
  each other. What can only run on another machine is checked instead of run: `pip install` names extras that
  exist, a command in a block titled "on …" (a cluster's machines) parses with the current CLI, `ssh -L`
  forwards a port to loopback, and a line marked `# runs until Ctrl-C` is started, must print its URL, and is
  stopped.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib
import yaml

from storyforge import api

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\s*$", re.S | re.M)
BASE_STORY = {"storyforge": 1, "title": "Snippet", "render": {"model": "df-1.3b-540p", "fps": 24},
              "scenes": [{"id": "s", "shots": [{"id": "a", "prompt": "a red fox", "duration": "2s"}]}]}
LONG_RUNNING = "# runs until Ctrl-C"


@dataclass(frozen=True)
class Snippet:
    page: Path
    line: int
    language: str
    title: str | None
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def snippets(page: Path) -> list[Snippet]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        title = re.search(r'title="([^"]+)"', match.group(2))
        found.append(Snippet(page, text.count("\n", 0, match.start()) + 1, match.group(1),
                             title.group(1) if title else None, match.group(3)))
    return found


def _extras() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def _env(folder: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "HOME": str(folder / ".home"),
            "DISPLAY": "", "WAYLAND_DISPLAY": ""}  # no browser opens from a test


def check_pip(command: str, where: str) -> None:
    """A `pip install` line: its extras exist and it installs with the constraints, as the README's do."""
    extras = re.findall(r'"\.\[([a-z,]+)\]"', command)
    assert extras or "torch==" in command, f"{where}: `{command}` installs neither an extra nor the pinned torch"
    for group in extras:
        unknown = set(group.split(",")) - _extras()
        assert not unknown, f"{where}: `{command}` names extras {unknown} that pyproject.toml lacks"
    if extras:
        assert "-c constraints.txt" in command, f"{where}: `{command}` installs without the constraints"


def check_storyforge(argv: list[str], where: str) -> None:
    """A storyforge command shown for another machine parses with this CLI (options and arguments exist)."""
    import click
    import typer

    from storyforge.cli import app

    group = typer.main.get_command(app)
    context = click.Context(group, info_name="storyforge")
    command = group.get_command(context, argv[0])
    assert command is not None, f"{where}: no command `storyforge {argv[0]}`"
    try:
        command.make_context(argv[0], list(argv[1:]), parent=context)
    except click.UsageError as error:
        raise AssertionError(f"{where}: `storyforge {shlex.join(argv)}` does not parse: {error}") from error


def check_remote(line: str, where: str) -> None:
    """A command that runs on another machine: checked, not run."""
    for part in (p.strip() for p in line.split("&&")):
        words = shlex.split(part, comments=True)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value prefixes
            words = words[1:]
        if not words:
            continue
        if words[:2] == ["pip", "install"]:
            check_pip(part, where)
        elif words[0] == "storyforge":
            check_storyforge(words[1:], where)
        elif words[0] == "torchrun":
            module = words.index("-m")
            assert words[module + 1] == "storyforge", f"{where}: torchrun runs {words[module + 1]}"
            check_storyforge(words[module + 2:], where)
        elif words[0] == "ssh":
            forward = words[words.index("-L") + 1]
            assert re.fullmatch(r"\d+:127\.0\.0\.1:\d+", forward), f"{where}: ssh -L {forward} is not to loopback"
        elif words[:3] == ["python", "-m", "pytest"]:
            assert part == "python -m pytest -q", f"{where}: the test command is `python -m pytest -q`"  # CI's
        elif words[0] in ("ray", "hf"):
            assert shutil.which(words[0]) or words[0] == "hf", f"{where}: `{words[0]}` is not installed here"
        else:
            raise AssertionError(f"{where}: `{part}` runs on another machine but the docs test cannot check it")


def check_yaml(snippet: Snippet, folder: Path) -> None:
    data = yaml.safe_load(snippet.text)
    if snippet.title is not None:
        path = folder / snippet.title
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(snippet.text, encoding="utf-8")
        if isinstance(data, dict) and "storyforge" in data:
            _check_story(path, snippet)
        return
    if isinstance(data, dict) and "storyforge" in data:
        path = folder / f"snippet-{snippet.line}.yaml"
        path.write_text(snippet.text, encoding="utf-8")
        _check_story(path, snippet)
    elif isinstance(data, dict) and "repos" in data:  # a .pre-commit-config.yaml
        hooks = {hook["id"] for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
        named = {hook["id"] for repo in data["repos"] for hook in repo["hooks"]}
        assert named <= hooks, f"{snippet.where}: hooks {named - hooks} are not in .pre-commit-hooks.yaml"
    elif isinstance(data, list) and all(isinstance(item, dict) and "id" in item for item in data):
        hooks = {hook["id"] for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
        assert {item["id"] for item in data} <= hooks, snippet.where
    elif isinstance(data, list) and all(isinstance(item, dict) and "run" in item for item in data):
        workflow = (ROOT / "examples" / "ci" / "storyforge.yml").read_text(encoding="utf-8")
        for step in data:  # a step of the example workflow, quoted as it is
            assert all(line.strip() in workflow for line in step["run"].splitlines()), snippet.where
    elif isinstance(data, dict):  # a fragment of a story: merged onto a small one
        story = {**BASE_STORY, **data}
        path = folder / f"fragment-{snippet.line}.yaml"
        path.write_text(yaml.safe_dump(story, sort_keys=False), encoding="utf-8")
        _check_story(path, snippet)
    else:
        raise AssertionError(f"{snippet.where}: a YAML snippet the docs test does not know how to check")


def _check_story(path: Path, snippet: Snippet) -> None:
    from storyforge.errors import StoryforgeError

    try:
        api.validate(path)
        api.plan(path)
    except StoryforgeError as error:
        raise AssertionError(f"{snippet.where}: the story does not plan: {error}") from error


def run_bash(snippet: Snippet, folder: Path) -> None:
    lines = snippet.text.splitlines()
    script: list[str] = []
    for line in lines:
        stripped = line.strip()
        if snippet.title is not None and snippet.title.startswith("on "):
            if stripped and not stripped.startswith("#"):
                check_remote(stripped, snippet.where)
            continue
        if stripped.startswith(("pip install", "ssh ")):
            # installs and logins are checked; what the line runs after them runs here
            parts = [part.strip() for part in stripped.split("&&")]
            kept = [part for part in parts if not part.startswith(("pip install", "ssh ", "python -m pytest"))]
            for part in parts:
                if part not in kept:
                    check_remote(part, snippet.where)
            script.extend(" && ".join(kept).splitlines())
        elif stripped.endswith(LONG_RUNNING) or LONG_RUNNING in stripped:
            _serve(stripped.split("#")[0].strip(), folder, snippet)
        else:
            script.append(line)
    if not any(s.strip() and not s.strip().startswith("#") for s in script):
        return
    # the page's shell goes on where the last block left it (`cd myfilm` holds for the next block)
    script.append(f"pwd > {shlex.quote(str(folder / '.cwd'))}")
    done = subprocess.run(["bash", "-e", "-c", "\n".join(script)], cwd=_cwd(folder), env=_env(folder),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{snippet.where}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, f"{snippet.where}: {done.stderr}"


def _serve(command: str, folder: Path, snippet: Snippet) -> None:
    """Start a server the docs say runs until Ctrl-C; it must print its URL, then it is interrupted."""
    process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=_cwd(folder), env=_env(folder),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        seen = []
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "http://" in line:
                assert "token=" in line, f"{snippet.where}: the URL carries no token: {line}"
                return
        raise AssertionError(f"{snippet.where}: `{command}` printed no URL:\n{''.join(seen)}")
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_snippet_runs(page: Path, tmp_path: Path) -> None:
    found = snippets(page)
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / ".home").mkdir()
    shutil.copytree(ROOT / "examples" / "stories" / "refs", folder / "refs")
    if page.name == "README.md":  # the README's commands run from a checkout: its examples are there
        shutil.copytree(ROOT / "examples", folder / "examples")
    for snippet in found:
        if snippet.language == "yaml":
            check_yaml(snippet, _cwd(folder))
        elif snippet.language in ("bash", "sh", "shell"):
            run_bash(snippet, folder)
        elif snippet.title is not None:  # a file the reader writes (a screenplay, say)
            path = _cwd(folder) / snippet.title
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(snippet.text, encoding="utf-8")


def _cwd(folder: Path) -> Path:
    """Where the page's shell stands now: a page that `cd`s into a folder it made writes its files there."""
    marker = folder / ".cwd"
    return Path(marker.read_text(encoding="utf-8").strip()) if marker.exists() else folder


def test_every_page_has_snippets_the_runner_knows() -> None:
    known = {"yaml", "bash", "text", "json", "sh", "shell"}
    for page in PAGES:
        for snippet in snippets(page):
            assert snippet.language in known, f"{snippet.where}: a ```{snippet.language} block"


def test_the_generated_reference_lists_every_key_and_command() -> None:
    sys.path.insert(0, str(DOCS / "hooks"))
    try:
        import generate
    finally:
        sys.path.remove(str(DOCS / "hooks"))
    reference = generate.story_format()
    schema = api.schema()
    for name, definition in [("Film", schema), *schema["$defs"].items()]:
        for key in definition.get("properties", {}):
            assert f"| `{key}` |" in reference, f"{name}.{key} is missing from the story format reference"
    commands = generate.commands()
    for name in ("init", "validate", "plan", "enhance", "render", "pick", "review", "schema", "export"):
        assert f"### `storyforge {name}`" in commands
    assert "`--strict`" in commands and "`--keyframes-only`" in commands


def test_the_readme_is_short_and_links_the_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 150
    for page in ("tutorial/first-film.md", "reference/story-format.md", "reference/commands.md"):
        assert f"docs/{page}" in readme, f"the README links docs/{page}"
