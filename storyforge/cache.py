"""The content-addressed clip cache: entries written to a temp dir and renamed into place, so an entry that exists is complete."""  # noqa: E501

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    """Clips by entry key under `root`; every write goes through `root/tmp` and one rename."""

    root: Path
    # what was wrong with entries found corrupt and discarded, for the run's notices
    discarded: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self._sweep()

    def folder(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> Entry | None:
        """The complete entry for `key`, or None; an entry that fails its checks is discarded."""
        folder = self.folder(key)
        if not folder.is_dir():
            return None
        try:
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
            problem = _meta_problem(meta, key) or _clip_problem(folder / CLIP, meta)
            if problem is None and meta.get("tail_bytes") is not None and \
                    (folder / TAIL).stat().st_size != meta["tail_bytes"]:
                problem = "its tail frames changed"  # their hash is checked when they are read (Cache.tail)
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
            problem = f"unreadable ({error.__class__.__name__})"
        if problem is not None:
            self.discard(key, problem)
            return None
        return Entry(key, folder, meta)

    def read(self, entry: Entry, *, last: int | None = None) -> np.ndarray:
        """The entry's decoded frames (only the `last` few kept, when given: every frame is still decoded and
        counted); a clip that does not decode to its recorded frame count is discarded."""
        from collections import deque

        import numpy as np

        from storyforge.clipfile import ClipError, iter_frames

        kept: deque[np.ndarray] = deque(maxlen=last)
        count = 0
        try:
            for frame in iter_frames(entry.clip):
                kept.append(frame)
                count += 1
        except (ClipError, OSError) as error:
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
        from storyforge.clipfile import write_clip

        forced = sorted(keyframes)
        meta = {"format": ENTRY_FORMAT, "key": key, "job": job.id, "job_key": job.key, "fps": fps,
                "keyframes": forced, "backend": identity, "created": round(time.time(), 3)}

        def write(clip: Path) -> None:
            count, height, width = write_clip(frames, clip, fps=fps, keyframes=forced)
            took = seconds() if callable(seconds) else seconds
            meta.update(frames=count, width=width, height=height, seconds=round(took, 3))
            last = tail() if tail is not None else None
            if last is not None and len(last):
                import numpy as np

                np.save(clip.with_name(TAIL), np.ascontiguousarray(last), allow_pickle=False)
                meta.update(tail_frames=len(last), tail_bytes=clip.with_name(TAIL).stat().st_size,
                            tail_sha256=_sha256(clip.with_name(TAIL)))
            measured = seams() if seams is not None else None
            if measured is not None:
                meta["seams"] = measured

        return self._commit(key, self._stage(write, meta))  # each cleans its staging up if interrupted

    def tail(self, entry: Entry) -> np.ndarray | None:
        """The entry's lossless last frames, or None when it has none; a tail that does not load is discarded."""
        if not entry.meta.get("tail_frames"):
            return None
        import hashlib
        import io

        import numpy as np

        try:
            data = (entry.folder / TAIL).read_bytes()
            if hashlib.sha256(data).hexdigest() != entry.meta.get("tail_sha256"):
                self.discard(entry.key, "its tail frames' content changed (their hash does not match)")
                raise CorruptEntry(entry.key)
            frames = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError) as error:
            self.discard(entry.key, f"its tail frames do not load ({error.__class__.__name__})")
            raise CorruptEntry(entry.key) from error
        expected = (entry.meta["tail_frames"], entry.meta["height"], entry.meta["width"], 3)
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

        def write(path: Path) -> None:
            path.write_bytes(clip)
            if tail is not None:
                path.with_name(TAIL).write_bytes(tail)

        return self._commit(key, self._stage(write, meta))  # each cleans its staging up if interrupted

    def tail_bytes(self, entry: Entry) -> bytes | None:
        """The file bytes of the entry's lossless tail, to send to another machine; None when it has none."""
        path = entry.folder / TAIL
        return path.read_bytes() if entry.meta.get("tail_frames") and path.is_file() else None

    def _commit(self, key: str, staging: Path) -> Entry:
        """Rename a staged entry into place; if another writer finished it first, theirs is kept."""
        target = self.folder(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, target)
        except OSError:
            if not target.is_dir():
                shutil.rmtree(staging, ignore_errors=True)
                raise
            shutil.rmtree(staging, ignore_errors=True)  # someone else finished this entry: theirs is as good
        except BaseException:  # Ctrl-C before the rename: the staged folder must not outlive this run
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(target.parent)
        entry = self.get(key)
        if entry is None:
            raise CorruptEntry(key)
        return entry

    def reencode(self, entry: Entry, keyframes: Sequence[int]) -> Entry:
        """The entry's clip encoded again from its decoded frames, with keyframes where the cut now needs them."""
        frames = self.read(entry)
        meta = dict(entry.meta, keyframes=sorted(keyframes), reencoded=round(time.time(), 3))
        from storyforge.clipfile import write_clip

        def write(clip: Path) -> None:
            write_clip(frames, clip, fps=meta["fps"], keyframes=meta["keyframes"])
            if (entry.folder / TAIL).exists():  # the lossless tail is the same frames: it comes along unchanged
                shutil.copyfile(entry.folder / TAIL, clip.with_name(TAIL))

        staging = self._stage(write, meta)
        # Two renames: for a moment the entry is missing (a reader sees a miss), never half written.
        try:
            self._move_aside(entry.folder)
            os.replace(staging, entry.folder)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not entry.folder.is_dir():
                raise
        except BaseException:  # Ctrl-C between the renames: a miss next time, never a stray staged folder
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(entry.folder.parent)
        fresh = self.get(entry.key)
        if fresh is None:
            raise CorruptEntry(entry.key)
        return fresh

    def discard(self, key: str, why: str) -> None:
        """Remove a corrupt entry (moved aside first, so nobody reads it half deleted) and remember why."""
        folder = self.folder(key)
        if folder.exists():
            self._move_aside(folder)
        self.discarded.append(f"cache entry {key[:12]} was discarded: {why}")

    # -- writing ---------------------------------------------------------------------------------

    def _stage(self, write: Callable[[Path], object], meta: dict[str, Any]) -> Path:
        """A complete entry folder under root/tmp: the clip (written by `write`) and its meta, flushed to disk."""
        staging = self.root / "tmp" / f"{_owner()}-{secrets.token_hex(6)}"
        try:
            try:
                staging.mkdir(parents=True)
            except OSError as error:
                from storyforge.errors import RenderError

                raise RenderError(f"cannot write to the cache folder {self.root}: {error.strerror} (read-only?); "
                                  "make it writable, or render with --no-cache") from None
            write(staging / CLIP)
            meta["clip_bytes"] = (staging / CLIP).stat().st_size
            meta["clip_sha256"] = _sha256(staging / CLIP)
            (staging / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            for name in (CLIP, META, TAIL):
                if (staging / name).exists():
                    _fsync_file(staging / name)
            _fsync_dir(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def _move_aside(self, folder: Path) -> None:
        trash = self.root / "trash"
        try:
            trash.mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        aside = trash / f"{folder.name}-{secrets.token_hex(4)}"
        try:
            os.replace(folder, aside)
        except FileNotFoundError:
            return  # someone else removed it already
        except OSError:  # a read-only cache: the entry stays, and is found wrong (and re-rendered) again next time
            return
        shutil.rmtree(aside, ignore_errors=True)

    def _sweep(self) -> None:
        """Remove what killed writers left behind: staging folders of dead processes on this host, and trash."""
        host = socket.gethostname()
        for staging in (self.root / "tmp").glob("*"):
            name, _, rest = staging.name.rpartition("-")
            owner_host, _, pid = name.rpartition("-")
            if owner_host == host and pid.isdigit() and rest and not _alive(int(pid)):
                shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(self.root / "trash", ignore_errors=True)


# meta.json's keys and the types they must have; anything else is a damaged entry, discarded with a notice.
_META_SHAPE: dict[str, type | tuple[type, ...]] = {
    "key": str, "frames": int, "width": int, "height": int, "fps": int, "keyframes": list, "seconds": (int, float),
    "clip_bytes": int, "clip_sha256": str,
}


def _meta_problem(meta: Any, key: str) -> str | None:
    if not isinstance(meta, dict):
        return "its meta.json is not a mapping"
    for name, kind in _META_SHAPE.items():
        value = meta.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"its meta.json has no valid '{name}'" + (" (written by an older storyforge)"
                                                            if name == "clip_sha256" else "")
    if meta["key"] != key:
        return "its meta.json belongs to another entry"
    if meta["frames"] <= 0 or not all(isinstance(k, int) and not isinstance(k, bool) for k in meta["keyframes"]):
        return "its meta.json has impossible frame numbers"
    return None


def _clip_problem(clip: Path, meta: dict[str, Any]) -> str | None:
    """The clip's size, then its bytes, against what was recorded: garbage of the right size is caught too."""
    if clip.stat().st_size != meta["clip_bytes"]:
        return "its clip or meta changed"
    if _sha256(clip) != meta["clip_sha256"]:
        return "its clip's content changed (its hash does not match)"
    return None


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
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
    except PermissionError:
        return True
    return True


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(fd)
