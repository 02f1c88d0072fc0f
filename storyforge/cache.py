"""The content-addressed clip cache: entries written to a temp dir and renamed into place, so an entry that exists is complete."""  # noqa: E501

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import stat
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.confined import Folder, Refused, describe, hold, release
from storyforge.errors import RenderError, StoryforgeError
from storyforge.plan.keys import digest

if TYPE_CHECKING:
    import numpy as np

    from storyforge.plan.model import Job

ENTRY_FORMAT = 1
CLIP, META = "clip.mp4", "meta.json"
# The clip's last overlap_frames frames exactly as they were encoded, for the shots that continue it: an
# uncompressed .npy (numpy's own format: exact by construction, written and read at memory speed, no codec
# in the loop). PNG would save about 40% of its size on grainy frames at 200 times the write time.
TAIL = "tail.npy"
VERIFIED = "clip.verified"  # the clip's stat when its hash last matched (see Cache._clip_problem)
MAX_META_BYTES = 8_000_000  # a meta.json with every seam of a very long shot is a few kB
MAX_TAIL_BYTES = 4_000_000_000  # overlap_frames frames at 720p are ~50 MB; a 4K tail of 97 frames is 2.4 GB


def default_root(story: Path) -> Path:
    """`.storyforge/cache/` beside the story file."""
    return story.resolve().parent / ".storyforge" / "cache"


def entry_key(identity: dict[str, Any], job_key: str) -> str:
    """The cache key of a job rendered by a backend: its content key and what the backend adds to it."""
    return digest({"format": ENTRY_FORMAT, "backend": identity, "job": job_key})


@dataclass(frozen=True)
class Entry:
    """One complete cache entry: a clip and what it was written with."""

    key: str
    folder: Path
    meta: dict[str, Any]

    @property
    def clip(self) -> Path:
        return self.folder / CLIP

    @property
    def frames(self) -> int:
        return int(self.meta["frames"])

    @property
    def keyframes(self) -> tuple[int, ...]:
        return tuple(self.meta["keyframes"])

    @property
    def seconds(self) -> float:
        return float(self.meta["seconds"])


