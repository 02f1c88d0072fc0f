"""One door: no module but storyforge.confined touches the folders storyforge keeps with a file-system call.

A call check over the package's syntax trees: the raw primitives (os.open, os.replace, shutil.rmtree, open(),
Path.unlink(), Path.write_text(...), np.save, ...) appear only in the door (storyforge.confined) and in modules
that never touch the output folder, the cache or the lock (each listed below with why). Path methods are told
from the door's methods by their arity: the door's always take the relative path first (`folder.stat(rel)`,
`folder.write_text(rel, text)`), pathlib's take none or one argument (`path.stat()`, `path.write_text(text)`).
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "storyforge"
# Modules that do their own file work, and why none of it reaches a kept folder.
ELSEWHERE = {
    "confined.py": "the door itself",
    "story/": "story inputs: read through storyforge.story.root, the story's own door",
    "backends/": "model folders and the tiny models under STORYFORGE_HOME, never a render's folders",
    "enhance/qwen.py": "the LLM's model folder",
    "clipfile.py": "encodes into a path it is given: a private folder the door made (cache staging, stitch scratch)",
    "stitch.py": "works inside a private scratch folder the door made, and writes the film through atomic.replacing",
    "screenplay/": "reads the screenplay named on the command line and writes the story file where the user asks",
    "hub.py": "asks whether a model named in the story is a local folder (the Hugging Face cache, model folders)",
    "api.py": "`init` scaffolds a new story folder; `is_story_file` peeks at a file named on the command line",
    "cli.py": "opens the review page in a browser",
}
# Single functions of checked modules that look at other files, and why.
FUNCTIONS = {
    ("render.py", "gpu_driver_present"): "looks for GPU driver files under /proc and /dev",
    ("export_otio.py", "describe"): "reads back the timeline file `export -o` wrote where the user asked",
    ("enhance/lock.py", "run"): "asks whether the story file named on the command line exists, before locking",
    ("studio/server.py", "serve"): "asks whether the story file named on the command line exists",
    ("studio/server.py", "_asset"): "reads the studio's own page assets from the installed package",
    ("executors/ray_executor.py", "code_fingerprint"): "hashes the installed package's own source files",
    ("executors/ray_executor.py", "_strand_task"): "a Ray worker's own private scratch folder (tempfile)",
    ("executors/ray_executor.py", "local"): "a Ray worker's copies of the story's images, in its scratch folder",
    ("executors/ray_cluster.py", "_token_for_this_process"): "a local Ray cluster's session files",
    ("outdir.py", "check_out"): "looks at the --out argument itself, before the door opens it",
}
OS_CALLS = {"open", "replace", "rename", "renames", "unlink", "remove", "link", "symlink", "mkdir", "makedirs",
            "rmdir", "removedirs", "listdir", "scandir", "chmod", "chown", "truncate", "utime", "lstat", "stat",
            "walk", "readlink", "umask"}
SHUTIL_CALLS = {"rmtree", "copyfile", "copy", "copy2", "copytree", "move"}
TEMPFILE_CALLS = {"mkdtemp", "mkstemp", "NamedTemporaryFile", "TemporaryDirectory"}
DATA_CALLS = {("np", "load"), ("np", "save"), ("numpy", "load"), ("numpy", "save"), ("json", "load"),
              ("json", "dump")}
PATH_NO_ARGUMENT = {"read_text", "read_bytes", "unlink", "mkdir", "rmdir", "iterdir", "exists", "is_file", "is_dir",
                    "is_symlink", "lstat", "stat", "touch", "open"}
PATH_ONE_ARGUMENT = {"write_text", "write_bytes", "glob", "rglob", "rename", "symlink_to", "hardlink_to", "chmod",
                     "samefile"}


def _raw_calls(tree: ast.AST) -> list[tuple[str, int, str]]:
    """(enclosing function, line, call) for every raw file-system call in a module."""
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            if isinstance(child, ast.Call):
                call = _describe(child)
                if call is not None:
                    found.append((function, child.lineno, call))
            visit(child, name)

    visit(tree, "<module>")
    return found


def _describe(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name) and func.id == "open":
        return "open()"
    if not isinstance(func, ast.Attribute):
        return None
    owner = func.value.id if isinstance(func.value, ast.Name) else None
    if owner == "os" and func.attr in OS_CALLS:
        return f"os.{func.attr}"
    if owner == "shutil" and func.attr in SHUTIL_CALLS:
        return f"shutil.{func.attr}"
    if owner == "tempfile" and func.attr in TEMPFILE_CALLS:
        return f"tempfile.{func.attr}"
    if (owner, func.attr) in DATA_CALLS:
        return f"{owner}.{func.attr}"
    if owner in ("os", "shutil", "tempfile", "np", "numpy", "json", "av", "Image", "PILImage", "webbrowser"):
        return None  # module functions other than the ones above (os.path.join, av.open of a checked path, ...)
    positional = len(call.args)
    if func.attr in PATH_NO_ARGUMENT and positional == 0:
        return f".{func.attr}()"
    if func.attr in PATH_ONE_ARGUMENT and positional == 1:
        return f".{func.attr}(...)"
    return None


def _checked_modules() -> list[Path]:
    return [path for path in sorted(PACKAGE.rglob("*.py"))
            if not any(path.relative_to(PACKAGE).as_posix().startswith(prefix) for prefix in ELSEWHERE)]


def test_only_the_door_touches_the_folders_storyforge_keeps() -> None:
    offenders = []
    for path in _checked_modules():
        module = path.relative_to(PACKAGE).as_posix()
        for function, line, call in _raw_calls(ast.parse(path.read_text(encoding="utf-8"))):
            if (module, function) not in FUNCTIONS:
                offenders.append(f"storyforge/{module}:{line} ({function}): {call}")
    assert offenders == [], "\n".join(offenders)


def test_the_modules_that_keep_files_are_checked_and_the_check_sees_raw_calls() -> None:
    checked = {path.relative_to(PACKAGE).as_posix() for path in _checked_modules()}
    assert {"outdir.py", "cache.py", "keyframes.py", "review.py", "export_otio.py", "render.py", "readback.py",
            "atomic.py", "provenance.py", "enhance/lock.py"} <= checked
    sample = ("import os, shutil, json\nfrom pathlib import Path\n"
              "def f(p, folder):\n"
              "    p.unlink(); p.write_text('x'); os.replace(p, p); shutil.rmtree(p); open(p); json.load(p)\n"
              "    folder.stat('rel'); folder.write_text('rel', 'x'); 'a/b'.replace('/', '__')\n")
    assert [call for _, _, call in _raw_calls(ast.parse(sample))] == [
        ".unlink()", ".write_text(...)", "os.replace", "shutil.rmtree", "open()", "json.load"]
    # the door's own module is the one place these calls live
    assert len(_raw_calls(ast.parse((PACKAGE / "confined.py").read_text(encoding="utf-8")))) > 20
