"""What the page shows, as JSON: the plan with the lock's choices, what the output folder holds, what is stale.

Recomputed only when the story, the lock or the render's bookkeeping changed on disk (by their file stats), so
the page may ask every second. A story that stops validating keeps the last good plan on the page, with its
problems at `file:line`."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.errors import StoryError, StoryforgeError

if TYPE_CHECKING:
    from storyforge.plan.model import Plan


def _stat(path: Path) -> tuple[int, int, int] | None:
    from storyforge.atomic import regular

    info = regular(path)  # through the door: a link or a FIFO is no file to show
    if info is None:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


class Film:
    """The story and its output folder as the page sees them; `state()` is cheap when nothing changed."""

    def __init__(self, story: Path, out: Path, story_arg: str):
        from storyforge.enhance.lock import lock_path
        from storyforge.outdir import MANIFEST

        self.story, self.out, self.story_arg = story, out, story_arg
        self.watched = [story, lock_path(story), out / "run.json", out / MANIFEST, out / "film.mp4"]
        self._lock = threading.Lock()
        self._seen: object = None
        self._state: dict[str, Any] = {}
        self.plan: Plan | None = None  # the last plan that compiled

    def state(self) -> dict[str, Any]:
        with self._lock:
            seen = [_stat(path) for path in self.watched]
            if seen != self._seen:
                self._state = self._compute()
                self._seen = seen
            return self._state

    def _compute(self) -> dict[str, Any]:
        from storyforge import api

        problems: list[dict[str, Any]] = []
        try:
            self.plan = api.plan(self.story)
        except StoryError as error:
            problems = [{"file": p.file, "line": p.line, "where": p.where, "message": p.message, "text": str(p)}
                        for p in error.problems]
        except StoryforgeError as error:
            problems = [{"file": str(self.story_arg), "line": 0, "where": "", "message": str(error),
                         "text": str(error)}]
        except (OSError, ValueError) as error:  # the file half-written by an editor that saves in place
            problems = [{"file": str(self.story_arg), "line": 0, "where": "", "message": str(error),
                         "text": f"{self.story_arg}: {error}"}]
        state = describe(self.plan, self.out, self.story_arg) if self.plan is not None else {
            "shots": [], "stale": False, "to_render": [], "to_cut": [], "film": None}
        state["problems"] = problems
        state["version"] = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]
        return state


def run_json(out: Path) -> dict[str, Any]:
    """run.json's fields, checked when read through the door (storyforge.readback); {} when there is none."""
    from storyforge.outdir import looking
    from storyforge.readback import read_run

    with looking(out) as folder:
        return read_run(folder).to_json() if folder is not None else {}


def _present(out: Path, name: str) -> bool:
    """Whether `name` is a regular file of `out`, asked through the door (a link is not)."""
    return _stat(out / name) is not None


def media_url(out: Path, name: str) -> str:
    """The page's address of a listed file, with its version so a browser never shows an older one."""
    from urllib.parse import quote

    stat = _stat(out / name)
    version = hashlib.sha256(repr(stat).encode()).hexdigest()[:10]
    return f"/media/{quote(name)}?v={version}"