@dataclass
class Cache:
    """Clips by entry key under `root`; every write goes through `root/tmp` and one rename.

    The cache folder is reached only through the folder door (storyforge.confined): a link anywhere in it,
    or junk where an entry belongs, is never followed; the entry is discarded with a notice and made again.
    """

    root: Path
    # what was wrong with entries found corrupt and discarded, for the run's notices
    discarded: list[str] = field(default_factory=list)
    # read, never written: `render --no-cache` looks up the shots it does not render here (a wrong entry is
    # skipped, not discarded; nothing is swept)
    readonly: bool = False

    def __post_init__(self) -> None:
        self.root = Path(os.path.abspath(self.root))
        self.store = open_root(self.root)
        hold(self.store)  # paths into the cache (a clip linked out, a keyframe) go through this door too
        weakref.finalize(self, release, self.store)
        if not self.readonly:
            self._sweep()

    def folder(self, key: str) -> Path:
        return self.root / key[:2] / key

    @staticmethod
    def _rel(key: str, name: str | None = None) -> str:
        return f"{key[:2]}/{key}" + (f"/{name}" if name else "")

    def get(self, key: str) -> Entry | None:
        """The complete entry for `key`, or None; an entry that fails its checks is discarded."""
        try:
            info = self.store.stat(self._rel(key))
        except Refused:  # a link (or a file) where the entry's folder of two letters belongs
            self._clear_way(key)
            return None
        if info is None:
            return None
        if not stat.S_ISDIR(info.st_mode):
            self.discard(key, f"{describe(info.st_mode)} stood where its folder belongs")
            return None
        try:
            meta = self.store.read_json(self._rel(key, META), MAX_META_BYTES, items=4 * _LIMIT)
            problem = _meta_problem(meta, key) or self._clip_problem(key, meta)
            if problem is None and meta.get("tail_frames"):
                tail = self.store.stat(self._rel(key, TAIL))
                if tail is None or not stat.S_ISREG(tail.st_mode) or tail.st_size != meta["tail_bytes"]:
                    problem = "its tail frames changed"  # their hash is checked when they are read (Cache.tail)
        except (Refused, ValueError) as error:
            problem = str(error) if isinstance(error, ValueError) else "it holds something storyforge did not write"
        except OSError as error:
            problem = f"unreadable ({error.__class__.__name__})"
        if problem is not None:
            self.discard(key, problem)
            return None
        return Entry(key, self.folder(key), meta)

    def _clip_problem(self, key: str, meta: dict[str, Any]) -> str | None:
        """The clip's size, then its bytes, against what was recorded: garbage of the right size is caught too.

        The bytes are hashed only when the clip's stat (size, mtime, ctime, inode) is not the one recorded at the
        last hash that matched (VERIFIED, beside it), as DVC trusts an unchanged file: any write to the clip, even
        of the same size, changes its ctime, so it is hashed again; a lookup of an untouched clip reads no byte."""
        with self.store.reader(self._rel(key, CLIP)) as handle:
            info = os.fstat(handle.fileno())
            if info.st_size != meta["clip_bytes"]:
                return "its clip or meta changed"
            seen = [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, meta["clip_sha256"]]
            try:
                if self.store.read_json(self._rel(key, VERIFIED), 4096) == seen:
                    return None
            except (OSError, ValueError, Refused):
                pass
            if _sha256_of(handle) != meta["clip_sha256"]:
                return "its clip's content changed (its hash does not match)"
        try:  # remembered for the next lookup; a cache that cannot be written only costs it the hashing
            self.store.write_text(self._rel(key, VERIFIED), json.dumps(seen))
        except (OSError, Refused):
            pass
        return None

    def clip_path(self, entry: Entry) -> Path:
        """The entry's clip by path, for a decoder that opens files by name; checked to be a regular file first."""
        return self.store.path_of(self._rel(entry.key, CLIP))

    def clip_bytes(self, entry: Entry) -> bytes:
        """The bytes of the entry's clip (checked against its recorded size), to send to another machine."""
        return self.store.read(self._rel(entry.key, CLIP), int(entry.meta["clip_bytes"]))

    def read(self, entry: Entry, *, last: int | None = None) -> np.ndarray:
        """The entry's decoded frames (only the `last` few kept, when given: every frame is still decoded and
        counted); a clip that does not decode to its recorded frame count is discarded."""
        from collections import deque

        import numpy as np

        from storyforge.clipfile import ClipError, iter_frames

        kept: deque[np.ndarray] = deque(maxlen=last)
        count = 0
        try:
            for frame in iter_frames(self.clip_path(entry)):
                kept.append(frame)
                count += 1
        except (ClipError, OSError, Refused) as error:
            self.discard(entry.key, f"its clip does not decode ({error})")
            raise CorruptEntry(entry.key) from error
        if count != entry.frames or not count:
            self.discard(entry.key, f"its clip decodes to {count} frames, not {entry.frames}")
            raise CorruptEntry(entry.key)
        return np.stack(kept)

    def head(self, entry: Entry, first: int) -> np.ndarray:
        """The entry's `first` frames (all of them when it has fewer): from its lossless tail when that holds the
        whole clip, else decoded from the clip's start; a clip that does not decode is discarded."""
        import numpy as np

        from storyforge.clipfile import ClipError, iter_frames

        lossless = self.tail(entry)
        if lossless is not None and len(lossless) >= entry.frames:
            return lossless[:first]
        kept: list[np.ndarray] = []
        try:
            for frame in iter_frames(entry.clip):
                kept.append(frame)
                if len(kept) == first:
                    break
        except (ClipError, OSError) as error:
            self.discard(entry.key, f"its clip does not decode ({error})")
            raise CorruptEntry(entry.key) from error
        if len(kept) < min(first, entry.frames):
            self.discard(entry.key, f"its clip decodes to {len(kept)} frames, not {entry.frames}")
            raise CorruptEntry(entry.key)
        return np.stack(kept)

    def put(self, key: str, frames: np.ndarray | Iterator[np.ndarray], *, job: Job, fps: int,
            keyframes: Sequence[int], identity: dict[str, Any], seconds: float | Callable[[], float],
            tail: Callable[[], np.ndarray | None] | None = None,
            seams: Callable[[], dict[str, Any] | None] | None = None) -> Entry:
        """Encode `frames` as the entry for `key`; if another writer finished it first, theirs is kept.

        `frames`: uint8 (F, H, W, 3), or chunks of it encoded as they come (a render streams its frames in).
        `seconds`: what rendering took, or a function that says so once the last chunk is in. `tail` and
        `seams`, asked once the last chunk is in: the last frames to keep losslessly beside the clip (TAIL),
        and the seam report's numbers for its meta.
        """
        from storyforge.clipfile import poster_frame, write_clip

        forced = sorted(keyframes)
        meta = {"format": ENTRY_FORMAT, "key": key, "job": job.id, "job_key": job.key, "fps": fps,
                "keyframes": forced, "backend": identity, "created": round(time.time(), 3)}

        def write(clip: Path, keep: Callable[[str, bytes], None]) -> None:
            # `keyframes` are the cut's; one more at the poster frame lets the review page decode that frame alone
            planned = job.frames if isinstance(frames, Iterator) else len(frames)  # a stream: as many as planned
            count, height, width = write_clip(frames, clip, fps=fps,
                                              keyframes=sorted({*forced, poster_frame(planned)}))
            took = seconds() if callable(seconds) else seconds
            meta.update(frames=count, width=width, height=height, seconds=round(took, 3))
            last = tail() if tail is not None else None
            if last is not None and len(last):
                import hashlib
                import io

                import numpy as np

                buffer = io.BytesIO()  # the bytes go into the entry through the door (`keep`)
                np.lib.format.write_array(buffer, np.ascontiguousarray(last), allow_pickle=False)
                data = buffer.getvalue()
                keep(TAIL, data)
                meta.update(tail_frames=len(last), tail_bytes=len(data), tail_sha256=hashlib.sha256(data).hexdigest())
            measured = seams() if seams is not None else None
            if measured is not None:
                meta["seams"] = measured

        return self._commit(key, self._stage(write, meta))  # each cleans its staging up if interrupted

    def tail(self, entry: Entry) -> np.ndarray | None:
        """The entry's lossless last frames, or None when it has none; a tail that does not load is discarded.
        Its header is checked against the recorded shape before anything is allocated for it."""
        if not entry.meta.get("tail_frames"):
            return None
        import hashlib

        import numpy as np

        expected = (entry.meta["tail_frames"], entry.meta["height"], entry.meta["width"], 3)
        try:
            data = self.store.read(self._rel(entry.key, TAIL), min(MAX_TAIL_BYTES, entry.meta["tail_bytes"]))
            if hashlib.sha256(data).hexdigest() != entry.meta.get("tail_sha256"):
                self.discard(entry.key, "its tail frames' content changed (their hash does not match)")
                raise CorruptEntry(entry.key)
            frames = _npy_uint8(data, expected)
        except (OSError, ValueError, Refused) as error:
            self.discard(entry.key, f"its tail frames do not load ({error})")
            raise CorruptEntry(entry.key) from error
        if frames.dtype != np.uint8 or frames.shape != expected:
            self.discard(entry.key, f"its tail frames are {frames.dtype} {frames.shape}, not uint8 {expected}")
            raise CorruptEntry(entry.key)
        return frames

    def put_clip(self, key: str, clip: bytes, meta: dict[str, Any], tail: bytes | None = None) -> Entry:
        """The entry for `key` from a clip encoded elsewhere (a Ray worker), stored as is: no second encode.

        `tail`: the bytes of its lossless tail (TAIL); without them the entry has none.
        """
        existing = self.get(key)
        if existing is not None:
            return existing
        meta = dict(meta)
        if tail is None:
            for name in ("tail_frames", "tail_bytes", "tail_sha256"):
                meta.pop(name, None)

        def write(_path: Path, keep: Callable[[str, bytes], None]) -> None:
            keep(CLIP, clip)
            if tail is not None:
                keep(TAIL, tail)

        return self._commit(key, self._stage(write, meta))  # each cleans its staging up if interrupted

    def tail_bytes(self, entry: Entry) -> bytes | None:
        """The file bytes of the entry's lossless tail, to send to another machine; None when it has none."""
        if not entry.meta.get("tail_frames"):
            return None
        try:
            return self.store.read(self._rel(entry.key, TAIL), min(MAX_TAIL_BYTES, entry.meta["tail_bytes"]))
        except (FileNotFoundError, Refused):
            return None

    def _commit(self, key: str, staging: str) -> Entry:
        """Rename a staged entry into place; if another writer finished it first, theirs is kept."""
        target = self._rel(key)
        try:
            self._clear_way(key, keep_entry=True)
            self.store.make_folder(key[:2])
            self.store.rename(staging, target)
        except OSError:
            if self.get(key) is None:
                self.store.remove_folder(staging)
                raise
            self.store.remove_folder(staging)  # someone else finished this entry: theirs is as good
        except BaseException:  # Ctrl-C before the rename: the staged folder must not outlive this run
            self.store.remove_folder(staging)
            raise
        self.store.sync(key[:2])
        entry = self.get(key)
        if entry is None:
            raise CorruptEntry(key)
        return entry

    def reencode(self, entry: Entry, keyframes: Sequence[int]) -> Entry:
        """The entry's clip encoded again from its decoded frames, with keyframes where the cut now needs them."""
        frames = self.read(entry)
        meta = dict(entry.meta, keyframes=sorted(keyframes), reencoded=round(time.time(), 3))
        tail = self.tail_bytes(entry)  # the lossless tail is the same frames: it comes along unchanged
        from storyforge.clipfile import poster_frame, write_clip

        def write(clip: Path, keep: Callable[[str, bytes], None]) -> None:
            write_clip(frames, clip, fps=meta["fps"],
                       keyframes=sorted({*meta["keyframes"], poster_frame(len(frames))}))
            if tail is not None:
                keep(TAIL, tail)

        staging = self._stage(write, meta)
        # Two renames: for a moment the entry is missing (a reader sees a miss), never half written.
        try:
            self._move_aside(self._rel(entry.key))
            self.store.rename(staging, self._rel(entry.key))
        except OSError:
            self.store.remove_folder(staging)
            if self.get(entry.key) is None:
                raise
        except BaseException:  # Ctrl-C between the renames: a miss next time, never a stray staged folder
            self.store.remove_folder(staging)
            raise
        self.store.sync(entry.key[:2])
        fresh = self.get(entry.key)
        if fresh is None:
            raise CorruptEntry(entry.key)
        return fresh

    def discard(self, key: str, why: str) -> None:
        """Remove a corrupt entry (moved aside first, so nobody reads it half deleted) and remember why."""
        if self.readonly:
            return  # found wrong, so not used; left for a run that owns the cache to discard
        with _quietly():
            self._move_aside(self._rel(key))
        self.discarded.append(f"cache entry {key[:12]} was discarded: {why}")

    def _clear_way(self, key: str, *, keep_entry: bool = False) -> None:
        """Remove what is not a folder (a link, a file, a FIFO) where the entry's folders belong, with a notice."""
        if self.readonly:
            return
        for rel in (key[:2], *(() if keep_entry else (self._rel(key),))):
            try:
                info = self.store.stat(rel)
            except Refused:
                return
            if info is not None and not stat.S_ISDIR(info.st_mode):
                self.store.remove(rel)  # a link goes as a link: what it points to is never touched
                self.discarded.append(f"cache entry {key[:12]} was discarded: {describe(info.st_mode)} stood at "
                                      f"{self.root / rel}")
                return
        if keep_entry:
            info = self.store.stat(self._rel(key))
            if info is not None and not stat.S_ISDIR(info.st_mode):
                self.store.remove(self._rel(key))

    # -- writing ---------------------------------------------------------------------------------

    def _stage(self, write: Callable[[Path, Callable[[str, bytes], None]], object], meta: dict[str, Any]) -> str:
        """A complete entry folder under root/tmp (its path relative to the root): the clip and its meta, flushed
        to disk. `write(clip path, keep)` encodes the clip at that path (an encoder writes by name, into this
        new private folder made through the door) and hands other files' bytes to `keep(name, bytes)`."""
        staging = f"tmp/{_owner()}-{secrets.token_hex(6)}"
        try:
            try:
                self.store.make_folder("tmp")
                path = self.store.make_folder(staging, private=True)
            except Refused:
                raise
            except OSError as error:
                raise RenderError(f"cannot write to the cache folder {self.root}: {error.strerror} (read-only?); "
                                  "make it writable, or render with --no-cache") from None
            write(path / CLIP, lambda name, data: self.store.write(f"{staging}/{name}", data))
            clip = self.store.stat(f"{staging}/{CLIP}")
            if clip is None or not stat.S_ISREG(clip.st_mode):
                raise RenderError(f"the clip was not written into {path}; check the cache folder {self.root}")
            meta["clip_bytes"] = clip.st_size
            with self.store.reader(f"{staging}/{CLIP}") as handle:
                meta["clip_sha256"] = _sha256_of(handle)
            self.store.write_text(f"{staging}/{META}", json.dumps(meta, indent=2, sort_keys=True) + "\n",
                                  durable=True)
            for name in (CLIP, TAIL):
                self.store.sync(f"{staging}/{name}", missing_ok=True)
            self.store.sync(staging)
        except BaseException:
            self.store.remove_folder(staging)
            raise
        return staging

    def _move_aside(self, rel: str) -> None:
        name = rel.rsplit("/", 1)[-1]
        aside = f"trash/{name}-{secrets.token_hex(4)}"
        try:
            if self.store.stat(rel) is None:
                return  # someone else removed it already
            self.store.make_folder("trash")
            self.store.rename(rel, aside)
        except (OSError, Refused):  # a read-only cache: the entry stays, is found wrong (and re-rendered) again
            return
        self.store.remove_folder(aside)

    def _sweep(self) -> None:
        """Remove what killed writers left behind: staging folders of dead processes on this host, and trash."""
        host = socket.gethostname()
        for folder in ("tmp", "trash", "keyframes"):  # a link or a file where the cache's own folders belong
            with _quietly():
                info = self.store.stat(folder)
                if info is not None and not stat.S_ISDIR(info.st_mode):
                    self.store.remove(folder)  # a link goes as a link: what it points to is never touched
                    self.discarded.append(f"{self.root / folder} was {describe(info.st_mode)}, not the cache's "
                                          "folder; removed it")
        with _quietly():
            for name in self.store.names("tmp"):
                owner, _, rest = name.rpartition("-")
                owner_host, _, pid = owner.rpartition("-")
                if owner_host == host and pid.isdigit() and rest and not _alive(int(pid)):
                    self.store.remove_folder(f"tmp/{name}")
            self.store.remove_folder("trash")


