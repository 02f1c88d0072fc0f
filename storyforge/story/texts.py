"""What templates hand the compiler: a shot's words after templates, and the keyframe instruction writer's shape."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ShotText:
    """A shot's prompt and camera words after templates."""

    prompt: str
    camera: str | None
    cast: tuple[str, ...] = ()  # characters the shot's texts use, in order


# Writes a keyframe's edit instruction from the job's final prompt and camera words and what the picture shows:
# (prompt, camera, reference names in picture order, cast, location) -> instruction.
KeyframeWriter = Callable[[str, "str | None", Sequence[str], Sequence[str], "str | None"], str]
