"""The one door to the folders storyforge keeps (outputs, cache, lock): no link followed, bounded reads, staged writes.

Somebody else may have prepared these folders (a cloned repository, a shared render folder, a CI workspace), so
nothing in them is trusted. A `Folder` holds its folder open by descriptor and reaches every path below it one
component at a time with `O_NOFOLLOW` (`openat`), so a link anywhere below it, or a FIFO, a device or a folder
where a file belongs, is refused with one message naming the path instead of being followed, read or replaced.
Reads take only regular files, checked on the open descriptor, up to a bound. Writes go to a temporary name in
the target's own folder and are renamed over it; the temporary name carries the folder's nonce, so a later run
can remove exactly what a killed one left (see storyforge.outdir) without ever guessing by name pattern.

Code elsewhere that works with paths (`storyforge.atomic`) asks `holding()` for the Folder a path lies in, so the
checks happen at this one choke point. Platforms without `openat` (Windows) get the same checks by `lstat` on
each component before each use (resolve-and-confine), which is weaker only against a concurrent attacker.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from storyforge.errors import StoryforgeError

_AT = all(call in os.supports_dir_fd for call in (os.open, os.stat, os.rename, os.unlink, os.mkdir, os.link))
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOCTTY = getattr(os, "O_NOCTTY", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_READ = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK | _NOCTTY | _BINARY
_DIR = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _DIRECTORY


class Refused(StoryforgeError):
    """A path in a folder storyforge keeps is not what storyforge put there (a link, a FIFO, too large...)."""


def describe(mode: int) -> str:
    """What a file's mode says it is, in words for a message."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "not a regular file (a FIFO, device or socket)"


def refusal(shown: Path | str, what: str) -> Refused:
    """The one message for anything in a kept folder that storyforge will not follow, read or replace."""
    return Refused(f"refusing to use {shown}: it is {what}, and storyforge follows no links and uses only its own "
                   "regular files and folders in its output folder, cache and lock; move it away (or choose "
                   "another folder) and run again")


def _parts(rel: str | Path) -> list[str]:
    """The components of a relative path below a folder; anything that could leave it is refused."""
    text = str(rel).replace(os.sep, "/")
    parts = [part for part in PurePosixPath(text).parts if part not in ("", ".")]
    if text.startswith("/") or any(part == ".." for part in parts) or "\0" in text:
        raise Refused(f"refusing to use '{rel}': storyforge keeps files only below its own folders")
    try:
        text.encode("utf-8", "surrogateescape")  # a name the file system cannot be asked about (a lone surrogate)
    except UnicodeEncodeError:
        raise Refused(f"refusing to use {ascii(text)}: it is not a file name storyforge writes") from None
    return parts