def present(root: Path) -> bool:
    """Whether a cache folder is at `root` (reached the way `open_root` does, never through a link); nothing is
    made."""
    try:
        Folder.open(root, below=_anchor(root)).close()
    except (OSError, StoryforgeError):
        return False
    return True


def _anchor(root: Path) -> Path:
    """Where the walk to a cache folder starts: the story's folder for `.storyforge/...`, else its parent."""
    parts = root.parts
    mine = max((n for n, part in enumerate(parts) if part == ".storyforge"), default=None)
    return Path(*parts[:mine]) if mine else root.parent


def open_root(root: Path) -> Folder:
    """The cache folder (or one inside it) through the door, made if needed. Below `.storyforge/` (the default
    cache beside a story) every component is walked from the story's folder without following a link; a folder
    named otherwise, its last component."""
    try:
        return Folder.open(root, create=True, below=_anchor(root))
    except Refused as refused:
        if "symbolic link" in str(refused):
            raise
        raise RenderError(f"cannot write to the cache folder {root}: something that is not a folder stands in its "
                          "place (read-only?); make it writable, or render with --no-cache") from None
    except OSError as error:
        raise RenderError(f"cannot write to the cache folder {root}: {error.strerror} (read-only?); make it "
                          "writable, or render with --no-cache") from None


