"""A local model folder's identity: a content hash of its weight files, computed once per state of the files."""

from __future__ import annotations

import hashlib
from pathlib import Path

# (resolved folder, each file's name, size and mtime) -> sha256: a folder of gigabytes is read once per process,
# and again only when a file changes
_HASHES: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


def model_files(folder: Path) -> list[tuple[str, Path]]:
    """The folder's files as (relative name, path), sorted; hidden entries (.cache/huggingface download metadata,
    .git) hold timestamps, not weights, so they are left out."""
    files = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files.append((relative.as_posix(), path))
    return sorted(files)


def folder_sha256(folder: Path) -> str:
    """sha256 over the folder's file names, sizes and contents; recomputed only when a file's stat changes."""
    files = model_files(folder)
    signature = tuple((name, path.stat().st_size, path.stat().st_mtime_ns) for name, path in files)
    key = (str(folder.resolve()), signature)
    if key not in _HASHES:
        digest = hashlib.sha256()
        for name, path in files:
            digest.update(f"{name}\0{path.stat().st_size}\0".encode())
            with path.open("rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 20), b""):
                    digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]
