"""The render's output folder: refuse a dangerous --out, lock it, and touch only the files storyforge wrote there.

An output folder may hold files storyforge did not make (a user's notes, a folder given by mistake). A
manifest (`.storyforge-out.json`) lists every file storyforge wrote; stale-clip cleanup removes only files in
it, and a file storyforge would write that already exists but is not in it stops the run before anything is
written. One render at a time writes a folder: a second one waits for the lock and says so. Leftovers of a
killed run (half-written films, link temporaries, stitch scratch) are removed under the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from storyforge.atomic import write_text
from storyforge.errors import StoryforgeError

MANIFEST = ".storyforge-out.json"
LOCK = ".storyforge.lock"
# What storyforge writes at the top of an output folder, besides clips/<job>.mp4, takes/<job>/take<N>.mp4 and
# review/*.jpg (and keyframes/ later).
FIXED = ("film.mp4", "plan.json", "run.json", "film.otio", "review.html")
# Leftovers of a killed run, by the names storyforge gives its temporaries (see atomic.py and render._link).
_LEFTOVERS = (".film.*.mp4", ".plan.*.tmp", ".run.*.tmp", f"{MANIFEST[:-5]}.*.tmp", "clips/.*.tmp", ".stitch",
              ".stitch-*", ".cache-*", ".review.*.tmp", "takes/*/.take*.mp4", "review/.*.jpg",
              "keyframes/.*.tmp")


def check_out(out: Path, story: Path) -> Path:
    """`out` resolved, or a StoryforgeError when it is `/`, the story's own folder (or above it), or a file."""
    resolved = out.resolve()
    story_folder = story.resolve().parent
    if resolved == Path(resolved.anchor):
        raise StoryforgeError(f"--out {out}: refusing to render into the file system's root; choose a folder of "
                              "its own, like renders/")
    if resolved == story_folder or story_folder.is_relative_to(resolved):
        raise StoryforgeError(f"--out {out}: refusing to render into the story's own folder (or one above it), "
                              "where its sources live; choose a folder of its own, like renders/")
    if resolved.exists() and not resolved.is_dir():
        raise StoryforgeError(f"--out {out}: this is a file, not a folder; choose a folder")
    return resolved


def read_manifest(out: Path) -> set[str]:
    """The files (relative to `out`) storyforge wrote there; a run.json of a render before manifests existed
    vouches for its own clips and the fixed names."""
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        files = data.get("files") if isinstance(data, dict) else None
        if isinstance(files, list):
            return {name for name in files if isinstance(name, str) and _plain(name)}
    except (OSError, ValueError):
        pass
    from storyforge.report import read_report

    run = read_report(out)
    if run is None:
        return set()
    return {record.clip for record in run.jobs if _plain(record.clip)} | {
        name for name in FIXED if (out / name).is_file()}


def _plain(name: str) -> bool:
    """A manifest entry is a plain relative path below the folder (a hand-edited manifest cannot reach out)."""
    path = Path(name)
    return not path.is_absolute() and ".." not in path.parts and bool(path.parts)


def write_manifest(out: Path, files: Iterable[str]) -> None:
    present = sorted(name for name in set(files) if _plain(name) and (out / name).is_file())
    write_text(out / MANIFEST, json.dumps({"storyforge_out": 1, "files": present}, indent=1) + "\n")


@contextlib.contextmanager
def claimed(out: Path, story: Path, names: Iterable[str],
            notify: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold `out` for one render that will write `names` (relative paths): checked, locked, leftovers removed.

    Refuses (StoryforgeError) when a name already exists there and storyforge did not write it. On exit the
    manifest records every file of `names` that exists, with what it held before.
    """
    out = check_out(out, story)
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / LOCK, "a+")  # noqa: SIM115 - held open for the whole render
    except OSError as error:
        raise StoryforgeError(f"cannot write into the output folder {out}: {error.strerror}; choose a folder you "
                              "can write to with --out") from None
    with handle:
        _lock(handle, out, notify)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        ours = read_manifest(out)
        names = set(names)
        foreign = sorted(name for name in names if name not in ours and os.path.lexists(out / name))
        if foreign:
            shown = ", ".join(f"'{name}'" for name in foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise StoryforgeError(f"--out {out} already holds {shown}, which storyforge did not write; storyforge "
                                  "never replaces files it did not make: choose an empty folder, or move them away")
        remove_leftovers(out)
        try:
            yield out
        finally:
            with contextlib.suppress(OSError, StoryforgeError):
                write_manifest(out, ours | names)


def _lock(handle, out: Path, notify: Callable[[str], None] | None) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; renders into one folder must not overlap
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    handle.seek(0)
    owner = handle.read().strip() or "?"
    if notify is not None:
        notify(f"another render (process {owner}) is writing into {out}; waiting for it to finish")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def remove_leftovers(out: Path) -> None:
    """Temporary files and scratch folders of a killed run; only storyforge's own temporary names."""
    for pattern in _LEFTOVERS:
        for path in out.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()


def remove_stale(out: Path, folder: str, keep: Iterable[Path]) -> None:
    """Files under out/`folder` that storyforge wrote (per the manifest) and that this run no longer makes."""
    keep = {Path(path).resolve() for path in keep}
    for name in read_manifest(out):
        path = out / name
        if Path(name).parts[0] == folder and path.resolve() not in keep and path.is_file() and not path.is_symlink():
            path.unlink()


@contextlib.contextmanager
def scratch(out: Path, name: str) -> Iterator[Path]:
    """A folder private to this run under `out` (`.name-XXXX`), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