def _npy_uint8(data: bytes, expected: tuple[int, ...]) -> np.ndarray:
    """A .npy file's uint8 array of shape `expected`, its header checked before anything is allocated for it."""
    import io

    import numpy as np
    from numpy.lib import format as npy

    stream = io.BytesIO(data)
    version = npy.read_magic(stream)
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise ValueError(f"unknown .npy version {version}")
    reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, fortran, dtype = reader(stream, max_header_size=10_000)
    if dtype != np.uint8 or fortran or tuple(shape) != tuple(expected):
        raise ValueError(f"its header says {dtype} {tuple(shape)}, not uint8 {tuple(expected)}")
    if len(data) - stream.tell() != math.prod(expected):
        raise ValueError(f"it holds {len(data) - stream.tell()} bytes of frames, not {math.prod(expected)}")
    return np.frombuffer(data, dtype=np.uint8, offset=stream.tell()).reshape(expected).copy()


# meta.json's keys and the types they must have; anything else is a damaged entry, discarded with a notice.
_META_SHAPE: dict[str, type | tuple[type, ...]] = {
    "key": str, "frames": int, "width": int, "height": int, "fps": int, "keyframes": list, "seconds": (int, float),
    "clip_bytes": int, "clip_sha256": str,
}
_LIMIT = 1_000_000  # frames, pixels a side, fps: far beyond any clip, small enough for any arithmetic


