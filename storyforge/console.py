"""Terminal output: the rich consoles and how a plan, errors and warnings look."""

from __future__ import annotations

import re
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from storyforge.errors import StoryError
from storyforge.plan.model import Plan
from storyforge.spec.presets import PRESETS

# Piped output (CI logs, tests) gets a wide table instead of rich's 80-column default.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# C0 and C1 controls, DEL, and the bidirectional overrides that make text display in another order than it reads.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe(text: object, *, lines: bool = False) -> str:
    """Text from a story, a path or an error, fit for a terminal: every control character escaped (\\x1b, \\n)
    so a story cannot move the cursor, clear the screen or fake a line. `lines` keeps newlines and tabs.

    The one place user-controlled text is made printable: everything storyforge prints goes through it."""
    def escaped(match: re.Match[str]) -> str:
        char = match.group()
        if lines and char in "\n\t":
            return char
        return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char) or (
            f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
    return _CONTROL.sub(escaped, str(text))


_JSON_CONTROL = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")  # json escapes the C0 ones


def json_safe(text: str) -> str:
    """JSON for a terminal: controls JSON leaves as they are (DEL, C1, bidi overrides) written as \\u escapes,
    which decode to the same text."""
    return _JSON_CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def shown(text: object) -> str:
    """`safe` text for a rich markup string (f"[green]✓[/green] {shown(path)}"): brackets escaped too."""
    return escape(safe(text))


def show_error(error: Exception) -> None:
    """A user error: one line per problem, no traceback."""
    if isinstance(error, StoryError):
        for problem in error.problems:
            err.print(Text("error: ", style="bold red") + Text(safe(problem)))
    else:
        err.print(Text("error: ", style="bold red") + Text(safe(error, lines=True)))


def show_warnings(plan: Plan) -> None:
    for warning in plan.warnings:
        show_warning(warning)


def show_warning(warning: object) -> None:
    err.print(Text("warning: ", style="bold yellow") + Text(safe(warning)))


def show_note(note: object) -> None:
    err.print(Text("note: ", style="cyan") + Text(safe(note)))


def timecode(frame: int, fps: int) -> str:
    seconds, frames = divmod(frame, fps)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}:{frames:02d}"


def plan_table(plan: Plan) -> Table:
    """Shot, kind, requested -> planned frames with drift, windows, transformer calls, start timecode."""
    table = Table(title=Text(f"{safe(plan.title)} — {plan.width}x{plan.height} @ {plan.fps} fps"),
                  title_justify="left")
    for column, justify in (("shot", "left"), ("kind", "left"), ("frames", "right"), ("drift", "right"),
                            ("windows (latents)", "left"), ("calls", "right"), ("in", "left"),
                            ("start", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for job in plan.jobs:
        drift = job.frames - job.requested_frames
        windows = " ".join(str(w.latent_frames) for w in job.segments)
        entry = job.transition.type if not job.transition.frames else f"{job.transition.type} {job.transition.frames}f"
        table.add_row(Text(safe(job.id)), job.kind, f"{job.requested_frames} → {job.frames}",
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
