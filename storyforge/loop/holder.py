"""The model holder: the one model (a backend) this process keeps loaded, handed on to whoever needs the same
one and freed before another loads, so a device never holds two; it counts every model read from disk."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class ModelHolder:
    """At most one loaded backend at a time, by (name, options). A backend counts the models it read from disk in
    its `model_loads` attribute (a backend without one reads none); `loads` is the sum over every backend held."""

    def __init__(self, loaded: Any = None, *, name: str | None = None, options: dict[str, Any] | None = None):
        """`loaded`: a backend built by the caller, who also closes it (`name` and `options` say what it is);
        it is handed out for that name and options and never closed here."""
        self._held: tuple[str, Any] | None = None
        self._borrowed = loaded is not None
        self._freed_loads = 0  # loads of backends held before, freed since
        if loaded is not None:
            self._held = (_key(name or loaded.name, options or {}), loaded)
            self._freed_loads = -int(getattr(loaded, "model_loads", 0))  # what it had read before it came here
        self.notices: list[str] = []  # what loading said (an unverified diffusers version, say), once per load

    def get(self, name: str, options: dict[str, Any], load: Callable[[], Any]) -> Any:
        """The backend `name` with `options`: the one held when it is that one, else (the held one freed first)
        `load()`."""
        key = _key(name, options)
        if self._held is not None and self._held[0] == key:
            return self._held[1]
        self.free()
        backend = load()
        self._held, self._borrowed = (key, backend), False
        self.notices.extend(getattr(backend, "notices", ()))
        return backend

    @property
    def held(self) -> Any:
        return self._held[1] if self._held is not None else None

    def holding(self, name: str, options: dict[str, Any]) -> Any:
        """The held backend when it is `name` with `options` (what get would hand out without loading), else None."""
        return self._held[1] if self._held is not None and self._held[0] == _key(name, options) else None

    @property
    def loads(self) -> int:
        """Models read from disk by every backend this holder held (since it got them)."""
        current = int(getattr(self._held[1], "model_loads", 0)) if self._held is not None else 0
        return self._freed_loads + current

    def free(self) -> None:
        """Close the held backend (unless it was lent to this holder) and hold nothing."""
        if self._held is None:
            return
        backend = self._held[1]
        self._freed_loads += int(getattr(backend, "model_loads", 0))
        self._held = None
        if not self._borrowed:
            backend.close()
        self._borrowed = False


def _key(name: str, options: dict[str, Any]) -> str:
    return json.dumps([name, options], sort_keys=True, default=str)
