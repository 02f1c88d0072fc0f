"""Terminal output: the rich consoles and how a plan, errors and warnings look."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from storyforge.errors import StoryError
from storyforge.plan.model import Plan
from storyforge.spec.presets import PRESETS

# Piped output (CI logs, tests) gets a wide table instead of rich's 80-column default.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def show_error(error: Exception) -> None:
    """A user error: one line per problem, no traceback."""
    if isinstance(error, StoryError):
        for problem in error.problems:
            err.print(Text("error: ", style="bold red") + Text(str(problem)))
    else:
        err.print(Text("error: ", style="bold red") + Text(str(error)))


def show_warnings(plan: Plan) -> None:
    for warning in plan.warnings:
        err.print(Text("warning: ", style="bold yellow") + Text(str(warning)))


def timecode(frame: int, fps: int) -> str:
    seconds, frames = divmod(frame, fps)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}:{frames:02d}"


def plan_table(plan: Plan) -> Table:
    """Shot, kind, requested -> planned frames with drift, windows, transformer calls, start timecode."""
    table = Table(title=f"{plan.title} — {plan.width}x{plan.height} @ {plan.fps} fps", title_justify="left")
    for column, justify in (("shot", "left"), ("kind", "left"), ("frames", "right"), ("drift", "right"),
                            ("windows (latents)", "left"), ("calls", "right"), ("in", "left"),
                            ("start", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for job in plan.jobs:
        drift = job.frames - job.requested_frames
        windows = " ".join(str(w.latent_frames) for w in job.segments)
        entry = job.transition.type if not job.transition.frames else f"{job.transition.type} {job.transition.frames}f"
        table.add_row(job.id, job.kind, f"{job.requested_frames} → {job.frames}",
                      f"{drift:+d}" if drift else "0", windows, f"{job.transformer_calls:,}", entry,
                      timecode(job.start_frame, plan.fps))
    return table


def plan_footer(plan: Plan) -> str:
    """Total length, transformer calls and a rough GPU time per preset."""
    lines = [f"{len(plan.jobs)} shots, {plan.total_frames} frames = {plan.duration_s:.2f}s "
             f"({timecode(plan.total_frames, plan.fps)}), {plan.transformer_calls:,} transformer calls"]
    tokens = plan.width // 16 * (plan.height // 16)
    estimates = []
    for preset in PRESETS.values():
        if preset.repo is None:
            continue
        native = 25 * (960 // 16) * (544 // 16) if preset.resolution == "540p" else 31 * 80 * 45
        # attention dominates: a call costs roughly the square of its tokens relative to the native window
        scale = (25 * tokens / native) ** 1.5 if preset.resolution == "540p" else (31 * tokens / native) ** 1.5
        seconds = plan.transformer_calls * preset.seconds_per_call * scale
        estimates.append(f"{preset.name} ≈ {_duration(seconds)}")
    lines.append("rough GPU time on one H100: " + ", ".join(estimates))
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def seam_summary(seams: list[dict], chains: list[dict], fps: int, count: int = 3) -> str | None:
    """One line on the render's seams: how many, the most visible ones, and the largest drift along a chain."""
    from storyforge.seams import worst

    if not seams:
        return None
    found = worst(seams, count)
    parts = [f"{s['job']} at {timecode(s['frame'], fps)} ({s['kind']}) jump {s['jump']:.2f}, "
             f"ΔE {s['color_shift']:.2f}" for s in found]
    line = f"{len(seams)} seam{'' if len(seams) == 1 else 's'}"
    if parts:
        line += "; worst: " + "; ".join(parts)
    drifts = [c for c in chains if c.get("drift") is not None]
    if drifts:
        chain = max(drifts, key=lambda c: c["drift"])
        line += (f"; largest drift along a chain: ΔE {chain['drift']:.2f} ({chain['jobs'][0]}, "
                 f"{chain['windows']} windows)")
    return line + " (jump ≈ 1: invisible; ΔE under 2: hard to see; details in run.json)"
