"""Keyframes at render time: every start frame a plan needs, found in the cache or made, before any video.

The edit model is loaded once, runs every missing keyframe, and is freed before the video model loads: on a
GPU the two are never resident together. Pictures are cached by content like clips
(`<cache>/keyframes/<key[:2]>/<key>.png`, written beside and renamed into place) and linked into the output
folder as `keyframes/<scene>__<shot>.png`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.atomic import link, replacing
from storyforge.plan.keys import digest
from storyforge.report import KeyframeRecord

if TYPE_CHECKING:
    from storyforge.backends.keyframe import KeyframeBackend
    from storyforge.plan.model import Job, Plan

KEYFRAME_ENTRY_FORMAT = 1


def keyframe_name(job: Job) -> str:
    """`keyframes/<scene>__<shot>.png`, relative to the output folder."""
    return "keyframes/" + job.id.replace("/", "__") + ".png"


def entry_key(identity: dict[str, Any], keyframe_key: str) -> str:
    """The cache key of a keyframe made by a model: its content key and the model's identity."""
    return digest({"format": KEYFRAME_ENTRY_FORMAT, "model": identity, "keyframe": keyframe_key})


@dataclass
class StartFrames:
    """The keyframes a render has: per job id, the cache entry key and the picture's file."""

    found: dict[str, tuple[str, Path]] = field(default_factory=dict)
    records: list[KeyframeRecord] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # jobs whose keyframe is neither cached nor made

    def start(self, job_id: str) -> Path | None:
        found = self.found.get(job_id)
        return found[1] if found else None


class KeyframeStore:
    """Keyframe pictures by entry key under `root`; a picture that exists is complete."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.png"

    def get(self, key: str) -> Path | None:
        """The picture for `key`, or None; one that does not decode (a damaged disk) is removed, to be made again."""
        from PIL import Image, UnidentifiedImageError

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with Image.open(path) as picture:
                picture.load()
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
            path.unlink(missing_ok=True)
            return None
        return path

    def put_bytes(self, key: str, png: bytes) -> Path:
        """Keep a picture another process made (its PNG file's bytes) under `key`."""
        target = self.path(key)
        with replacing(target, suffix=".png") as temporary:
            temporary.write_bytes(png)
        return target

    def put(self, key: str, picture: Any) -> Path:
        from PIL import Image

        target = self.path(key)
        with replacing(target, suffix=".png") as temporary:
            Image.fromarray(picture).save(temporary, format="PNG")
        return target


def model_identity(model: str) -> dict[str, Any]:
    """The edit model's identity without loading it (see storyforge.backends.keyframe.model_identity)."""
    from storyforge.backends.keyframe import model_identity as identity

    return {"backend": "image-edit", "model": identity(model)}


def prepare(plan: Plan, jobs: Sequence[Job], store: KeyframeStore, *, make: Sequence[str],
            load: Callable[[], KeyframeBackend] | None = None,
            on_done: Callable[[Job, str, float], None] | None = None) -> StartFrames:
    """The keyframes of `jobs`: cached ones found; those of jobs in `make` that are missing rendered with one
    backend from `load()` (loaded on first need, closed before this returns)."""
    from storyforge.backends.model_folder import NotOnThisMachine

    frames = StartFrames()
    backend: KeyframeBackend | None = None
    identities: dict[str, dict[str, Any] | None] = {}
    try:
        for job in jobs:
            keyframe = job.keyframe
            if keyframe is None:
                continue
            if keyframe.model not in identities:
                try:
                    identities[keyframe.model] = model_identity(keyframe.model)
                except NotOnThisMachine:  # nothing made by a model this machine lacks can be in its cache
                    identities[keyframe.model] = None
            identity = identities[keyframe.model]
            if identity is None:
                frames.missing.append(job.id)
                continue
            key = entry_key(identity, keyframe.key)
            started = time.perf_counter()
            path = store.get(key)
            status = "cached"
            if path is None and job.id in make and load is not None:
                if backend is None:
                    backend = load()
                picture = backend.render(keyframe)
                path = store.put(key, picture)
                status = "rendered"
            if path is None:
                frames.missing.append(job.id)
                continue
            frames.found[job.id] = (key, path)
            seconds = round(time.perf_counter() - started, 3)
            frames.records.append(KeyframeRecord(job.id, keyframe.key, status, keyframe_name(job), seconds))
            if on_done is not None:
                on_done(job, status, seconds)
    finally:
        if backend is not None:
            backend.close()  # the edit model leaves before the video model arrives
    return frames


def write_out(plan: Plan, frames: StartFrames, out: Path, *, whole: bool) -> None:
    """Link each keyframe into `out/keyframes/`; a whole render removes pictures of shots that have none now."""
    folder = out / "keyframes"
    if frames.found:
        folder.mkdir(parents=True, exist_ok=True)
    for job_id, (_key, path) in frames.found.items():
        link(path, out / keyframe_name(plan.job(job_id)))
    if whole and folder.is_dir():  # only pictures storyforge wrote there (see storyforge.outdir)
        from storyforge.outdir import remove_stale

        remove_stale(out, "keyframes", (out / keyframe_name(plan.job(job_id)) for job_id in frames.found))

