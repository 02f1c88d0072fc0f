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

if TYPE_CHECKING:
    from storyforge.backends.keyframe import KeyframeBackend
    from storyforge.plan.model import Job, Plan

KEYFRAME_ENTRY_FORMAT = 1


def keyframe_name(job: Job) -> str:
    """`keyframes/<scene>__<shot>.png`, relative to the output folder."""
    return "keyframes/" + job.id.replace("/", "__") + ".png"


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


@dataclass(frozen=True)
class KeyframeRecord:
    """One keyframe's line in run.json."""

    id: str  # the job's id
    key: str  # the keyframe's content key (as in the plan)
    status: str  # rendered | cached
    image: str  # relative to the output folder
    seconds: float
    candidate: int | None = None  # which candidate, when the shot has several

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "status": self.status, "image": self.image, "seconds": self.seconds,
                **({"candidate": self.candidate} if self.candidate is not None else {})}


@dataclass
class StartFrames:
    """The keyframes a render has: per job id, the cache entry key and the picture's file."""

    found: dict[str, tuple[str, Path]] = field(default_factory=dict)
    candidates: dict[str, dict[int, Path]] = field(default_factory=dict)  # shots with several: every picture
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
    frames = StartFrames()
    backend: KeyframeBackend | None = None
    identities: dict[str, dict[str, Any]] = {}
    try:
        for job in jobs:
            if job.keyframe is None:
                continue
            several = job.keyframe.candidates > 1
            for keyframe in job.keyframe.all_candidates:  # the picked one is among them
                if keyframe.model not in identities:
                    identities[keyframe.model] = model_identity(keyframe.model)
                key = entry_key(identities[keyframe.model], keyframe.key)
                started = time.perf_counter()
                path = store.get(key)
                status = "cached"
                if path is None and job.id in make and load is not None:
                    if backend is None:
                        backend = load()
                    picture = backend.render(keyframe)
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
                                                     keyframe.pick if several else None))
                if on_done is not None and (picked or status == "rendered"):
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
    for job_id, pictures in frames.candidates.items():
        for number, path in pictures.items():
            link(path, out / candidate_name(plan.job(job_id), number))
    if whole and folder.is_dir():  # only pictures storyforge wrote there (see storyforge.outdir)
        from storyforge.outdir import remove_stale

        kept = [out / keyframe_name(plan.job(job_id)) for job_id in frames.found]
        kept += [out / candidate_name(plan.job(job_id), n) for job_id, pictures in frames.candidates.items()
                 for n in pictures]
        remove_stale(out, "keyframes", kept)