class Folder:
    """A folder storyforge keeps, held open; every path below it is reached without following a link.

    `nonce`: the mark on this holder's temporary names (`.<name>.<nonce>.tmp`, `.<scratch>-<nonce>`); random
    per write when None (folders many processes share, like the cache).
    """

    def __init__(self, path: Path, fd: int | None, nonce: str | None = None):
        self.path = Path(path)
        self._fd = fd
        self.nonce = nonce

    # -- opening -----------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, *, create: bool = False, below: Path | None = None,
             nonce: str | None = None) -> Folder:
        """Hold `path`. Its components below `below` (a folder the user chose, followed as it is; default: the
        parent of `path`) are walked without following links, and made when `create`."""
        path = Path(os.path.abspath(path))
        anchor = Path(os.path.abspath(below)) if below is not None else path.parent
        try:
            rest = path.relative_to(anchor).parts
        except ValueError:
            anchor, rest = path.parent, (path.name,)
        if create:
            _makedirs(anchor)
        if not _AT:
            folder = cls(anchor, None, nonce)
            if rest:
                folder._walk(list(rest), create=create)
            return cls(path, None, nonce)
        try:
            fd = os.open(anchor, os.O_RDONLY | _CLOEXEC | _DIRECTORY)
        except FileNotFoundError:
            raise
        except NotADirectoryError:
            raise Refused(f"refusing to use {anchor}: it is not a folder; choose another folder") from None
        try:
            for part in rest:
                fd = _step(fd, part, anchor := anchor / part, create=create)  # closes the folder above
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, nonce)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def folder(self, rel: str | Path, *, create: bool = False) -> Folder:
        """The folder `rel` below this one, held on its own (made when `create`)."""
        parts = _parts(rel)
        if self._fd is None:
            self._walk(parts, create=create)
            return Folder(self.path.joinpath(*parts), None, self.nonce)
        return Folder(self.path.joinpath(*parts), self._walk(parts, create=create), self.nonce)

    def _walk(self, parts: list[str], *, create: bool) -> int:
        """A new descriptor of the folder `parts` below this one (the caller closes it); links refused."""
        if self._fd is None:  # resolve-and-confine: each component looked at, not followed
            path = self.path
            for part in parts:
                path = path / part
                try:
                    mode = os.lstat(path).st_mode
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(path)
                    continue
                if not stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
                    raise refusal(path, describe(mode))
            return -1
        fd = os.dup(self._fd)
        path = self.path
        try:
            for part in parts:
                path = path / part
                fd = _step(fd, part, path, create=create)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def _parent(self, rel: str | Path, *, create: bool = False) -> Iterator[tuple[int | None, str, Path]]:
        """(descriptor of rel's folder or None, rel's last name, rel's full path to show)."""
        parts = _parts(rel)
        if not parts:
            raise Refused(f"refusing to use {self.path} as a file: it is the folder itself")
        shown = self.path.joinpath(*parts)
        if self._fd is None:
            self._walk(parts[:-1], create=create)
            yield None, str(self.path.joinpath(*parts)), shown
            return
        fd = self._walk(parts[:-1], create=create)
        try:
            yield fd, parts[-1], shown
        finally:
            os.close(fd)

    # -- looking -----------------------------------------------------------------------------------------------

    def stat(self, rel: str | Path) -> os.stat_result | None:
        """The entry's own status (a link is a link), or None when there is nothing there."""
        try:
            with self._parent(rel) as (fd, name, _shown):
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def is_file(self, rel: str | Path) -> bool:
        """Whether a regular file (not a link to one) is there; a link in the way is refused."""
        info = self.stat(rel)
        return info is not None and stat.S_ISREG(info.st_mode)

    def names(self, rel: str | Path = ".") -> list[str]:
        """The names in the folder `rel` (none when it does not exist); a link in the way is refused."""
        parts = _parts(rel)
        try:
            if self._fd is None:
                self._walk(parts, create=False)
                return sorted(os.listdir(self.path.joinpath(*parts)))
            fd = self._walk(parts, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def path_of(self, rel: str | Path) -> Path:
        """The path of the regular file `rel`, for a library that opens files by name (a video decoder); a link
        or anything but a regular file is refused first."""
        with self._parent(rel) as (fd, name, shown):
            try:
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                raise
            if not stat.S_ISREG(mode):
                raise refusal(shown, describe(mode))
        return shown

    def open_fd(self, rel: str | Path, flags: int, mode: int = 0o666) -> int:
        """A descriptor of `rel` opened with `flags` (never following a link there; refused if one is); the
        caller checks what it opened (fstat) and closes it."""
        with self._parent(rel, create=bool(flags & os.O_CREAT)) as (fd, name, shown):
            try:
                return os.open(name, flags | _NOFOLLOW | _CLOEXEC, mode, **({"dir_fd": fd} if fd is not None else {}))
            except OSError as error:
                if isinstance(error, FileNotFoundError | NotADirectoryError):
                    raise FileNotFoundError(error.errno, error.strerror, str(shown)) from None
                info = self._lstat(fd, name)
                if info is not None and not stat.S_ISREG(info.st_mode):
                    raise refusal(shown, describe(info.st_mode)) from None
                raise

    @contextlib.contextmanager
    def reader(self, rel: str | Path) -> Iterator[Any]:
        """The regular file `rel` open for reading (binary), checked on its descriptor."""
        handle = self.open_fd(rel, _READ)
        with os.fdopen(handle, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise refusal(self.path.joinpath(*_parts(rel)), describe(info.st_mode))
            yield file

    # -- reading -----------------------------------------------------------------------------------------------

    def read(self, rel: str | Path, limit: int) -> bytes:
        """At most `limit` bytes of the regular file `rel`, checked on the open descriptor.

        FileNotFoundError when there is nothing; Refused for a link, a FIFO, a device or a folder, or a file
        larger than `limit`. Opened without blocking, so a FIFO never hangs the read.
        """
        shown = self.path.joinpath(*_parts(rel))
        with self.reader(rel) as file:
            if os.fstat(file.fileno()).st_size > limit:
                raise Refused(f"refusing to read {shown}: it is larger than {_size(limit)}, more than storyforge "
                              "ever writes there; move it away and run again")
            data = file.read(limit + 1)
        if len(data) > limit:
            raise Refused(f"refusing to read {shown}: it is larger than {_size(limit)}, more than storyforge ever "
                          "writes there; move it away and run again")
        return data

    def read_json(self, rel: str | Path, limit: int, *, items: int | None = None) -> Any:
        """The JSON value in `rel` (see `read`); ValueError when it is not JSON, too deeply nested, not UTF-8, or
        (with `items`) holds more separators (`,` and `:`) than that: counted before parsing, which is ~50 times
        slower than counting and would otherwise spend seconds on millions of entries nobody wrote."""
        data = self.read(rel, limit)
        if items is not None and data.count(b",") + data.count(b":") > items:
            raise ValueError(f"it holds more than {items} entries")
        try:
            return json.loads(data.decode("utf-8"))
        except RecursionError:
            raise ValueError("it is nested too deeply") from None
        except UnicodeDecodeError as error:
            raise ValueError(f"it is not UTF-8 ({error.reason})") from None

    @staticmethod
    def _lstat(fd: int | None, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False) if fd is not None else os.lstat(name)
        except OSError:
            return None

    # -- writing -----------------------------------------------------------------------------------------------

    def temporary_name(self, name: str, suffix: str = ".tmp") -> str:
        """`.<name>.<nonce><suffix>`: where a write to `name` is staged (exactly this name, for the cleanup)."""
        return f".{name}.{self.nonce or secrets.token_hex(6)}{suffix}"

    @contextlib.contextmanager
    def staged(self, rel: str | Path, *, durable: bool = False, suffix: str = ".tmp") -> Iterator[Path]:
        """A new temporary file beside `rel`, by path, for a writer that opens files by name (an encoder, Pillow);
        renamed over `rel` when the block ends well, removed when it does not.

        Before the rename the temporary must still be the file made here (same inode, a regular file), and `rel`
        must be a regular file or nothing: a link, FIFO, device or folder there is refused and stays as it is.
        `durable`: the file and the folder are flushed to disk (the lock; cache entries) before this returns.
        """
        with self._parent(rel, create=True) as (fd, name, shown):
            self._check_replaceable(fd, name, shown)
            at = {"dir_fd": fd} if fd is not None else {}
            # by descriptor: names in the folder `fd`; without: full paths, each component looked at first
            temporary = _beside(fd, name, self.temporary_name(os.path.basename(name), suffix))
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY
            try:
                handle = os.open(temporary, flags, 0o666, **at)
            except PermissionError:
                raise StoryforgeError(f"cannot write into {shown.parent}: permission denied (a read-only folder?); "
                                      "choose a folder you can write to") from None
            except OSError as error:
                raise StoryforgeError(f"cannot write into {shown.parent}: {error.strerror}") from None
            made = os.fstat(handle)
            os.close(handle)
            staged_path = shown.with_name(os.path.basename(temporary))
            try:
                yield staged_path
                now = self._lstat(fd, temporary)
                if now is None or (now.st_ino, now.st_dev) != (made.st_ino, made.st_dev) or not stat.S_ISREG(
                        now.st_mode):
                    raise refusal(staged_path, "no longer the file storyforge was writing")
                if durable:
                    _fsync_at(fd, temporary)
                self._check_replaceable(fd, name, shown)  # again: something may have appeared there meanwhile
                os.replace(temporary, name, **({"src_dir_fd": fd, "dst_dir_fd": fd} if fd is not None else {}))
                if durable and fd is not None:
                    _fsync_fd(fd)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(temporary, **at)

    def write(self, rel: str | Path, data: bytes, *, durable: bool = False) -> None:
        """`rel` becomes `data`, staged beside it and renamed into place (see `staged`)."""
        with self.staged(rel, durable=durable) as temporary:
            self._write_into(temporary, data, durable)

    def _write_into(self, temporary: Path, data: bytes, durable: bool) -> None:
        with self._parent(self._rel(temporary)) as (fd, name, shown):
            flags = os.O_WRONLY | os.O_TRUNC | _NOFOLLOW | _CLOEXEC | _BINARY
            handle = os.open(name, flags, dir_fd=fd) if fd is not None else os.open(name, flags)
            with os.fdopen(handle, "wb") as file:
                if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                    raise refusal(shown, "not a regular file")
                file.write(data)
                if durable:
                    file.flush()
                    os.fsync(file.fileno())

    def _rel(self, path: Path) -> Path:
        return Path(os.path.abspath(path)).relative_to(self.path)

    def write_text(self, rel: str | Path, text: str, *, durable: bool = False) -> None:
        self.write(rel, text.encode("utf-8"), durable=durable)

    def link_from(self, source: Folder, source_rel: str | Path, rel: str | Path) -> None:
        """`rel` becomes a hard link to (or, across file systems, a copy of) the regular file `source_rel` of
        `source`, replaced atomically; nothing happens when it already is that file."""
        with source._parent(source_rel) as (sfd, sname, sshown):
            origin = Folder._lstat(sfd, sname)
            if origin is None:
                raise FileNotFoundError(2, "No such file", str(sshown))
            if not stat.S_ISREG(origin.st_mode):
                raise refusal(sshown, describe(origin.st_mode))
            current = self.stat(rel)
            if current is not None and (current.st_ino, current.st_dev) == (origin.st_ino, origin.st_dev):
                return
            with self._parent(rel, create=True) as (fd, name, shown):
                self._check_replaceable(fd, name, shown)
                temporary = _beside(fd, name, self.temporary_name(os.path.basename(name)))
                try:
                    os.link(sname, temporary, follow_symlinks=False,
                            **({"src_dir_fd": sfd, "dst_dir_fd": fd} if fd is not None and sfd is not None else {}))
                except OSError:
                    self._copy(source, source_rel, rel)
                    return
                try:
                    self._check_replaceable(fd, name, shown)
                    os.replace(temporary, name, **({"src_dir_fd": fd, "dst_dir_fd": fd} if fd is not None else {}))
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(temporary, **({"dir_fd": fd} if fd is not None else {}))

    def _copy(self, source: Folder, source_rel: str | Path, rel: str | Path) -> None:
        with source._parent(source_rel) as (sfd, sname, sshown):
            handle = os.open(sname, _READ, dir_fd=sfd) if sfd is not None else os.open(sname, _READ)
        with os.fdopen(handle, "rb") as reader:
            if not stat.S_ISREG(os.fstat(reader.fileno()).st_mode):
                raise refusal(sshown, "not a regular file")
            with self.staged(rel) as temporary, self._open_staged(temporary) as writer:
                while block := reader.read(1 << 20):
                    writer.write(block)

    @contextlib.contextmanager
    def _open_staged(self, temporary: Path) -> Iterator[Any]:
        with self._parent(self._rel(temporary)) as (fd, name, _shown):
            flags = os.O_WRONLY | os.O_TRUNC | _NOFOLLOW | _CLOEXEC | _BINARY
            handle = os.open(name, flags, dir_fd=fd) if fd is not None else os.open(name, flags)
        with os.fdopen(handle, "wb") as file:
            yield file

    @staticmethod
    def _check_replaceable(fd: int | None, name: str, shown: Path) -> None:
        info = Folder._lstat(fd, name)
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise refusal(shown, describe(info.st_mode))

    # -- folders and removing ----------------------------------------------------------------------------------

    def make_folder(self, rel: str | Path, *, private: bool = False) -> Path:
        """Make the folder `rel` (and those above it); `private`: new, and readable by this user only."""
        parts = _parts(rel)
        if not private:
            if self._fd is None:
                self._walk(parts, create=True)
            else:
                os.close(self._walk(parts, create=True))
            return self.path.joinpath(*parts)
        with self._parent(rel, create=True) as (fd, name, shown):
            if fd is not None:
                os.mkdir(name, 0o700, dir_fd=fd)
            else:
                os.mkdir(name, 0o700)
        return shown

    def remove(self, rel: str | Path) -> bool:
        """Remove the file (or the link itself, never what it points to) at `rel`; False when none was there.
        A folder there is refused."""
        try:
            with self._parent(rel) as (fd, name, shown):
                info = self._lstat(fd, name)
                if info is None:
                    return False
                if stat.S_ISDIR(info.st_mode):
                    raise refusal(shown, "a folder where storyforge keeps a file")
                os.unlink(name, **({"dir_fd": fd} if fd is not None else {}))
                return True
        except (FileNotFoundError, NotADirectoryError):
            return False

    def remove_folder(self, rel: str | Path, *, only_if_empty: bool = False) -> None:
        """Remove the folder `rel` and what is in it, without following a link inside it (a link at `rel` itself
        is removed as a link). `only_if_empty`: only an empty folder goes."""
        try:
            with self._parent(rel) as (fd, name, _shown):
                info = self._lstat(fd, name)
                if info is None:
                    return
                at = {"dir_fd": fd} if fd is not None else {}
                if not stat.S_ISDIR(info.st_mode):
                    if not only_if_empty:
                        os.unlink(name, **at)
                    return
                if only_if_empty:
                    with contextlib.suppress(OSError):
                        os.rmdir(name, **at)
                    return
                import shutil

                shutil.rmtree(name, ignore_errors=True, **at)
        except (FileNotFoundError, NotADirectoryError):
            return

    def rename(self, rel: str | Path, to: str | Path) -> None:
        """Rename `rel` to `to`, both below this folder (atomically replacing a file or an empty folder at `to`);
        neither path's folders are followed if they are links."""
        with self._parent(rel) as (fd, name, _shown), self._parent(to, create=True) as (tfd, tname, tshown):
            info = self._lstat(tfd, tname)
            if info is not None and stat.S_ISLNK(info.st_mode):
                raise refusal(tshown, "a symbolic link")
            if fd is not None and tfd is not None:
                os.replace(name, tname, src_dir_fd=fd, dst_dir_fd=tfd)
            else:
                os.replace(name, tname)

    def sync(self, rel: str | Path = ".", *, missing_ok: bool = False) -> None:
        """Flush the file or folder `rel` to disk (what durability needs before a rename is relied on)."""
        try:
            handle = self.open_fd(rel, os.O_RDONLY) if _parts(rel) else os.dup(self._fd) if self._fd is not None \
                else os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            if missing_ok:
                return
            raise
        try:
            with contextlib.suppress(OSError):  # some file systems cannot fsync a folder; the rename is atomic
                os.fsync(handle)
        finally:
            os.close(handle)

    @contextlib.contextmanager
    def scratch(self, name: str) -> Iterator[Path]:
        """A new private folder `.<name>-<nonce>` for this run's scratch files, removed afterwards."""
        rel = f".{name}-{self.nonce or secrets.token_hex(6)}"
        path = self.make_folder(rel, private=True)
        try:
            yield path
        finally:
            self.remove_folder(rel)


def _step(fd: int, part: str, shown: Path, *, create: bool) -> int:
    """Open the folder `part` in the folder `fd` without following a link (made when `create`); `fd` is closed
    when this succeeds, and left to the caller when it raises."""
    new = _open_below(fd, part, shown, create=create)
    os.close(fd)
    return new


def _open_below(fd: int, part: str, shown: Path, *, create: bool) -> int:
    try:
        try:
            return os.open(part, _DIR, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=fd)
            return os.open(part, _DIR, dir_fd=fd)
    except FileNotFoundError:
        raise
    except OSError as error:
        info = Folder._lstat(fd, part)
        if info is not None and not stat.S_ISDIR(info.st_mode):
            raise refusal(shown, describe(info.st_mode)) from None
        if isinstance(error, PermissionError):
            raise StoryforgeError(f"cannot open {shown}: permission denied; choose a folder you can write "
                                  "to") from None
        raise


def _beside(fd: int | None, name: str, other: str) -> str:
    """The name `other` in the folder of `name`: itself by descriptor, a full path beside `name` without."""
    return other if fd is not None else os.path.join(os.path.dirname(name), other)


def _makedirs(path: Path) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        raise Refused(f"refusing to use {path}: it is not a folder; choose another folder") from None
    except PermissionError:
        raise StoryforgeError(f"cannot make the folder {path}: permission denied; choose a folder you can write "
                              "to") from None


def _fsync_at(fd: int | None, name: str) -> None:
    handle = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, **({"dir_fd": fd} if fd is not None else {}))
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _fsync_fd(fd: int) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a folder; the rename is still atomic
        os.fsync(fd)


def _size(limit: int) -> str:
    return f"{limit // 1_000_000} MB" if limit >= 1_000_000 else f"{limit // 1000} KB"


# -- which Folder a path lies in ---------------------------------------------------------------------------------

_held: dict[Path, list[Folder]] = {}
_held_lock = threading.Lock()
# Folders to let go of: `release` also runs from finalizers (a Cache that is collected), which the collector may
# call in the middle of any code of this thread, `held` included, while it holds _held_lock: waiting for the
# lock there would wait forever, so a release is queued and applied by whoever holds the lock next.
_released: collections.deque[Folder] = collections.deque()


def hold(folder: Folder) -> None:
    """Route every path-based read and write below `folder.path` (storyforge.atomic) through `folder`."""
    with _held_lock:
        _let_go()
        _held.setdefault(folder.path, []).append(folder)


def release(folder: Folder) -> None:
    """Undo `hold` (now, or as soon as the lock is free: see _released)."""
    _released.append(folder)
    if _held_lock.acquire(blocking=False):
        try:
            _let_go()
        finally:
            _held_lock.release()


def _let_go() -> None:
    """Apply the queued releases; the caller holds _held_lock."""
    while _released:
        folder = _released.popleft()
        stack = _held.get(folder.path, [])
        if folder in stack:
            stack.remove(folder)
        if not stack:
            _held.pop(folder.path, None)


@contextlib.contextmanager
def holding(folder: Folder) -> Iterator[Folder]:
    """`hold` for the block."""
    hold(folder)
    try:
        yield folder
    finally:
        release(folder)


def held(path: Path | str) -> tuple[Folder, Path] | None:
    """The innermost held Folder `path` lies in, and `path` relative to it; None when none holds it."""
    path = Path(os.path.abspath(path))
    with _held_lock:
        _let_go()
        best = None
        for root, stack in _held.items():
            inside = path == root or root in path.parents
            if stack and inside and (best is None or len(root.parts) > len(best[0].path.parts)):
                best = (stack[-1], path.relative_to(root))
    return best


def with_folder(path: Path | str, use: Callable[[Folder, Path], Any]) -> Any:
    """`use(folder, rel)` with the held Folder `path` lies in, or with its own parent folder (made if needed,
    its last component not followed) when none holds it."""
    found = held(path)
    if found is not None:
        return use(*found)
    path = Path(os.path.abspath(path))
    with Folder.open(path.parent, create=True) as folder:
        return use(folder, Path(path.name))
