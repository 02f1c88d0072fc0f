"""Atomic writes by path: staged beside the target and renamed into place, through the door (storyforge.confined).

A path inside a folder storyforge holds (its output folder, its cache) is written through that folder's
`Folder`, so no link below it is followed and the temporary carries the run's nonce; any other path (a
`plan -o` file) is written through its own parent folder, its last component never followed.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from storyforge.confined import Folder, held
from storyforge.errors import StoryforgeError


def check_replaceable(target: Path) -> None:
    """Refuse to replace anything but a regular file: a device node, a FIFO, a folder or a link stay as they are."""
    target = Path(os.path.abspath(target))
    try:
        with Folder.open(target.parent, below=target.parent) as folder:  # its own parent, as the user named it
            info = folder.stat(target.name)
    except FileNotFoundError:
        return
    except OSError as error:
        raise StoryforgeError(f"cannot write {target}: {error.strerror}") from None
    if info is None:
        return
    if not stat.S_ISREG(info.st_mode):
        what = ("a folder" if stat.S_ISDIR(info.st_mode) else "a symbolic link" if stat.S_ISLNK(info.st_mode)
                else "not a regular file (a device, FIFO or socket)")
        raise StoryforgeError(f"refusing to write {target}: it is {what}, and only a regular file is replaced; "
                              "choose another path")


@contextlib.contextmanager
def _folder_of(target: Path, *, writing: bool = True) -> Iterator[tuple[Folder, Path]]:
    """The held Folder `target` lies in (and its path there), or its own parent, held for the block."""
    found = held(target)
    if found is not None:
        yield found
        return
    target = Path(os.path.abspath(target))
    if writing:
        check_replaceable(target)  # a path the user chose: the message names it as theirs
    with Folder.open(target.parent, create=writing, below=target.parent) as folder:
        yield folder, Path(target.name)


def regular(path: Path) -> os.stat_result | None:
    """The status of the regular file at `path`, asked through the door (a link is not followed: None, like
    nothing there or a FIFO)."""
    try:
        with _folder_of(Path(path), writing=False) as (folder, rel):
            info = folder.stat(rel)
    except (OSError, StoryforgeError):
        return None
    return info if info is not None and stat.S_ISREG(info.st_mode) else None


def read_bytes(path: Path, limit: int) -> bytes:
    """At most `limit` bytes of the regular file at `path`, read through the door (a held folder's, or its
    parent's): a link, a FIFO or a larger file is refused (storyforge.confined.Refused)."""
    with _folder_of(Path(path), writing=False) as (folder, rel):
        return folder.read(rel, limit)


def checked_path(path: Path) -> Path:
    """`path`, once the door has checked that it is a regular file reached without a link, for a decoder that
    opens files by name (PyAV, ffmpeg)."""
    with _folder_of(Path(path), writing=False) as (folder, rel):
        return folder.path_of(rel)


@contextlib.contextmanager
def replacing(target: Path, suffix: str = ".tmp", *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target`, on failure it is removed.

    The temporary is made with the permissions a plain open() gives (the process umask is never touched);
    `durable`: file and folder are flushed to disk before this returns.
    """
    with _folder_of(Path(target)) as (folder, rel), folder.staged(rel, suffix=suffix, durable=durable) as temporary:
        yield temporary


def write_bytes(target: Path, data: bytes, *, durable: bool = False) -> None:
    """Write `data` to `target` atomically."""
    with _folder_of(Path(target)) as (folder, rel):
        folder.write(rel, data, durable=durable)


def write_text(target: Path, text: str, *, durable: bool = False) -> None:
    """Write `text` (UTF-8) to `target` atomically."""
    write_bytes(target, text.encode("utf-8"), durable=durable)


def link(source: Path, target: Path) -> None:
    """`target` becomes a hard link to (or, across file systems, a copy of) `source`, replaced atomically;
    neither is followed if it is a link."""
    with _folder_of(Path(source)) as (origin, source_rel), _folder_of(Path(target)) as (folder, rel):
        folder.link_from(origin, source_rel, rel)
