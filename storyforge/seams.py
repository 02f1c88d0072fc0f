"""Seams: where new frames meet old ones, found in the plan and measured in the pixels (jump, colour shift, drift).

A seam is where a Diffusion-Forcing generation starts adding frames from a conditioning prefix: the first
new frame of every window after a job's first (`window`), the first frame of a continued shot
(`continue`), and both ends of a bridge (`bridge`: its first frame after the shot it continues, and the first
frame of the shot it was aimed at, which was rendered before it). Models of the Wan family tend to shift
colour and brightness there and to drift along a chain; storyforge knows where every seam is, so it measures each one:

- `jump`: the mean absolute pixel change from the last frame before the seam to the first after it,
  divided by the median of the ordinary frame-to-frame changes in the `SIDE` frames either side (floored
  at `STILL` levels, so a still scene does not divide by nothing). About 1: the seam is invisible.
- `color_shift`: CIEDE2000 between the mean Lab colour of the `SIDE` frames before and the `SIDE` after.
  CIEDE2000 rather than CIE76 because CIE76 overstates shifts in saturated colours several times and
  understates them in the near-greys and blues that dominate skies and skin; it is computed on two mean
  colours per seam, so its cost is nil.
- chain drift: CIEDE2000 between the mean colour of a chain's first window and its last.

Measured on the frames as they go to the encoder (after colour matching), on a sub-sampled grid of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from storyforge.plan.model import Job, Plan

SIDE = 4  # frames either side of a seam that are compared
STILL = 1.0  # 8-bit levels: below this much ordinary change a picture is still, and the jump is taken against it
GRID = 128  # pixels sampled along the longer side for the measurements
WINDOW_SAMPLES = 16  # frames of a window averaged for its colour (evenly spread)
# The thresholds the report and the review page flag a seam at (a documented contract of the seam report):
# - `jump` >= VISIBLE_JUMP: the change across the seam is twice the ordinary frame-to-frame change around it;
#   at about 1 the seam moves like the frames around it, from 2 a viewer sees a hitch.
# - `color_shift` >= VISIBLE_SHIFT: a CIEDE2000 difference (ΔE00) of 2 between the mean colours either side, the
#   shift an observer notices side by side at a glance (about 1 is the just-noticeable difference).
VISIBLE_JUMP, VISIBLE_SHIFT = 2.0, 2.0


@dataclass(frozen=True)
class SeamSite:
    """Where a seam is: its job, the job-relative frame of the first new frame, and its kind."""

    job: str
    frame: int
    kind: str  # continue | window | bridge


def window_starts(job: Job) -> list[int]:
    """The job-relative frame where each of the job's windows starts adding frames: the plan's segment start_frame."""
    return [window.start_frame for window in job.segments] or [0]


def job_sites(job: Job) -> list[SeamSite]:
    """The seams inside one job's clip: its continue (or bridge) seam at frame 0 and every later window's first
    frame; a bridge's far end (its frame `job.frames`, the next shot's first) is measured apart (SeamMeter)."""
    sites = [SeamSite(job.id, 0, "bridge" if job.is_bridge else "continue")] if job.continues else []
    sites += [SeamSite(job.id, start, "window") for start in window_starts(job)[1:] if 0 < start < job.frames]
    return sites


def film_frame(job: Job, site: SeamSite) -> int:
    """The seam's frame on the film's timeline: where the job starts (after any crossfade overlap) plus its frame."""
    return job.start_frame + site.frame


# -- measuring ---------------------------------------------------------------------------------------


def sample_grid(frames: np.ndarray) -> np.ndarray:
    """A regular sub-sample of each frame, about GRID pixels along its longer side (a view, no copy)."""
    step = max(1, max(frames.shape[1], frames.shape[2]) // GRID)
    return frames[:, ::step, ::step]


def _changes(frames: np.ndarray) -> np.ndarray:
    """Mean absolute change (8-bit levels) between each pair of consecutive frames."""
    import numpy as np

    sampled = sample_grid(frames).astype(np.int16)
    return np.abs(np.diff(sampled, axis=0)).mean(axis=(1, 2, 3))


def mean_lab(frames: np.ndarray) -> np.ndarray:
    """The mean Lab colour of `frames` (uint8, (F, H, W, 3)) over a sub-sampled grid."""
    from storyforge.lab import srgb_to_lab

    return srgb_to_lab(sample_grid(frames)).reshape(-1, 3).mean(axis=0, dtype="float64")


def measure(before: np.ndarray, after: np.ndarray, *, side: int = SIDE) -> dict[str, float]:
    """`jump` and `color_shift` of the seam between the frames `before` it and the frames `after` it."""
    import numpy as np

    from storyforge.lab import delta_e_2000

    before, after = before[-(side + 1):], after[:side + 1]
    if len(before) == 0 or len(after) == 0:
        raise ValueError("a seam needs at least one frame on each side")
    changes = _changes(np.concatenate([before, after]))
    across = float(changes[len(before) - 1])
    ordinary = np.delete(changes, len(before) - 1)
    usual = max(float(np.median(ordinary)) if len(ordinary) else 0.0, STILL)
    shift = delta_e_2000(mean_lab(before[-side:]), mean_lab(after[:side]))
    return {"jump": round(across / usual, 3), "color_shift": round(float(shift), 3)}


def window_colours(frames: np.ndarray, starts: Sequence[int]) -> list[list[float]]:
    """The mean Lab colour of each window of a clip (windows begin at `starts`), from up to WINDOW_SAMPLES frames."""
    import numpy as np

    bounds = [*starts, len(frames)]
    colours = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        if stop <= start:
            continue
        picks = np.unique(np.linspace(start, stop - 1, min(WINDOW_SAMPLES, stop - start)).round().astype(int))
        colours.append([round(float(v), 4) for v in mean_lab(frames[picks])])
    return colours


def measure_job(job: Job, frames: np.ndarray, previous: np.ndarray | None,
                following: np.ndarray | None = None) -> dict[str, Any]:
    """What the seam report keeps of a job: each seam of its clip measured, and each window's mean colour.

    `previous`: for an extension or a bridge, the frames it continues (the chain's last frames before it);
    `following`: for a bridge, the first frames of the shot it leads into. The same as SeamMeter fed the frames
    in chunks.
    """
    meter = SeamMeter(job, previous, following)
    meter.add(frames)
    return meter.result()


class SeamMeter:
    """What measure_job finds, from a job's frames as they stream past: only a few frames are held.

    Frames go in with `add` (chunks of any size, in order); `result` gives measure_job's dictionary.
    """

    def __init__(self, job: Job, previous: np.ndarray | None, following: np.ndarray | None = None, *,
                 side: int = SIDE):
        import numpy as np

        self.side = side
        self.frames = job.frames
        # a bridge's arrival: its last frames against the first frames of the shot it leads into
        self.following = following[:side + 1] if following is not None and len(following) else None
        self.sites = [s for s in job_sites(job) if s.kind == "window" or (previous is not None and len(previous))]
        starts = [s for s in window_starts(job) if 0 <= s < job.frames] or [0]
        bounds = [*starts, job.frames]
        self.picks: dict[int, int] = {}  # frame -> window whose mean colour it samples
        for window, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            if stop > start:
                for frame in np.unique(np.linspace(start, stop - 1, min(WINDOW_SAMPLES, stop - start)).round()):
                    self.picks[int(frame)] = window
        self.sums = [np.zeros(3) for _ in starts]
        self.counts = [0 for _ in starts]
        self.recent = previous[-(side + 1):] if previous is not None and len(previous) else None
        self.position = 0
        self.open: list[tuple[SeamSite, np.ndarray, list[np.ndarray]]] = []  # (site, frames before, after so far)
        self.seams: list[dict[str, Any]] = []

    def add(self, chunk: np.ndarray) -> None:
        import numpy as np

        first, last = self.position, self.position + len(chunk)
        for site in [s for s in self.sites if first <= s.frame < last]:
            head = chunk[:site.frame - first]
            before = head if self.recent is None else np.concatenate([self.recent, head])
            self.open.append((site, before[-(self.side + 1):], []))
        for site, _before, after in self.open:
            have = sum(len(part) for part in after)
            begin = max(site.frame, first) - first
            after.append(chunk[begin:begin + self.side + 1 - have])
        self._close(final=False)
        for frame, window in self.picks.items():
            if first <= frame < last:
                self.sums[window] += mean_lab(chunk[frame - first:frame - first + 1])
                self.counts[window] += 1
        self.recent = (chunk if self.recent is None else np.concatenate([self.recent, chunk]))[-(self.side + 1):]
        self.position = last

    def _close(self, *, final: bool) -> None:
        import numpy as np

        still = []
        for site, before, after in self.open:
            frames = np.concatenate(after) if after else before[:0]
            if len(frames) < self.side + 1 and not final:
                still.append((site, before, after))
            elif len(before) and len(frames):
                self.seams.append({"frame": site.frame, "kind": site.kind, **measure(before, frames, side=self.side)})
        self.open = still

    def result(self) -> dict[str, Any]:
        self._close(final=True)
        if self.following is not None and self.recent is not None and self.position == self.frames:
            self.seams.append({"frame": self.frames, "kind": "bridge",
                               **measure(self.recent, self.following, side=self.side)})
        colours = [[round(float(v), 4) for v in total / count] for total, count in zip(self.sums, self.counts,
                                                                                       strict=True) if count]
        return {"seams": sorted(self.seams, key=lambda s: s["frame"]), "windows": colours}


def chain_drift(colours: Sequence[Sequence[float]]) -> float:
    """CIEDE2000 between a chain's first window's mean colour and its last's."""
    import numpy as np

    from storyforge.lab import delta_e_2000

    return round(float(delta_e_2000(np.asarray(colours[0]), np.asarray(colours[-1]))), 3)


def report(plan: Plan, measured: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """run.json's `seams` (every seam of the plan, in film order, at its film frame) and `chains` (drift).

    `measured`: job id -> what measure_job kept for it; a job missing there (not rendered, or an animatic's
    title cards, which are not scored) has its seams listed without numbers (null), so the list always names
    every seam of the plan. Each seam says whether it is `visible` (over a threshold), whether the story marks it
    `intended`, and what to do about it (`advice`). A chain whose shots aim somewhere on purpose (an end image, or
    `seams: {intended: true}`) has no drift score: its change of colour is asked for.
    """
    seams: list[dict[str, Any]] = []
    starts = {job.id: job.start_frame for job in plan.jobs}
    jobs = {job.id: job for job in plan.jobs}
    for site in plan.seams():
        found = next((s for s in measured.get(site.job, {}).get("seams", ())
                      if starts[site.job] + s["frame"] == site.frame and s["kind"] == site.kind), None)
        seam = {"job": site.job, "frame": site.frame, "kind": site.kind,
                "jump": found["jump"] if found else None,
                "color_shift": found["color_shift"] if found else None}
        seams.append({**seam, **judge(seam, jobs[site.job])})
    chains: list[dict[str, Any]] = []
    for chain in plan.chains():
        windows = sum(len(window_starts(job)) for job in chain)
        if windows < 2:
            continue  # one window: nothing to drift from
        if any(job.end_image is not None or job.seams_intended for job in chain):
            continue  # it is asked to change: an end image it arrives at, or seams marked intended
        colours = [colour for job in chain for colour in measured.get(job.id, {}).get("windows", ())]
        complete = all(job.id in measured for job in chain) and len(colours) >= 2
        chains.append({"jobs": [job.id for job in chain], "frame": chain[0].start_frame, "windows": windows,
                       "drift": chain_drift(colours) if complete else None})
    return seams, chains


def judge(seam: dict[str, Any], job: Job) -> dict[str, Any]:
    """What the report says of one seam: `visible` (a number over its threshold), `intended` (the story asks for
    the change), and `advice`: what to do about a visible one that is not intended (None otherwise)."""
    intended = job.seams_intended
    jump, shift = seam.get("jump"), seam.get("color_shift")
    bad = []
    if jump is not None and jump >= VISIBLE_JUMP:
        bad.append(f"jump {jump:.2f} is over {VISIBLE_JUMP:g}")
    if shift is not None and shift >= VISIBLE_SHIFT:
        bad.append(f"color_shift {shift:.2f} is over {VISIBLE_SHIFT:g}")
    advice = None
    if bad and not intended:
        kind, s = seam.get("kind"), job.settings
        todo = [f"another take (render.takes, then storyforge pick; or render --only {job.id} --no-cache)"]
        if jump is not None and jump >= VISIBLE_JUMP and s.overlap_frames < 37:
            todo.append("a longer overlap (overlap_frames: 37)")
        if kind == "continue":
            todo.append("a cut or crossfade instead of `continue`")
        if shift is not None and shift >= VISIBLE_SHIFT and not s.color_match:
            todo.append("colour matching on (color_match: true)")
        if kind == "bridge":
            todo.append("a longer bridge")
        todo.append("or, if the change is meant, `seams: {intended: true}` on the shot")
        advice = "; ".join(bad) + ": try " + ", ".join(todo)
    return {"visible": bool(bad), "intended": intended, "advice": advice}
def visible(seam: dict[str, Any]) -> bool:
    """Whether a measured seam is likely to be seen (VISIBLE_JUMP, VISIBLE_SHIFT) and not marked intended."""
    return not seam.get("intended") and (
        (seam.get("jump") or 0) >= VISIBLE_JUMP or (seam.get("color_shift") or 0) >= VISIBLE_SHIFT)


def worst(seams: Sequence[dict[str, Any]], count: int = 3) -> list[dict[str, Any]]:
    """The `count` most visible seams, intended ones left out: the largest jump first, colour shift breaking ties."""
    scored = [seam for seam in seams if seam.get("jump") is not None and not seam.get("intended")]
    return sorted(scored, key=lambda s: (-s["jump"], -s["color_shift"], s["frame"]))[:count]
