"""The story root: which files a story may read, and reading them without surprises (the one choke point).

A story file comes from other people (a pull request, a download). It may name only files inside its root:
the nearest enclosing folder that holds `.git`, else the story file's own folder. Every path a story names
goes through `StoryRoot.locate`, which resolves symlinks *before* the check, refuses what is outside without
saying whether it exists, and refuses anything but a regular file (FIFOs, devices, `/proc`) without opening
it. `read_bytes` then opens without blocking and reads at most a bound.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ENV_ALLOW = "STORYFORGE_ALLOW_PATH"  # os.pathsep-separated folders, for CI
HOW_TO_WIDEN = f"--allow-path DIR (or {ENV_ALLOW})"
# Kernel and device trees: never story material, even under an allowed folder or a root of "/".
_SYSTEM = tuple(Path(p) for p in ("/proc", "/sys", "/dev"))

_allowed: contextvars.ContextVar[tuple[Path, ...]] = contextvars.ContextVar("storyforge_allow_path", default=())


class PathRefused(Exception):
    """A path a story names may not be read; the message says why and what to do."""


@contextlib.contextmanager
def allowing(folders: Iterable[Path | str]) -> Iterator[None]:
    """Widen the story root by `folders` (the command line's --allow-path) for what runs inside."""
    token = _allowed.set(tuple(Path(f) for f in folders))
    try:
        yield
    finally:
        _allowed.reset(token)


def allowed_from_environment() -> tuple[Path, ...]:
    value = os.environ.get(ENV_ALLOW, "")
    return tuple(Path(part) for part in value.split(os.pathsep) if part.strip())


def find_root(story_folder: Path) -> Path:
    """The nearest folder at or above `story_folder` that holds `.git`, else `story_folder` itself."""
    folder = story_folder.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return folder


@dataclass(frozen=True)
class StoryRoot:
    """Where a story's relative paths start (`base`), and the folders its files must lie in."""

    base: Path  # the story file's folder, as the user named it
    root: Path  # resolved
    allowed: tuple[Path, ...] = ()  # resolved, from --allow-path and the environment

    @classmethod
    def of(cls, story_file: Path, allow: Iterable[Path | str] | None = None) -> StoryRoot:
        """The root of `story_file`, widened by `allow` (default: --allow-path in effect) and the environment."""
        base = Path(story_file).absolute().parent
        extra = tuple(Path(a) for a in allow) if allow is not None else _allowed.get()
        allowed = tuple(dict.fromkeys(p.expanduser().resolve() for p in (*extra, *allowed_from_environment())))
        return cls(base=base, root=find_root(base), allowed=allowed)

    def contains(self, path: Path) -> bool:
        """Whether a resolved path lies inside the root or an allowed folder (and outside the kernel's trees)."""
        if any(path == system or path.is_relative_to(system) for system in _SYSTEM):
            return False
        return any(path.is_relative_to(folder) for folder in (self.root, *self.allowed))

    def outside_message(self, written: str) -> str:
        return (f"'{written}' is outside the story root {self.root} (the folder holding .git, else the story "
                f"file's folder); move the file inside it, or allow its folder with {HOW_TO_WIDEN}")

    def locate(self, written: str, *, folder: bool = False) -> Path:
        """The resolved path of a file (or, with `folder`, a folder) the story names as `written`.

        Raises PathRefused: outside the root (the same words whether or not it exists), missing, or not a
        regular file. Nothing is opened.
        """
        try:
            path = (self.base / written).resolve()  # symlinks first: a link inside the root may point anywhere
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
            raise PathRefused(f"'{written}' is not a usable path; check it") from None
        if not self.contains(path):
            raise PathRefused(self.outside_message(written))
        try:
            info = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise PathRefused(f"no such file '{written}' (paths are relative to the story file)") from None
        except OSError as error:
            raise PathRefused(f"'{written}' cannot be read ({error.strerror}); check its permissions") from None
        except ValueError:
            raise PathRefused(f"'{written}' is not a usable path; check it") from None
        if folder:
            if not stat.S_ISDIR(info.st_mode):
                raise PathRefused(f"'{written}' is not a folder")
        elif not stat.S_ISREG(info.st_mode):
            what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, device or socket)"
            raise PathRefused(f"'{written}' is {what}; name a file")
        return path


def open_regular(path: Path, *, shown: str, nofollow: bool = False) -> int:
    """A descriptor of the regular file `path`, checked on the descriptor itself (what is read is what was
    checked); opened without blocking, so a FIFO swapped in cannot hang us. `nofollow`: a link at the last
    component is refused (for paths already resolved: a link there now was put in after the check).
    Raises PathRefused with `shown` as the file's name."""
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
             | getattr(os, "O_BINARY", 0) | (getattr(os, "O_NOFOLLOW", 0) if nofollow else 0))
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise PathRefused(f"no such file {shown}; check the path") from None
    except OSError as error:
        if nofollow and os.path.islink(path):
            raise PathRefused(f"{shown} became a symbolic link after it was checked; put the file itself there") \
                from None
        raise PathRefused(f"{shown} cannot be read ({error.strerror}); check the path and its permissions") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, device or socket)"
        raise PathRefused(f"{shown} is {what}; name a file")
    return descriptor


def read_bytes(path: Path, limit: int, *, shown: str, nofollow: bool = False) -> bytes:
    """At most `limit` bytes of a regular file, opened once and checked on the open descriptor (see
    `open_regular`); raises PathRefused with `shown` as the file's name."""
    descriptor = open_regular(path, shown=shown, nofollow=nofollow)
    with os.fdopen(descriptor, "rb") as handle:
        if os.fstat(handle.fileno()).st_size > limit:
            raise PathRefused(f"{shown} is larger than {_size(limit)}")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise PathRefused(f"{shown} is larger than {_size(limit)}")
    return data


def _size(limit: int) -> str:
    return f"{limit // 1_000_000} MB" if limit >= 1_000_000 else f"{limit // 1000} KB"