def _count(value: Any, low: int = 0, high: int = _LIMIT) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _meta_problem(meta: Any, key: str) -> str | None:
    """Why a meta.json cannot describe the entry `key` (every field storyforge reads back, typed and bounded)."""
    if not isinstance(meta, dict):
        return "its meta.json is not a mapping"
    for name, kind in _META_SHAPE.items():
        value = meta.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"its meta.json has no valid '{name}'" + (" (written by an older storyforge)"
                                                            if name == "clip_sha256" else "")
    if meta["key"] != key:
        return "its meta.json belongs to another entry"
    if not (_count(meta["frames"], 1) and _count(meta["width"], 2) and _count(meta["height"], 2)
            and _count(meta["fps"], 1) and _count(meta["clip_bytes"], 1, 10**13) and _finite(meta["seconds"])
            and len(meta["keyframes"]) <= _LIMIT and all(_count(k, 0, meta["frames"]) for k in meta["keyframes"])):
        return "its meta.json has impossible frame numbers"
    if meta.get("tail_frames") is not None and not (
            _count(meta["tail_frames"], 1, meta["frames"]) and _count(meta.get("tail_bytes"), 1, MAX_TAIL_BYTES)
            and isinstance(meta.get("tail_sha256"), str)):
        return "its meta.json describes its tail frames wrongly"
    if "seams" in meta and _seams_problem(meta["seams"]):
        return f"its meta.json's seams are not storyforge's ({_seams_problem(meta['seams'])})"
    return None


def _seams_problem(seams: Any) -> str | None:
    """What is wrong with a meta's `seams` (storyforge.seams.SeamMeter.result), or None."""
    if not isinstance(seams, dict):
        return "not a mapping"
    lines, windows = seams.get("seams", []), seams.get("windows", [])
    if not isinstance(lines, list) or len(lines) > _LIMIT or not all(
            isinstance(line, dict) and _count(line.get("frame")) and isinstance(line.get("kind"), str)
            and _finite(line.get("jump")) and _finite(line.get("color_shift")) for line in lines):
        return "'seams' is not a list of measured seams"
    if not isinstance(windows, list) or len(windows) > _LIMIT or not all(
            isinstance(colour, list) and len(colour) == 3 and all(_finite(v) for v in colour) for colour in windows):
        return "'windows' is not a list of colours"
    return None


def _sha256_of(handle: Any) -> str:
    import hashlib

    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


class CorruptEntry(Exception):
    """A cache entry failed a check when read and was discarded; its job must be rendered again."""

    def __init__(self, key: str):
        self.key = key
        super().__init__(f"cache entry {key} is corrupt and was discarded")


def _owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _quietly() -> Any:
    import contextlib

    return contextlib.suppress(OSError, Refused)
