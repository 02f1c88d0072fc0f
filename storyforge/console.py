"""Terminal output: the one way anything reaches the terminal, and how a plan, errors and warnings look.

Everything printed is text, never markup: the consoles read no markup, emoji codes or highlights, and every
value that comes from a story, a path, an id, a prompt or an error goes through `safe` (control, bidi and newline
characters shown escaped) on its way in. Commands print with `done`, `say` and `tell`, whose templates are our own
words with `{}` where a value goes; nothing else in the package writes to the terminal (tests/cli check both).
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any

from storyforge.errors import StoryError, grouped
from storyforge.plan.frames import latents
from storyforge.plan.memory import gib
from storyforge.plan.model import Plan, PlanWarning
from storyforge.story.models import KEYFRAME_MODEL, RESOLUTIONS
from storyforge.story.presets import PRESETS

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out: Console
    err: Console


def __getattr__(name: str) -> Any:
    """`out` and `err`, the rich consoles, made on first use: `plan --json` with its warnings piped to a log
    never imports rich.console (a twentieth of a cold `storyforge plan`)."""
    if name not in ("out", "err"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    if name == "out":
        # Piped output (CI logs, tests) gets a wide table instead of rich's 80 columns, unless COLUMNS says otherwise.
        width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140
        console = Console(markup=False, emoji=False, highlight=False, soft_wrap=True, width=width)
    else:
        console = Console(stderr=True, markup=False, emoji=False, highlight=False, soft_wrap=True)
    globals()[name] = console
    return console


def _err() -> Console:
    return globals().get("err") or __getattr__("err")  # a name inside this module does not reach __getattr__


def _out() -> Console:
    return globals().get("out") or __getattr__("out")


def _plain_stderr() -> bool:
    """Whether rich would write stderr as plain text (not a terminal, no FORCE_COLOR or TTY_COMPATIBLE=1, not a
    notebook) and has not been asked to yet: then a styled line is the same as its plain text."""
    if "err" in globals() or "ipykernel" in sys.modules:
        return False
    forced = os.environ.get("TTY_COMPATIBLE", "")
    if forced in ("0", "1"):
        return forced == "0"
    if os.environ.get("FORCE_COLOR") is not None:
        return False
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _styled(label: str, style: str, text: str) -> None:
    """One line on stderr: `label` in `style`, then text (already made safe)."""
    if _plain_stderr():
        sys.stderr.write(f"{label}{text}\n")
        return
    from rich.text import Text

    _err().print(Text(label, style=style) + Text(text))

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


def text(template: str, *values: object) -> Text:
    """Our words with the user's in them: `template` with each `{}` (or `{:spec}`) filled by the next value,
    formatted and made `safe`, as rich Text that nothing reads as markup. The template is ours: never build it
    from a value."""
    from string import Formatter

    from rich.text import Text

    result = Text()
    given = iter(values)
    for literal, field, spec, conversion in Formatter().parse(template):
        result.append(literal)
        if field is None:
            continue
        if field or conversion:
            raise ValueError(f"console templates take plain {{}} fields, not {{{field}!{conversion}}}")
        value = next(given, given)
        if value is given:
            raise ValueError(f"fewer values than fields in {template!r}")
        result.append(safe(format(value, spec or "")))
    if next(given, given) is not given:
        raise ValueError(f"more values than fields in {template!r}")
    return result


def done(template: str, *values: object) -> None:
    """A `✓ …` line on stdout: what a command achieved (see `text` for the template)."""
    from rich.text import Text

    _out().print(Text("✓", style="green") + Text(" ") + text(template, *values))


def say(template: str, *values: object) -> None:
    """A line on stdout (see `text`)."""
    _out().print(text(template, *values))


def tell(template: str, *values: object) -> None:
    """A line on stderr, among progress bars when there are any (see `text`)."""
    line = text(template, *values)
    if _plain_stderr():
        sys.stderr.write(line.plain + "\n")
    else:
        _err().print(line)


def raw(data: str) -> None:
    """Text that is safe as it is (JSON through json_safe, the schema, a URL made safe): on stdout unchanged, for
    pipes and for programs reading it as it comes."""
    sys.stdout.write(data)
    sys.stdout.flush()


def show_plan(plan: Plan) -> None:
    """The plan table, at the terminal's width, and its footer (its values made safe where it is written)."""
    from rich.text import Text

    console = _out()
    console.print(plan_table(plan, console.width))
    console.print(Text(plan_footer(plan)))