def rendered_takes(record: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """run.json's takes of one job by key (a job of one take is its own)."""
    if not isinstance(record, dict):
        return {}
    entries = record.get("takes") if isinstance(record.get("takes"), list) else [
        {"take": 1, "key": record.get("key"), "status": record.get("status"), "clip": record.get("clip"),
         "seconds": record.get("seconds")}]
    return {entry["key"]: entry for entry in entries if isinstance(entry, dict) and isinstance(entry.get("key"), str)}


def describe(plan: Plan, out: Path, story_arg: str) -> dict[str, Any]:
    """The film for the page and for `GET /api/film` (see DESIGN.md section 9 for the fields others rely on)."""
    from storyforge.console import timecode
    from storyforge.enhance.lock import read_choices
    from storyforge.keyframes import candidate_name, keyframe_name
    from storyforge.outdir import read_manifest
    from storyforge.review import take_clip

    run = run_json(out)
    listed = read_manifest(out)
    jobs = run.get("jobs") if isinstance(run.get("jobs"), list) else []  # a damaged run.json shows as no render
    records = {job["id"]: job for job in jobs if isinstance(job, dict) and isinstance(job.get("id"), str)}
    choices = read_choices(plan.story)
    seams: dict[str, list[dict[str, Any]]] = {}
    for seam in run.get("seams") if isinstance(run.get("seams"), list) else []:
        if isinstance(seam, dict) and isinstance(seam.get("job"), str) and _whole(seam.get("frame")):
            seams.setdefault(seam["job"], []).append(seam)
    film = "film.mp4" if "film.mp4" in listed and _present(out, "film.mp4") else None
    shots = []
    for job in plan.jobs:
        record = records.get(job.id)
        rendered = rendered_takes(record)
        in_cut = record is not None and record.get("key") == job.key and film is not None
        cut_take = record.get("take", 1) if isinstance(record, dict) else None
        takes = []
        for take in job.all_takes:
            name = take_clip(job, take.take)
            entry = rendered.get(take.key)
            clip = name if name in listed and _present(out, name) and entry is not None else None
            takes.append({
                "take": take.take, "clip": clip, "url": media_url(out, name) if clip else None,
                "rejected": take.take in choices.rejected.get(job.id, ()), "note": choices.notes.get(job.id, {}).get(
                    take.take, ""), "seed": take.seed, "key": take.key,
                "status": str(entry.get("status") or "rendered") if entry else "not rendered",
                "seconds": _number(entry.get("seconds")) if entry else None,
                "command": f"storyforge pick {_shell(story_arg)} {job.id} {take.take}"})
        shot_seams = [_seam(seam, plan.fps) for seam in seams.get(job.id, [])]
        for entry in takes:  # the seam report measures the take in the cut: its scores
            entry["scores"] = [seam for seam in shot_seams if seam["jump"] is not None] if (
                in_cut and entry["take"] == cut_take) else []
        picked = takes[job.take - 1]
        state = "current" if in_cut else "render" if picked["clip"] is None else "cut"
        keyframe = keyframe_name(job)
        candidates = []
        if job.keyframe is not None and job.keyframe.candidates > 1:  # start pictures to choose, before any video
            for number in range(1, job.keyframe.candidates + 1):
                name = candidate_name(job, number)
                candidates.append({"number": number, "url": media_url(out, name) if name in listed and _present(
                    out, name) else None, "command": f"storyforge pick {_shell(story_arg)} {job.id} "
                                                               f"--keyframe {number}"})
        shots.append({
            "id": job.id, "scene": job.id.split("/")[0], "pick": job.take, "takes": takes, "kind": job.kind,
            "after": job.after, "prompt": job.prompt, "camera": job.camera, "line": job.source.line,
            "start_frame": job.start_frame, "frames": job.frames, "timecode": timecode(job.start_frame, plan.fps),
            "transition": {"type": job.transition.type, "frames": job.transition.frames},
            "seams": shot_seams,
            "state": state, "cut_take": cut_take if in_cut and _whole(cut_take) else None,
            "keyframe": media_url(out, keyframe) if keyframe in listed and _present(out, keyframe) else None,
            "keyframes": candidates, "keyframe_pick": job.keyframe.pick if job.keyframe is not None else None,
        })
    return {
        "title": plan.title, "story": story_arg, "fps": plan.fps, "width": plan.width, "height": plan.height,
        "total_frames": plan.total_frames, "timecode": timecode(plan.total_frames, plan.fps),
        "backend": run["backend"] if isinstance(run.get("backend"), str) else None,
        "film": media_url(out, film) if film else None,
        "shots": shots, "stale": any(shot["state"] != "current" for shot in shots),
        "to_render": [shot["id"] for shot in shots if shot["state"] == "render"],
        "to_cut": [shot["id"] for shot in shots if shot["state"] == "cut"],
        "warnings": [str(warning) for warning in plan.warnings],
    }


def _seam(seam: dict[str, Any], fps: int) -> dict[str, Any]:
    """A seam of the report for the page: where, its numbers, whether it is likely seen, and what to do then."""
    from storyforge.console import timecode
    from storyforge.seams import visible

    found = {"frame": seam["frame"], "kind": str(seam.get("kind")), "jump": _number(seam.get("jump")),
             "color_shift": _number(seam.get("color_shift")), "intended": seam.get("intended") is True,
             "timecode": timecode(seam["frame"], fps)}
    found["visible"] = visible(found)
    advice = seam.get("advice")
    found["advice"] = advice if found["visible"] and isinstance(advice, str) else None
    return found


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


def _number(value: object) -> float | None:
    """A measure from run.json, or None when it is not a finite number."""
    import math

    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def _shell(text: str) -> str:
    import shlex

    return shlex.quote(text)
