"""storyforge's own bookkeeping files read back: the output manifest and run.json, typed, bounded, through the door.

Somebody may have edited, replaced or planted them, so each is read as untrusted input: a size bound before
parsing, a depth bound while parsing, and every field checked for its type; what does not fit is dropped
(run.json, which only informs) or refused with one message saying what to do (the manifest, which decides
what storyforge may replace).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storyforge.confined import Folder, Refused
from storyforge.errors import StoryforgeError
from storyforge.report import Host

MANIFEST = ".storyforge-out.json"
MANIFEST_FORMAT = 1
MAX_MANIFEST_BYTES = 16_000_000
MAX_RUN_BYTES = 64_000_000
MAX_ENTRIES = 200_000  # files in one output folder: far more than any film has
MAX_RUN_ITEMS = 4_000_000  # separators in run.json: ~60 per take and seam, so ~60000 takes
MAX_NAME = 1024


def plain(name: object) -> bool:
    """A relative path below a folder, as storyforge writes them (`clips/a__b.mp4`): no way out, no oddities."""
    return (isinstance(name, str) and 0 < len(name) <= MAX_NAME and not name.startswith("/") and "\\" not in name
            and name.isprintable() and _encodable(name)
            and all(part not in ("", ".", "..") for part in name.split("/")))


def _encodable(name: str) -> bool:
    """Whether the file system can be asked about `name` (a lone surrogate, from JSON's \\ud800, cannot)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ManifestError(StoryforgeError):
    """The output folder's manifest cannot be read, so storyforge cannot tell its own files from others'."""


@dataclass(frozen=True)
class Manifest:
    """What the output manifest says: files storyforge finished, and files a run announced before writing them
    (`pending`, with that run's `nonce`: a run that never finished left them)."""

    files: frozenset[str] = frozenset()
    pending: frozenset[str] = frozenset()
    nonce: str | None = None
    found: bool = False  # whether there was a manifest at all

    @property
    def ours(self) -> frozenset[str]:
        return self.files | self.pending


def read_manifest(out: Folder) -> Manifest:
    """The manifest of the output folder `out`; Manifest() when there is none; ManifestError when it is not one
    storyforge can read (with what to do)."""
    try:
        data = out.read_json(MANIFEST, MAX_MANIFEST_BYTES, items=3 * MAX_ENTRIES)
    except FileNotFoundError:
        return Manifest()
    except Refused as refused:
        raise ManifestError(str(refused)) from None
    except ValueError as error:
        raise _bad(out, str(error) if "entries" in str(error) else f"it is not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("storyforge_out") != MANIFEST_FORMAT:
        raise _bad(out, f"it is not a storyforge output manifest of format {MANIFEST_FORMAT}")
    lists = {}
    for name in ("files", "pending"):
        value = data.get(name, [])
        if not isinstance(value, list):
            raise _bad(out, f"its '{name}' is not a list")
        if len(value) > MAX_ENTRIES:
            raise _bad(out, f"its '{name}' has more than {MAX_ENTRIES} entries")
        lists[name] = frozenset(entry for entry in value if plain(entry))  # a hand-edited entry cannot reach out
    nonce = data.get("run")
    if nonce is not None and not (isinstance(nonce, str) and nonce.isalnum() and len(nonce) <= 64):
        raise _bad(out, "its 'run' is not a run's nonce")
    return Manifest(lists["files"], lists["pending"], nonce if lists["pending"] else None, found=True)


def _bad(out: Folder, why: str) -> ManifestError:
    return ManifestError(f"{out.path / MANIFEST} is not an output manifest storyforge can read ({why}), so storyforge "
                         "cannot tell the files it wrote there from yours; move the files you want to keep out of "
                         f"{out.path}, remove {MANIFEST}, and render again (or render into another folder with --out)")


def manifest_text(files: set[str] | frozenset[str], pending: set[str] | frozenset[str] = frozenset(),
                  nonce: str | None = None) -> str:
    import json

    data: dict[str, Any] = {"storyforge_out": MANIFEST_FORMAT, "files": sorted(files)}
    if pending:
        data.update(pending=sorted(pending), run=nonce)
    return json.dumps(data, indent=1) + "\n"


# -- run.json ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TakeLine:
    take: int
    key: str | None
    clip: str | None  # a plain path below the output folder
    status: str | None
    seconds: float | None = None
    rendered_by: Host | None = None  # the process that rendered it (None: from the cache, or not said)


@dataclass(frozen=True)
class KeyframeLine:
    """One keyframe picture of run.json, its fields checked: what is missing or of the wrong type is None."""

    id: str | None
    image: str  # a plain path below the output folder
    status: str | None
    started: float | None = None
    finished: float | None = None
    rendered_by: Host | None = None  # the process that made it (None: from the cache, or not said)


@dataclass(frozen=True)
class JobLine:
    """One job of run.json, its fields checked: what is missing or of the wrong type is None."""

    id: str
    key: str | None
    status: str | None
    clip: str | None
    take: int
    takes: tuple[TakeLine, ...]
    raw: dict[str, Any]  # the line's plain fields (numbers and text) for reports

    @property
    def all_takes(self) -> tuple[TakeLine, ...]:
        """Its takes, or the job itself as take 1 (a render before takes)."""
        return self.takes or (TakeLine(1, self.key, self.clip, self.status),)


@dataclass(frozen=True)
class RunFile:
    """run.json of the last render in an output folder, checked; `problem` says why it was unusable, if it was."""

    jobs: tuple[JobLine, ...] = ()
    seams: tuple[dict[str, Any], ...] = ()
    backend: str | None = None
    cut_key: str | None = None
    film_bytes: int | None = None
    total_frames: int | None = None
    keyframes: tuple[KeyframeLine, ...] = ()  # keyframe pictures, their images plain paths below the folder
    driver: Host | None = None  # the process that drove the render
    found: bool = False
    problem: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def job(self, job_id: str) -> JobLine | None:
        return next((line for line in self.jobs if line.id == job_id), None)

    def to_json(self) -> dict[str, Any]:
        """The checked fields as run.json spells them (for readers written against the JSON)."""
        return {"backend": self.backend, "cut_key": self.cut_key, "film_bytes": self.film_bytes,
                "total_frames": self.total_frames, "seams": [dict(seam) for seam in self.seams],
                "jobs": [{"id": line.id, "key": line.key, "status": line.status, "clip": line.clip, "take": line.take,
                          **line.raw, **({"takes": [{"take": t.take, "key": t.key, "clip": t.clip, "status": t.status,
                                                     "seconds": t.seconds} for t in line.takes]} if line.takes else {})}
                         for line in self.jobs]} if self.found else {}

    def files(self) -> set[str]:
        """Every file of the folder this render says it wrote (clips, takes, their posters, keyframes)."""
        names: set[str] = set()
        for line in self.jobs:
            for take in line.all_takes:
                if take.clip:
                    names.add(take.clip)
                    if take.clip.startswith("takes/") and take.clip.count("/") == 2:  # its poster on the page
                        folder, file = take.clip[len("takes/"):].split("/")
                        names.add(f"review/{folder}.{file[:-len('.mp4')]}.jpg")
            if line.clip:
                names.add(line.clip)
        for keyframe in self.keyframes:
            image = keyframe.image
            names.add(image)
            if image.startswith("keyframes/") and image.endswith(".png"):
                names.add(f"review/{image[len('keyframes/'):-len('.png')]}.keyframe.jpg")
        return names


def _integer(value: Any, *, low: int = 0, high: int = 10**12) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high else None


def _text(value: Any, limit: int = 4096) -> str | None:
    """A string field as storyforge writes them: bounded, and encodable (a lone surrogate, JSON's \\ud800, would
    break the first page or file it is written into)."""
    return value if isinstance(value, str) and len(value) <= limit and _encodable(value) else None


def _number(value: Any) -> float | None:
    import math

    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _host(value: Any) -> Host | None:
    """A `{"host", "pid"}` field as storyforge writes them (where a take or keyframe rendered, the driver)."""
    if not isinstance(value, dict):
        return None
    host, pid = _text(value.get("host"), 255), _integer(value.get("pid"), high=2**32)
    return Host(host, pid) if host is not None and pid is not None else None


def read_run(out: Folder) -> RunFile:
    """run.json in `out`, checked field by field; RunFile(found=False) when there is none or it is unusable."""
    try:
        data = out.read_json("run.json", MAX_RUN_BYTES, items=MAX_RUN_ITEMS)
    except FileNotFoundError:
        return RunFile()
    except (Refused, ValueError) as error:
        return RunFile(problem=str(error))
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        return RunFile(problem="it is not a storyforge run.json")
    jobs = []
    for raw in data["jobs"][:MAX_ENTRIES]:
        if not isinstance(raw, dict) or _text(raw.get("id"), 512) is None:
            continue
        takes = []
        for take in raw.get("takes") if isinstance(raw.get("takes"), list) else ():
            if isinstance(take, dict) and _integer(take.get("take"), low=1, high=10_000) is not None:
                takes.append(TakeLine(take["take"], _text(take.get("key")),
                                      take.get("clip") if plain(take.get("clip")) else None, _text(take.get("status")),
                                      _number(take.get("seconds")), _host(take.get("rendered_by"))))
        plainfields = {k: v for k, v in raw.items()
                       if k in ("seconds", "started", "finished") and _number(v) is not None}
        jobs.append(JobLine(raw["id"], _text(raw.get("key")), _text(raw.get("status")),
                            raw.get("clip") if plain(raw.get("clip")) else None,
                            _integer(raw.get("take"), low=1, high=10_000) or 1, tuple(takes), plainfields))
    seams = []
    for seam in data.get("seams") if isinstance(data.get("seams"), list) else ():
        if isinstance(seam, dict) and _text(seam.get("job"), 512) is not None \
                and _integer(seam.get("frame"), high=10**9) is not None and _text(seam.get("kind"), 64) is not None:
            seams.append({"job": seam["job"], "frame": seam["frame"], "kind": seam["kind"],
                          "jump": _number(seam.get("jump")), "color_shift": _number(seam.get("color_shift"))})
    lines = data.get("keyframes") if isinstance(data.get("keyframes"), list) else []
    keyframes = tuple(KeyframeLine(_text(line.get("id"), 512), line["image"], _text(line.get("status")),
                                   _number(line.get("started")), _number(line.get("finished")),
                                   _host(line.get("rendered_by")))
                      for line in lines[:MAX_ENTRIES] if isinstance(line, dict) and plain(line.get("image")))
    return RunFile(jobs=tuple(jobs), seams=tuple(seams), backend=_text(data.get("backend"), 64),
                   cut_key=_text(data.get("cut_key")), film_bytes=_integer(data.get("film_bytes")),
                   total_frames=_integer(data.get("total_frames"), high=10**9), keyframes=keyframes,
                   driver=_host(data.get("driver")), found=True,
                   extra={"storyforge_run": data.get("storyforge_run")})
