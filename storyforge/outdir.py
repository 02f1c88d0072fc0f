"""The render's output folder: refuse a dangerous --out, lock it, and touch only the files storyforge wrote there.

An output folder may hold files storyforge did not make (a user's notes, a folder given by mistake) and may
have been prepared by somebody else (links, FIFOs), so it is reached only through the folder door
(storyforge.confined). A manifest (`.storyforge-out.json`) lists every file storyforge wrote there; it is
written ahead: before a run creates anything, every file it may write is entered as *pending* with the run's
nonce, so the files of a run killed halfway (SIGKILL, a CI timeout) are still recognised as storyforge's by the
next run, and the temporaries and scratch folders it left are removed by their exact names (the name of the
target plus that run's nonce), never by a name pattern. A file storyforge would write that already exists but
is in no manifest stops the run before anything is written. One render at a time writes a folder: a second one
waits for the lock (a file lock, on every platform) and says so.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from storyforge import readback
from storyforge.confined import Folder, Refused, describe, held, holding, refusal
from storyforge.errors import StoryforgeError
from storyforge.readback import MANIFEST, Manifest, manifest_text, plain, read_run

LOCK = ".storyforge.lock"
# What storyforge writes at the top of an output folder, besides clips/<job>.mp4, takes/<job>/take<N>.mp4,
# review/*.jpg and keyframes/*.png.
FIXED = ("film.mp4", "plan.json", "run.json", "film.otio", "review.html")
# The suffixes storyforge's staged writes use (see storyforge.confined.Folder.temporary_name), and its scratch
# folders (`.<name>-<nonce>`): with a run's nonce they give the exact names of what a killed run can leave.
_STAGED_SUFFIXES = (".tmp", ".mp4", ".jpg", ".png", ".json")
SCRATCH = ("stitch", "cache")
__all__ = ["FIXED", "LOCK", "MANIFEST", "check_out", "claimed", "open_listed", "read_manifest", "remove_stale",
           "scratch"]


def check_out(out: Path, story: Path) -> Path:
    """`out` resolved, or a StoryforgeError when it is `/`, the story's own folder (or above it), a file or a link."""
    resolved = out.resolve()
    story_folder = story.resolve().parent
    if resolved == Path(resolved.anchor):
        raise StoryforgeError(f"--out {out}: refusing to render into the file system's root; choose a folder of "
                              "its own, like renders/")
    if resolved == story_folder or story_folder.is_relative_to(resolved):
        raise StoryforgeError(f"--out {out}: refusing to render into the story's own folder (or one above it), "
                              "where its sources live; choose a folder of its own, like renders/")
    if os.path.islink(out):
        raise StoryforgeError(f"--out {out}: it is a symbolic link, and storyforge renders only into a real folder "
                              "(a link may point anywhere); name the folder itself, or choose another")
    if resolved.exists() and not resolved.is_dir():
        raise StoryforgeError(f"--out {out}: this is a file, not a folder; choose a folder")
    return resolved


def open_out(out: Path, story: Path, *, nonce: str | None = None) -> Folder:
    """The output folder held through the door, made if needed. Below the story's folder (the default
    `renders/<story>/`), every component from there on is walked without following a link; elsewhere, the last."""
    given = Path(os.path.abspath(out))
    story_folder = Path(os.path.abspath(story)).parent
    below = story_folder if given.is_relative_to(story_folder) and given != story_folder else given.parent
    try:
        folder = Folder.open(given, create=True, below=below, nonce=nonce)
    except (Refused, StoryforgeError):
        raise
    except OSError as error:
        raise StoryforgeError(f"cannot write into the output folder {given}: {error.strerror}; choose a folder you "
                              "can write to with --out") from None
    # messages and the paths handed to encoders use the folder's real place, checked above
    folder.path = Path(os.path.realpath(given))
    return folder