def show_usage_error(error: Any) -> None:
    """A command-line mistake as click words it (usage, hint, message); the message quotes what was typed, so it
    is made safe whole, and the rest (our command's usage) keeps its lines."""
    import io

    buffer = io.StringIO()
    error.show(file=buffer)
    message = error.format_message()
    sys.stderr.write(safe(buffer.getvalue().replace(message, "\0"), lines=True).replace("\\x00", safe(message)))


def show_bug(summary: str) -> None:
    """An internal error: a short report to paste into an issue (paths in it made safe)."""
    sys.stderr.write("storyforge hit an internal error (a bug, not your mistake). Please report it at "
                     "https://github.com/storyforge/storyforge/issues with this text:\n" + safe(summary, lines=True))


def show_interrupted() -> None:
    sys.stderr.write("interrupted; finished work is kept and a new run resumes from it\n")


def show_error(error: Exception, *, verbose: bool = False) -> None:
    """A user error: one line per problem (one mistake made in many places is one line naming them; `verbose`
    names every place), no traceback; a newline inside a message (from a path) stays escaped."""
    if isinstance(error, StoryError):
        lines = [str(problem) for problem in grouped(error.problems, verbose=verbose)]
    else:
        lines = list(getattr(error, "lines", ()) or (str(error),))
    for line in lines:
        _styled("error: ", "bold red", safe(line))


WARNINGS_GROUPED_FROM = 6  # more warnings of one kind than this are shown as a group: its first lines and a count
WARNINGS_SHOWN = 3  # lines of a group that are shown


def show_warnings(plan: Plan, *, strict: bool = False, verbose: bool = False) -> None:
    """The plan's warnings; with `strict` (validate --strict) they are errors, marked as such. A kind of warning
    said more than WARNINGS_GROUPED_FROM times shows its first WARNINGS_SHOWN and a count (`verbose`: all)."""
    kinds: dict[str, list[PlanWarning]] = {}
    first: dict[PlanWarning, int] = {}  # where each warning (or the first one equal to it) stands in its kind
    for warning in plan.warnings:
        same = kinds.setdefault(warning.kind or warning.message, [])
        first.setdefault(warning, len(same))
        same.append(warning)
    for warning in plan.warnings:
        same = kinds[warning.kind or warning.message]
        if not verbose and warning.kind and len(same) > WARNINGS_GROUPED_FROM:
            index = first[warning]  # not same.index(warning): a search per warning, hundreds of them
            if index == WARNINGS_SHOWN:
                _show_group(warning.kind, len(same), len(same) - WARNINGS_SHOWN, strict)
            if index >= WARNINGS_SHOWN:
                continue
        if strict:
            _styled("error: ", "bold red", f"{safe(warning)} [--strict]")
        else:
            show_warning(warning)


def _show_group(kind: str, count: int, left_out: int, strict: bool) -> None:
    label, style = ("error: ", "bold red") if strict else ("warning: ", "bold yellow")
    _styled(label, style, f"… and {left_out} more of these {count} warnings ({safe(kind)}); --verbose lists them all")


def show_warning(warning: object) -> None:
    _styled("warning: ", "bold yellow", safe(warning))


def show_note(note: object) -> None:
    _styled("note: ", "cyan", safe(note))


