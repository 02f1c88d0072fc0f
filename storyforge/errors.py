"""The error types the library raises; the CLI maps them to exit codes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

# The same mistake in this many places or more is said once, listing the places (one setting cascaded to every
# shot, one template mistake copied into many prompts).
GROUP_FROM = 3
LISTED = 5  # places named in a grouped message; the rest are counted
# the exit codes of the command line (storyforge.cli; storyforge.launch, for Ctrl-C while cli is imported)
EXIT_USER, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 1, 2, 3, 130


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a story file, at a line when we know it."""

    file: str
    line: int
    where: str
    message: str
    # what the message suggests, each a tuple of (setting, value) pairs to apply together, e.g.
    # (("duration", "97f"),) or (("overlap_frames", 17), ("duration", "337f")): the compiler tries each before it
    # suggests it, so every one plans
    fixes: tuple[tuple[tuple[str, Any], ...], ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        head = f"{self.file}:{self.line}" if self.line else self.file
        return f"{head}: {self.where}: {self.message}" if self.where else f"{head}: {self.message}"


def grouped(problems: list[Problem], *, verbose: bool = False) -> list[Problem]:
    """The problems as said to a person: one message said in GROUP_FROM places or more becomes one problem at its
    first place, naming the others (LISTED of them, then a count; every one with `verbose`)."""
    by_message: dict[tuple[str, str], list[Problem]] = {}
    for problem in problems:
        by_message.setdefault((problem.file, problem.message), []).append(problem)
    result = []
    for (_, message), same in by_message.items():
        if len(same) < GROUP_FROM:
            result.extend(same)
            continue
        first, others = same[0], same[1:]
        shown = others if verbose else others[:LISTED - 1]
        places = ", ".join(f"{p.where or 'line'} at line {p.line}" if p.where else f"line {p.line}" for p in shown)
        rest = len(others) - len(shown)
        more = f" and {rest} more (--verbose lists them)" if rest else ""
        result.append(Problem(first.file, first.line, f"{first.where} (and {places}{more})" if first.where else
                              f"(and {places}{more})", message, first.fixes))
    return sorted(result, key=lambda p: (p.file, p.line, p.where, p.message))


class StoryforgeError(Exception):
    """A failure the user can fix (exit code 1).

    Its message is one line as far as the terminal goes (a newline inside, from a path say, is shown escaped);
    `several` makes one of many lines, each shown as a line.
    """

    lines: tuple[str, ...] = ()

    @classmethod
    def several(cls, lines: list[str]) -> Self:
        error = cls("\n".join(lines))
        error.lines = tuple(lines)
        return error


class StoryError(StoryforgeError):
    """A story file is invalid: carries every problem found, sorted by line."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.where, p.message))
        super().__init__("\n".join(str(p) for p in grouped(self.problems)))


class PlanError(StoryError):
    """The story is well-formed but asks for something the model cannot render."""


class MissingExtra(StoryforgeError):
    """An optional package is needed for this command and is not installed."""

    def __init__(self, package: str, extra: str, what: str):
        self.package, self.extra = package, extra
        super().__init__(
            f"{what} needs the Python package '{package}', which is not installed. "
            f"Install it with: pip install 'storyforge[{extra}]'"
        )


class RenderError(StoryforgeError):
    """A render failed for a reason the user can act on; finished clips stay cached."""


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the working folder when it is below it."""
    try:
        # its folder resolved, its own name kept: a link is named as itself, never as the file it points to (the
        # advice "remove it" must not point at somebody else's file)
        absolute = Path(os.path.abspath(path))
        return str((absolute.parent.resolve() / absolute.name).relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # outside the working folder; a symlink loop
        return str(path)
