"""Keyframes at render time: every start frame a plan needs, found in the cache or made, before any video.

The edit model is loaded once, runs every missing keyframe, and is freed before the video model loads: on a
GPU the two are never resident together. Pictures are cached by content like clips
(`<cache>/keyframes/<key[:2]>/<key>.png`, written beside and renamed into place) and linked into the output
folder as `keyframes/<scene>__<shot>.png`.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.atomic import link, read_bytes
from storyforge.confined import Folder, Refused, describe
from storyforge.errors import RenderError
from storyforge.plan.keys import digest
from storyforge.report import Host, KeyframeRecord
from storyforge.story.checks import file_stem

if TYPE_CHECKING:
    from storyforge.backends.keyframe import KeyframeBackend
    from storyforge.plan.model import Job, Keyframe, Plan

KEYFRAME_ENTRY_FORMAT = 1
MAX_KEYFRAME_BYTES = 200_000_000  # a 4K PNG of noise is ~35 MB
MAX_KEYFRAME_PIXELS = 16384 * 16384 // 4  # checked in the header, before anything is decoded


def keyframe_name(job: Job) -> str:
    """`keyframes/<scene>__<shot>.png`, relative to the output folder."""
    return "keyframes/" + file_stem(job.id) + ".png"


def candidate_name(job: Job, number: int) -> str:
    """`keyframes/<scene>__<shot>.k<N>.png`: candidate N of a shot with several, relative to the output folder."""
    return f"keyframes/{job.id.replace('/', '__')}.k{number}.png"


def keyframe_names(job: Job) -> list[str]:
    """Every picture of the job's keyframe in the output folder: the picked one, and each candidate's."""
    if job.keyframe is None:
        return []
    candidates = job.keyframe.candidates
    return [keyframe_name(job), *(candidate_name(job, n) for n in range(1, candidates + 1) if candidates > 1)]


def entry_key(identity: dict[str, Any], keyframe_key: str) -> str:
    """The cache key of a keyframe made by a model: its content key and the model's identity."""
    return digest({"format": KEYFRAME_ENTRY_FORMAT, "model": identity, "keyframe": keyframe_key})


@dataclass
class StartFrames:
    """The keyframes a render has: per job id, the cache entry key and the picture's file."""

    found: dict[str, tuple[str, Path]] = field(default_factory=dict)
    candidates: dict[str, dict[int, Path]] = field(default_factory=dict)  # shots with several: every picture
    records: list[KeyframeRecord] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # jobs whose keyframe is neither cached nor made
    notices: list[str] = field(default_factory=list)  # pictures found damaged and made again

    def start(self, job_id: str) -> Path | None:
        found = self.found.get(job_id)
        return found[1] if found else None

    def picked_bytes(self) -> dict[str, tuple[str, bytes]]:
        """Every picture a shot starts from, read through the door: job id -> (entry key, PNG bytes)."""
        return {job_id: (key, read_bytes(path, MAX_KEYFRAME_BYTES)) for job_id, (key, path) in self.found.items()}

    def pictures(self, job_id: str) -> tuple[list[tuple[str, bytes, KeyframeRecord]], str | None]:
        """The job's pictures (entry key, PNG bytes read through the door, record; every candidate when it has
        several) and the entry key of the one it starts from."""
        picked = self.found.get(job_id)
        found = []
        for record in self.records:
            if record.id != job_id:
                continue
            path = self.candidates.get(job_id, {}).get(record.candidate) if record.candidate is not None \
                else (picked[1] if picked else None)
            if path is not None:  # a picture is stored as <entry key>.png
                found.append((path.stem, read_bytes(path, MAX_KEYFRAME_BYTES), record))
        return found, picked[0] if picked else None


class KeyframeStore:
    """Keyframe pictures by entry key under `root`; a picture that exists is complete.

    Reached through the folder door like the clip cache (storyforge.cache): a link, a FIFO or a folder where a
    picture belongs, a file too large, or a PNG whose header claims more pixels than any keyframe has, is removed
    with a notice (never followed, never decoded) and the picture is made again.
    """

    def __init__(self, root: Path):
        from storyforge.cache import open_root

        self.root = Path(os.path.abspath(root))
        self.store: Folder = open_root(self.root)
        self.discarded: list[str] = []

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.png"

    @staticmethod
    def _rel(key: str) -> str:
        return f"{key[:2]}/{key}.png"

    def get(self, key: str) -> Path | None:
        """The picture for `key`, or None; one that fails its checks is removed, to be made again."""
        rel = self._rel(key)
        try:
            info = self.store.stat(rel)
        except Refused:  # not a folder where the folder of two letters belongs: it goes (a link as a link)
            self.store.remove(key[:2])
            self.discarded.append(f"keyframe {key[:12]} was discarded: {self.root / key[:2]} was not a folder")
            return None
        if info is None:
            return None
        problem = None if stat.S_ISREG(info.st_mode) else f"it is {describe(info.st_mode)}"
        if problem is None:
            try:
                problem = picture_problem(self.store.read(rel, MAX_KEYFRAME_BYTES))
            except (Refused, OSError) as error:
                problem = str(error)
        if problem is not None:
            if stat.S_ISDIR(info.st_mode):
                self.store.remove_folder(rel)
            else:
                self.store.remove(rel)
            self.discarded.append(f"keyframe {key[:12]} was discarded: {problem}")
            return None
        return self.path(key)

    def put_bytes(self, key: str, png: bytes) -> Path:
        """Keep a picture another process made (its PNG file's bytes, checked first) under `key`."""
        problem = picture_problem(png)
        if problem is not None:
            from storyforge.errors import RenderError

            raise RenderError(f"keyframe {key[:12]} came back from a worker damaged: {problem}")
        rel = self._rel(key)
        if self.store.stat(rel) is not None and not self.store.is_file(rel):
            self.store.remove_folder(rel)
        self.store.write(rel, png, durable=True)
        return self.path(key)

    def put(self, key: str, picture: Any) -> Path:
        from PIL import Image

        rel = self._rel(key)
        if self.store.stat(rel) is not None and not self.store.is_file(rel):
            self.store.remove_folder(rel)
        with self.store.staged(rel, suffix=".png", durable=True) as temporary:
            Image.fromarray(picture).save(temporary, format="PNG")
        return self.path(key)


