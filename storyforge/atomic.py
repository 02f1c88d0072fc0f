"""Atomic writes: a temporary file beside the target, renamed into place, so a reader never sees half a file."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from storyforge.errors import StoryforgeError


def check_replaceable(target: Path) -> None:
    """Refuse to replace anything but a regular file: a device node, a FIFO, a folder or a link stay as they are."""
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return
    except OSError as error:
        raise StoryforgeError(f"cannot write {target}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        what = ("a folder" if stat.S_ISDIR(info.st_mode) else "a symbolic link" if stat.S_ISLNK(info.st_mode)
                else "not a regular file (a device, FIFO or socket)")
        raise StoryforgeError(f"refusing to write {target}: it is {what}, and only a regular file is replaced; "
                              "choose another path")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replacing(target: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target`, on failure it is removed.

    mkstemp makes 0600 files; the result gets the permissions a plain open() would have given it.
    """
    target = Path(target)
    check_replaceable(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix, dir=target.parent)
    except PermissionError:
        raise StoryforgeError(f"cannot write into {target.parent}: permission denied (a read-only folder?); "
                              "choose a folder you can write to") from None
    except OSError as error:
        raise StoryforgeError(f"cannot write into {target.parent}: {error.strerror}") from None
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())
        check_replaceable(target)  # again: something may have appeared there while we wrote
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(target: Path, text: str) -> None:
    """Write `text` (UTF-8) to `target` atomically."""
    with replacing(target) as temporary:
        temporary.write_text(text, encoding="utf-8")