def counted(count: int, noun: str) -> str:
    """'1 shot', '3 shots'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def timecode(frame: int, fps: int) -> str:
    seconds, frames = divmod(frame, fps)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}:{frames:02d}"


# Columns of the plan table, the last dropped first when the terminal is narrow; shot, frames and start stay.
_COLUMNS = (("shot", "left"), ("frames", "right"), ("start", "left"), ("take", "right"), ("kind", "left"),
            ("in", "left"), ("calls", "right"), ("windows (latents)", "left"), ("drift", "right"))
_ORDER = ("shot", "kind", "frames", "drift", "windows (latents)", "take", "calls", "in", "start")
_KEPT = 3


def plan_table(plan: Plan, width: int | None = None) -> Table:
    """Shot, kind, requested -> planned frames with drift, windows, transformer calls, start timecode.

    Within `width` columns (a terminal's), the least needed columns are left out: drift (the frames column
    shows it), then windows, calls, the transition, the kind; shot, frames and start always stay whole.
    """
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    rows = []
    for job in plan.jobs:
        drift = job.frames - job.requested_frames
        entry = job.transition.type if not job.transition.frames else f"{job.transition.type} {job.transition.frames}f"
        rows.append({"shot": safe(job.id), "kind": job.kind + (" + keyframe" if job.keyframe is not None else ""),
                     "frames": f"{job.requested_frames} → {job.frames}",
                     "drift": f"{drift:+d}" if drift else "0",
                     "windows (latents)": " ".join(str(w.latent_frames) for w in job.segments),
                     "calls": f"{job.transformer_calls * job.takes:,}", "in": entry,
                     "take": f"{job.take} of {job.takes}" if job.takes > 1 else "1",
                     "start": timecode(job.start_frame, plan.fps)})
    # the take column (picked of how many) only where a shot has several takes; calls count every take
    shown = [name for name, _ in _COLUMNS if name != "take" or plan.extra_takes]
    if width is not None:
        def needed(names: list[str]) -> int:  # cells plus one space either side and one rule per column
            return 1 + sum(3 + max(cell_len(name), *(cell_len(row[name]) for row in rows)) for name in names)

        while len(shown) > _KEPT and needed(shown) > width:
            shown.pop()
    justify = dict(_COLUMNS)
    left_out = [name for name in _ORDER if name not in shown and (name != "take" or plan.extra_takes)]
    caption = f"left out at {width} columns: {', '.join(left_out)}; plan --json has them" if left_out else None
    table = Table(title=Text(f"{safe(plan.title)} — {plan.width}x{plan.height} @ {plan.fps} fps"), title_justify="left",
                  caption=caption, caption_justify="left")
    columns = [name for name in _ORDER if name in shown]
    for name in columns:
        table.add_column(name, justify=justify[name], no_wrap=name in ("shot", "frames", "start"))  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(Text(row[name]) for name in columns))
    return table


def plan_footer(plan: Plan) -> str:
    """Total length, transformer calls, and a rough GPU time for each preset model the film uses."""
    bridges = len(plan.bridges())
    made = counted(len(plan.jobs) - bridges, 'shot') + (f" and {counted(bridges, 'bridge')}" if bridges else "")
    lines = [f"{made}, {plan.total_frames} frames = {plan.duration_s:.2f}s "
             f"({timecode(plan.total_frames, plan.fps)}), {plan.transformer_calls:,} transformer calls"]
    if plan.extra_takes:
        several = [job for job in plan.jobs if job.takes > 1]
        extra = sum(job.transformer_calls * (job.takes - 1) for job in several)
        lines[0] += (f", {extra:,} of them for {plan.extra_takes} extra take{'s' if plan.extra_takes > 1 else ''} "
                     f"of {len(several)} shot{'s' if len(several) > 1 else ''}")
    seconds: dict[str, float] = {}
    unknown: list[str] = []
    for job in plan.jobs:
        preset = PRESETS.get(job.settings.model)
        if preset is None or preset.repo is None:
            if preset is None and job.settings.model not in unknown:
                unknown.append(job.settings.model)
            continue
        width, height = RESOLUTIONS[preset.resolution]
        native = latents(preset.base_frames) * (width // 16) * (height // 16)
        window = latents(job.settings.base_frames) * (job.settings.width // 16) * (job.settings.height // 16)
        # attention dominates: a call costs about the 1.5th power of its tokens relative to the preset's own window
        seconds[preset.name] = seconds.get(preset.name, 0.0) + \
            job.transformer_calls * job.takes * preset.seconds_per_call * (window / native) ** 1.5
    if seconds:
        lines.append("rough GPU time on one H100: " + ", ".join(f"{name} ≈ {_duration(value)}"
                                                                for name, value in seconds.items()))
        for name in seconds:
            preset = PRESETS[name]
            size = "x".join(map(str, RESOLUTIONS[preset.resolution]))
            lines.append(f"  assumes {preset.seconds_per_call:g} s a call for {name} on a full {size} window of "
                         f"{preset.base_frames} frames")
        lines.append("  (other window sizes scale as tokens^1.5; loading the model and decoding are not counted)")
    if unknown:
        lines.append(f"no GPU time estimate for {', '.join(map(safe, unknown))}: only the presets have measured speeds")
    # every candidate of a shot's keyframe (`keyframes: {takes: N}`) is one picture to make
    keyframes = [candidate for job in plan.jobs if job.keyframe is not None
                 for candidate in job.keyframe.all_candidates]
    if keyframes:
        model = keyframes[0].model
        if model == KEYFRAME_MODEL:
            edit = sum(_qwen_edit_seconds(k.width, k.height, len(k.references), k.steps, k.guidance)
                       for k in keyframes)
            lines.append(f"{counted(len(keyframes), 'keyframe')} first: ≈ {_duration(edit)} on one H100 with "
                         f"{model} (computed from its size, not measured)")
        else:
            lines.append(f"{counted(len(keyframes), 'keyframe')} first with {safe(model)} (no time estimate: only "
                         f"{KEYFRAME_MODEL}'s is computed)")
    for need in plan.memory:
        others = ", ".join(f"{name} {gib(value)}" for name, value in need.needs.items() if name != need.offload)
        budget = f"; gpu_memory {gib(need.budget)}" if need.budget is not None else ""
        lines.append(f"GPU memory for {need.model} at {need.width}x{need.height}: ≈ {gib(need.needs[need.offload])} "
                     f"with offload {need.offload} (weights {gib(sum(need.weights.values()))}, activations of the "
                     f"largest window {gib(need.activations)}, VAE decode {gib(need.vae_decode)}"
                     f"{', tiled' if need.vae_tiling else ''}); {others}{budget}")
    return "\n".join(lines)


def _qwen_edit_seconds(width: int, height: int, references: int, steps: int, guidance: float) -> float:
    """Qwen-Image-Edit-2509's time for one keyframe, computed (not measured): each pass runs the 60-layer,
    3072-wide MMDiT (10.2 B weights per token's stream) over the output's tokens, 4096 per reference (each is
    sized to 1024x1024) and about 200 text-and-vision tokens per reference, at 400 TFLOP/s (40 % of bf16 peak)."""
    tokens = width // 16 * (height // 16) + references * (4096 + 200) + 100
    flops = 2 * 10.2e9 * tokens + 4 * tokens**2 * 3072 * 60
    return steps * (2 if guidance > 1 else 1) * flops / 400e12


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def seam_summary(seams: list[dict], chains: list[dict], fps: int, count: int = 3) -> str | None:
    """One line on the render's seams: how many, the visible ones (over a documented threshold) with what to do,
    and the largest colour drift along a chain."""
    from storyforge.seams import VISIBLE_JUMP, VISIBLE_SHIFT, visible, worst

    if not seams:
        return None
    bad = [s for s in seams if visible(s)]
    line = f"{len(seams)} seam{'' if len(seams) == 1 else 's'}"
    scored = [s for s in seams if s.get("jump") is not None]
    if not scored:
        line += " (not scored: an animatic's title cards, or nothing rendered)"
    elif bad:
        line += f", {len(bad)} visible: " + "; ".join(
            f"{s['job']} at {timecode(s['frame'], fps)} ({s['kind']}): {s.get('advice') or ''}"
            for s in worst(bad, count))
        if len(bad) > count:
            line += f"; {len(bad) - count} more in run.json"
    else:
        line += ", none visible; the largest: " + "; ".join(
            f"{s['job']} at {timecode(s['frame'], fps)} ({s['kind']}) jump {s['jump']:.2f}, "
            f"color_shift {s['color_shift']:.2f}" for s in worst(seams, 1))
    drifts = [c for c in chains if c.get("drift") is not None]
    if drifts:
        chain = max(drifts, key=lambda c: c["drift"])
        line += (f"; largest color drift along a chain: {chain['drift']:.2f} ({chain['jobs'][0]}, "
                 f"{chain['windows']} windows)")
    return line + (f" (visible from jump {VISIBLE_JUMP:g}, about 1 when invisible; from color_shift {VISIBLE_SHIFT:g}, "
                   "CIEDE2000)")