def picture_problem(data: bytes) -> str | None:
    """Why these bytes are not a keyframe picture storyforge wrote (a PNG of a sane size that decodes), or None.
    The size comes from the header, before anything is decoded."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as picture:
            width, height = picture.size
            if width * height > MAX_KEYFRAME_PIXELS:
                return f"its header claims {width}x{height} pixels, more than any keyframe"
            picture.load()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        return f"it does not decode as a PNG ({error.__class__.__name__})"
    return None


def model_identity(model: str) -> dict[str, Any]:
    """The edit model's identity without loading it (see storyforge.backends.keyframe.model_identity)."""
    from storyforge.backends.keyframe import model_identity as identity

    return {"backend": "image-edit", "model": identity(model)}


def prepare(plan: Plan, jobs: Sequence[Job], store: KeyframeStore, *, make: Sequence[str],
            load: Callable[[], KeyframeBackend] | None = None,
            on_done: Callable[[Job, str, float], None] | None = None, close: bool = True) -> StartFrames:
    """The keyframes of `jobs`: cached ones found; those of jobs in `make` that are missing rendered with one
    backend from `load()` (loaded on first need, closed before this returns unless `close` is False: a model
    holder that lent it frees it)."""
    frames = StartFrames()
    backend: KeyframeBackend | None = None
    from storyforge.backends.model_folder import NotOnThisMachine

    identities: dict[str, dict[str, Any] | None] = {}
    try:
        for job in jobs:
            if job.keyframe is None:
                continue
            several = job.keyframe.candidates > 1
            for keyframe in job.keyframe.all_candidates:  # the picked one is among them
                if keyframe.model not in identities:
                    try:
                        identities[keyframe.model] = model_identity(keyframe.model)
                    except NotOnThisMachine:  # nothing made by a model this machine lacks can be in its cache
                        identities[keyframe.model] = None
                identity = identities[keyframe.model]
                if identity is None:
                    if keyframe.pick == job.keyframe.pick:
                        frames.missing.append(job.id)
                    continue
                key = entry_key(identity, keyframe.key)
                started, began = time.perf_counter(), time.time()
                path = store.get(key)
                status = "cached"
                if path is None and job.id in make and load is not None:
                    if backend is None:
                        backend = load()
                    picture = backend.render(keyframe)
                    refuse_blank(job, keyframe, picture)
                    path = store.put(key, picture)
                    status = "rendered"
                picked = keyframe.pick == job.keyframe.pick
                if path is None:
                    if picked:
                        frames.missing.append(job.id)
                    continue
                if several:
                    frames.candidates.setdefault(job.id, {})[keyframe.pick] = path
                if picked:
                    frames.found[job.id] = (key, path)
                seconds = round(time.perf_counter() - started, 3)
                image = candidate_name(job, keyframe.pick) if several else keyframe_name(job)
                frames.records.append(KeyframeRecord(job.id, keyframe.key, status, image, seconds,
                                                     keyframe.pick if several else None, round(began, 3),
                                                     round(time.time(), 3),
                                                     Host.here() if status == "rendered" else None))
                if on_done is not None and (picked or status == "rendered"):
                    on_done(job, status, seconds)
    finally:
        if backend is not None and close:
            backend.close()  # the edit model leaves before the video model arrives
        frames.notices.extend(store.discarded)
    return frames


def refuse_blank(job: Job, keyframe: Keyframe, picture: Any) -> None:
    """A keyframe that came out blank (every pixel one colour; a model that divided 0 by 0 gives NaN, which the
    backend turns into black) would start the shot from nothing: a RenderError at the shot, saying what to change."""
    import numpy as np

    picture = np.asarray(picture)
    if picture.size and np.isfinite(picture).all() and (picture != picture.reshape(-1, picture.shape[-1])[0]).any():
        return
    what = "not a number" if not np.isfinite(picture).all() else "one colour, " + (
        "rgb(" + ", ".join(str(int(v)) for v in picture.reshape(-1, picture.shape[-1])[0]) + ")")
    raise RenderError(f"{job.source}: {job.id}: its keyframe came out blank ({what}) from {keyframe.model} at "
                      f"{keyframe.steps} step{'s' if keyframe.steps != 1 else ''}; give `keyframes.steps` more steps "
                      f"(the keyframes at {keyframe.source}), or another `keyframes.seed` or prompt for this shot")


def write_out(plan: Plan, frames: StartFrames, out: Path, *, whole: bool) -> None:
    """Link each keyframe into `out/keyframes/`; a whole render removes pictures of shots that have none now."""
    for job_id, (_key, path) in frames.found.items():
        link(path, out / keyframe_name(plan.job(job_id)))  # both through the door (storyforge.confined)
    for job_id, pictures in frames.candidates.items():
        for number, path in pictures.items():
            link(path, out / candidate_name(plan.job(job_id), number))
    if whole:  # only pictures storyforge wrote there (see storyforge.outdir)
        from storyforge.outdir import remove_stale

        kept = [out / keyframe_name(plan.job(job_id)) for job_id in frames.found]
        kept += [out / candidate_name(plan.job(job_id), n) for job_id, pictures in frames.candidates.items()
                 for n in pictures]
        remove_stale(out, "keyframes", kept)

