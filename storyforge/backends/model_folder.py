"""A local model folder's identity: a content hash of its files, each file read once per state of the file.

Every file's own sha256 is remembered on disk by its (path, size, mtime, inode), as DVC and git's index do:
a second render of a story that names a 60 GB folder stats the files and reads none. A file whose stat
changed (rewritten, replaced, touched) is read again. The digests live in storyforge's per-user folder
(`$STORYFORGE_HOME/folder-digests/`, one small JSON file per model folder), written whole and renamed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from storyforge.errors import RenderError

DIGESTS = "folder-digests"
DIGEST_FORMAT = 1

# per process as well: (resolved folder, each file's name and stat) -> the folder's sha256
_HASHES: dict[tuple[str, tuple[tuple[str, int, int, int], ...]], str] = {}


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
    """sha256 over the folder's file names, sizes and each file's sha256; a file is read only when its stat is
    not the one its remembered digest was made from."""
    folder = Path(folder).resolve()
    files = [(name, path, path.stat()) for name, path in model_files(folder)]
    signature = tuple((name, st.st_size, st.st_mtime_ns, st.st_ino) for name, _, st in files)
    key = (str(folder), signature)
    if key in _HASHES:
        return _HASHES[key]
    remembered = _read(folder)
    known: dict[str, dict[str, Any]] = {}
    digest = hashlib.sha256()
    for name, path, st in files:
        stat = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}
        entry = remembered.get(name)
        if not (isinstance(entry, dict) and all(entry.get(k) == v for k, v in stat.items())
                and isinstance(entry.get("sha256"), str)):
            entry = {**stat, "sha256": file_sha256(path)}
        known[name] = entry
        digest.update(f"{name}\0{st.st_size}\0{entry['sha256']}\0".encode())
    if known != remembered:
        _write(folder, known)
    _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _store(folder: Path) -> Path:
    from storyforge.backends.tiny import storyforge_home

    name = hashlib.sha256(str(folder).encode()).hexdigest()[:32]
    return storyforge_home() / DIGESTS / f"{name}.json"


def _read(folder: Path) -> dict[str, Any]:
    """The remembered digests of `folder`'s files by name; {} when there are none or they are unreadable."""
    try:
        data = json.loads(_store(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("format") != DIGEST_FORMAT or data.get("folder") != str(folder):
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _write(folder: Path, files: dict[str, dict[str, Any]]) -> None:
    """Remember the digests; a folder that cannot be written only costs the next render the reading."""
    from storyforge.atomic import write_text
    from storyforge.errors import StoryforgeError

    text = json.dumps({"format": DIGEST_FORMAT, "folder": str(folder), "files": files}, sort_keys=True)
    try:
        write_text(_store(folder), text)
    except (OSError, StoryforgeError):
        return


class NotOnThisMachine(RenderError):
    """A hub model whose files the local Hugging Face cache does not hold: its identity (the snapshot's commit)
    cannot be known without downloading it, and storyforge never downloads in the middle of a render."""


def hub_commit(repo: str) -> str:
    """The commit of the snapshot of `repo` the local Hugging Face cache holds (what its `main` ref points to),
    found offline: a new snapshot behind the same hub id is a new identity, so its clips render again."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id=repo, filename="model_index.json")
    if not isinstance(found, str):
        raise NotOnThisMachine(repo)
    return Path(found).parent.name


def missing_model(setting: str, repo: str, size: str = "", alternative: str = "") -> str:
    """What to do when a hub model is not on this machine: the words every model setting uses."""
    return (f"{setting}: the {'edit model' if setting == 'keyframes.model' else 'model'} {repo}{size} is not on "
            "this machine, and storyforge does not download it in the middle of a render. Download it once with "
            f"`hf download {repo}`, or set {setting} to a local folder that holds it{alternative}")