def read_ours(out: Folder) -> Manifest:
    """The manifest; without one, what the last render's run.json says it wrote (a folder whose manifest was
    deleted, or a render from before manifests) vouches for those exact files."""
    manifest = readback.read_manifest(out)
    if manifest.found:
        return manifest
    run = read_run(out)
    if not run.found or run.extra.get("storyforge_run") is None:
        return manifest
    return Manifest(files=frozenset({*run.files(), *(name for name in FIXED if out.is_file(name))}))


def leftovers(nonce: str, pending: Iterable[str]) -> list[str]:
    """The exact names a run with `nonce` can leave when killed: each pending file's staged temporaries and the
    run's scratch folders."""
    names = [f".{name}-{nonce}" for name in SCRATCH]
    for name in (*pending, MANIFEST):
        folder, _, base = name.rpartition("/")
        names.extend(f"{folder + '/' if folder else ''}.{base}.{nonce}{suffix}" for suffix in _STAGED_SUFFIXES)
    return names


@contextlib.contextmanager
def claimed(out: Path, story: Path, names: Iterable[str],
            notify: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold `out` for one render that will write `names` (relative paths): checked, locked, a killed run's files
    recognised and its leftovers removed, and `names` entered in the manifest as pending before anything is written.

    Refuses (StoryforgeError) when a name already exists there and storyforge did not write it, or when anything
    on the way to it is a link. On exit the manifest records every file of its own that exists.
    """
    check_out(out, story)
    nonce = secrets.token_hex(8)
    with open_out(out, story, nonce=nonce) as folder, holding(folder), _locked(folder, notify):  # out as named
        out = folder.path
        manifest = read_ours(folder)
        names = {name for name in names if plain(name)}
        ours = set(manifest.ours)
        foreign = sorted(name for name in names if name not in ours and folder.stat(name) is not None)
        if foreign:
            shown = ", ".join(f"'{name}'" for name in foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise StoryforgeError(f"--out {out} already holds {shown}, which storyforge did not write; storyforge "
                                  "never replaces files it did not make: choose an empty folder, or move them away")
        if manifest.nonce is not None:  # a run killed before it finished: exactly what it can have left
            for name in leftovers(manifest.nonce, manifest.pending):
                _remove_leftover(folder, name)
        # write-ahead: every file this run may make is the manifest's before it exists
        folder.write_text(MANIFEST, manifest_text(manifest.files | manifest.pending, names, nonce), durable=True)
        try:
            yield folder.path
        finally:
            with contextlib.suppress(OSError, StoryforgeError):
                present = {name for name in ours | names if folder.is_file(name)}
                folder.write_text(MANIFEST, manifest_text(present), durable=True)


def _remove_leftover(folder: Folder, name: str) -> None:
    with contextlib.suppress(OSError, StoryforgeError):
        info = folder.stat(name)
        if info is None:
            return
        if stat.S_ISDIR(info.st_mode):
            folder.remove_folder(name)
        else:
            folder.remove(name)


@contextlib.contextmanager
def _locked(out: Folder, notify: Callable[[str], None] | None) -> Iterator[None]:
    """Hold the folder's lock file for the block; a second render waits, and says so once."""
    import filelock

    fd = _open_lock(out)
    try:
        if not filelock.lock_descriptor(fd, blocking=False):
            owner = "?"
            with contextlib.suppress(OSError):  # Windows locks are mandatory: the holder's bytes may be unreadable
                os.lseek(fd, 0, os.SEEK_SET)
                owner = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            if notify is not None:
                notify(f"another render (process {owner}) is writing into {out.path}; waiting for it to finish")
            filelock.lock_descriptor(fd, poll_interval=0.1)
        os.ftruncate(fd, 0)  # our own lock file: a regular file with no other name (checked when opened)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            filelock.unlock_descriptor(fd)
    finally:
        os.close(fd)


def _open_lock(out: Folder) -> int:
    """The lock file, opened without following a link; anything but a regular file with one name is refused."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NONBLOCK", 0)
    try:
        handle = out.open_fd(LOCK, flags)
    except (Refused, StoryforgeError):
        raise
    except OSError as error:
        raise StoryforgeError(f"cannot write into the output folder {out.path}: {error.strerror}; choose a folder "
                              "you can write to with --out") from None
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(handle)
        raise refusal(out.path / LOCK, "a second name of another file (a hard link)" if stat.S_ISREG(info.st_mode)
                      else describe(info.st_mode))
    return handle


def folder_of(out: Path) -> Folder:
    """The held Folder of the output folder `out` (a render holds it with `claimed`)."""
    found = held(out)
    if found is None or found[1] != Path("."):
        raise RuntimeError(f"{out} is not held: call this inside storyforge.outdir.claimed")
    return found[0]


def remove_stale(out: Path, folder: str, keep: Iterable[Path]) -> None:
    """Files under out/`folder` that storyforge wrote (exact manifest paths) and that this run no longer makes;
    a folder of takes left empty by that goes too, when storyforge made it (one of its files was in it)."""
    kept = folder_of(out)
    keep = {Path(os.path.abspath(path)) for path in keep}
    emptied: set[str] = set()
    for name in read_ours(kept).ours:
        if name.split("/")[0] == folder and kept.path / name not in keep and kept.is_file(name):
            kept.remove(name)
            if name.count("/") == 2:
                emptied.add(name.rpartition("/")[0])
    for name in sorted(emptied):
        kept.remove_folder(name, only_if_empty=True)


@contextlib.contextmanager
def scratch(out: Path, name: str) -> Iterator[Path]:
    """A private folder of this run under `out` (`.name-<nonce>`), removed afterwards; a killed run's is
    removed by the next one (see `leftovers`)."""
    with folder_of(out).scratch(name) as path:
        yield path


def remove_files(out: Path, names: Iterable[str]) -> list[str]:
    """Remove these exact files of the held output folder (never through a link); the names that were there."""
    folder = folder_of(out)
    return [name for name in names if folder.remove(name)]


@contextlib.contextmanager
def looking(out: Path) -> Iterator[Folder | None]:
    """The output folder held for reading only (the studio, between renders): its last component not followed;
    None when there is no such folder (or it is a link, a file)."""
    try:
        folder = Folder.open(Path(out), below=Path(os.path.abspath(out)).parent)
    except (OSError, StoryforgeError):
        yield None
        return
    with folder:
        yield folder


@contextlib.contextmanager
def looking_from(out: Path, story: Path) -> Iterator[Folder | None]:
    """The output folder of `story` held for reading, reached as `open_out` reaches it (below the story's folder,
    no link followed; elsewhere, not its last component); None when there is none. A link or a file on the way
    is refused (storyforge.confined.Refused), as a render refuses it."""
    given = Path(os.path.abspath(out))
    story_folder = Path(os.path.abspath(story)).parent
    below = story_folder if given.is_relative_to(story_folder) and given != story_folder else given.parent
    try:
        folder = Folder.open(given, below=below)
    except (FileNotFoundError, NotADirectoryError):
        yield None
        return
    with folder:
        yield folder


def read_manifest(out: Path) -> set[str]:
    """The files storyforge wrote in `out` (see `read_ours`), for a reader outside a render; empty when the folder
    or its manifest cannot be read."""
    with looking(out) as folder:
        if folder is None:
            return set()
        try:
            return set(read_ours(folder).ours)
        except StoryforgeError:
            return set()


def open_listed(out: Path, name: str) -> tuple[int, int]:
    """(an open descriptor, its size) of the file `name` of `out` when the manifest lists it, reached through the
    door without following a link and checked to be a regular file; FileNotFoundError otherwise."""
    with looking(out) as folder:
        if folder is None or not plain(name) or name not in read_ours(folder).ours:
            raise FileNotFoundError(name)
        try:
            handle = folder.open_fd(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except StoryforgeError:
            raise FileNotFoundError(name) from None
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode):
        os.close(handle)
        raise FileNotFoundError(name)
    return handle, info.st_size
