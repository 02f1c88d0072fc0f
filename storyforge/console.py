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
    takes = plan.extra_takes > 0  # the column appears only where a shot has several takes
    for column, justify in (("shot", "left"), ("kind", "left"), ("frames", "right"), ("drift", "right"),
                            ("windows (latents)", "left"), *((("take", "right"),) if takes else ()),
                            ("calls", "right"), ("in", "left"), ("start", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for job in plan.jobs:
        drift = job.frames - job.requested_frames
        windows = " ".join(str(w.latent_frames) for w in job.segments)
        entry = job.transition.type if not job.transition.frames else f"{job.transition.type} {job.transition.frames}f"
        take = (f"{job.take} of {job.takes}" if job.takes > 1 else "1",) if takes else ()
        table.add_row(job.id, job.kind, f"{job.requested_frames} → {job.frames}",
                      f"{drift:+d}" if drift else "0", windows, *take, f"{job.transformer_calls * job.takes:,}",
                      entry, timecode(job.start_frame, plan.fps))
    return table


def plan_footer(plan: Plan) -> str:
    """Total length, transformer calls and a rough GPU time per preset."""
    lines = [f"{len(plan.jobs)} shots, {plan.total_frames} frames = {plan.duration_s:.2f}s "
             f"({timecode(plan.total_frames, plan.fps)}), {plan.transformer_calls:,} transformer calls"]
    if plan.extra_takes:
        several = [job for job in plan.jobs if job.takes > 1]
        extra = sum(job.transformer_calls * (job.takes - 1) for job in several)
        lines[0] += (f", {extra:,} of them for {plan.extra_takes} extra take{'s' if plan.extra_takes > 1 else ''} "
                     f"of {len(several)} shot{'s' if len(several) > 1 else ''}")
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
