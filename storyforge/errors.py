"""The error types the library raises; the CLI maps them to exit codes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Self


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a story file, at a line when we know it."""

    file: str
    line: int
    where: str
    message: str

    def __str__(self) -> str:
        head = f"{self.file}:{self.line}" if self.line else self.file
        return f"{head}: {self.where}: {self.message}" if self.where else f"{head}: {self.message}"


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
        super().__init__("\n".join(str(p) for p in self.problems))


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
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # outside the working folder; a symlink loop
        return str(path)
