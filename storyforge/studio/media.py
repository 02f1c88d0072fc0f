"""Files the studio shows: only those the output folder's manifest lists, opened without following links,
served with byte ranges (what a `<video>` needs to seek)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

TYPES = {".mp4": "video/mp4", ".png": "image/png", ".jpg": "image/jpeg"}
CHUNK = 256 * 1024


class NotServed(Exception):
    """A name the studio does not serve: not in the manifest, not media, or not a plain file below the folder."""


def open_listed(out: Path, name: str) -> tuple[int, int]:
    """(an open descriptor, the size) of `out/name` when the manifest lists `name` and it is media; each folder on
    the way and the file itself are opened through the folder door (storyforge.outdir), never following a link,
    and only a regular file is served."""
    from storyforge.outdir import open_listed as opened

    if PurePosixPath(name).suffix not in TYPES:
        raise NotServed(name)
    try:
        return opened(out, name)
    except OSError:
        raise NotServed(name) from None


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first range of a `Range: bytes=…` header as (start, end inclusive); None for the whole file.
    ValueError when it cannot be satisfied."""
    if not header:
        return None
    found = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*(?:,.*)?", header)
    if not found or (not found[1] and not found[2]):
        return None  # a form we do not read: the whole file is a valid answer
    if not found[1]:  # the last N bytes
        length = int(found[2])
        if length == 0 or size == 0:
            raise ValueError(header)
        return max(0, size - length), size - 1
    start = int(found[1])
    end = min(int(found[2]), size - 1) if found[2] else size - 1
    if start >= size or end < start:
        raise ValueError(header)
    return start, end


def chunks(handle: int, start: int, end: int) -> Iterator[bytes]:
    """Bytes `start`..`end` of the open file, then the descriptor closed (also when the client goes away)."""
    try:
        position = start
        while position <= end:
            data = os.pread(handle, min(CHUNK, end + 1 - position), position)
            if not data:
                break
            position += len(data)
            yield data
    finally:
        with contextlib.suppress(OSError):
            os.close(handle)
