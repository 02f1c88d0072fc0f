"""Where each value of a story file was written: the source map and readable key paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PathKey = tuple[Any, ...]


@dataclass(frozen=True)
class FileLine:
    """A place in a story file, printed `file:line` in messages."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class SourceMap:
    """Where each value of a story file was written: key path -> line (1-based)."""

    file: str
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line(self, path: PathKey) -> int:
        """The line of the deepest known prefix of `path`."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def at(self, path: PathKey) -> FileLine:
        """Where `path` was written, as a typed `file:line`."""
        return FileLine(self.file, self.line(path))


def where(path: PathKey, data: Any = None) -> str:
    """A readable location: 'render.fps', 'dawn.location', 'dawn/glide.duration' (ids when known)."""
    parts = list(path)
    label = ""
    if len(parts) >= 2 and parts[0] == "scenes" and isinstance(parts[1], int):
        scene = _pick(data, ["scenes", parts[1]])
        scene_label = scene.get("id") if isinstance(scene, dict) and isinstance(scene.get("id"), str) else None
        label = scene_label or f"scenes[{parts[1]}]"
        parts = parts[2:]
        if len(parts) >= 2 and parts[0] == "shots" and isinstance(parts[1], int):
            shot = _pick(scene, ["shots", parts[1]]) if isinstance(scene, dict) else None
            shot_label = shot.get("id") if isinstance(shot, dict) and isinstance(shot.get("id"), str) else None
            label += "/" + (shot_label or f"shots[{parts[1]}]")
            parts = parts[2:]
    for part in parts:
        if isinstance(part, int):
            label += f"[{part}]"
        else:
            label += ("." if label else "") + str(part)
    return label or "(top)"


def _pick(data: Any, path: list[Any]) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
