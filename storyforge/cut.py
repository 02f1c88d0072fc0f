"""The cut's plan: where each clip's frames land on the film's timeline, which windows are re-encoded, which keyframes a clip needs, and which clips can be copied; arithmetic, no files."""  # noqa: E501

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyforge.clipfile import ENCODER
from storyforge.errors import StoryforgeError

TRANSITIONS = ("cut", "continue", "crossfade", "fade", "bridge")
# Part of cut_key: bump it whenever stitch() would produce different pixels or timing for the same inputs.
STITCH_VERSION = 2


class StitchError(StoryforgeError):
    """The clips could not be joined into the film."""


@dataclass(frozen=True)
class CutClip:
    """One job's clip on the film's timeline."""

    id: str  # "scene/shot"
    path: Path  # the clip file written by clipfile.write_clip
    frames: int  # frames in the clip (what it contributes before transitions)
    transition: str = "cut"  # how it begins: "cut" | "continue" | "crossfade" | "fade" | "bridge"
    transition_frames: int = 0  # 0 for cut/continue; a bridge: the frames of the bridge clip just before it




# -- the timeline: pure arithmetic, no files -------------------------------------------------------


def shape(entry: Any) -> tuple[int, str, int]:
    """(frames, transition, its length) of a CutClip, or of a plan Job (.transition with .type, .frames)."""
    transition = entry.transition
    if isinstance(transition, str):
        return int(entry.frames), transition, int(entry.transition_frames)
    return int(entry.frames), str(transition.type), int(transition.frames)


def name_of(entry: Any, index: int) -> str:
    return str(getattr(entry, "id", f"clip {index + 1}"))


def edges(clips: Sequence[Any]) -> list[tuple[int, int]]:
    """Per clip, (head, tail): how many of its first and last frames a transition window replaces."""
    if not clips:
        raise StitchError("nothing to stitch: no clips")
    shapes = [shape(c) for c in clips]
    heads = [0] * len(shapes)
    tails = [0] * len(shapes)
    for i, (frames, kind, length) in enumerate(shapes):
        name = name_of(clips[i], i)
        if kind not in TRANSITIONS:
            raise StitchError(f"{name}: unknown transition {kind!r}; use one of {', '.join(TRANSITIONS)}")
        if frames < 1:
            raise StitchError(f"{name}: a clip needs at least 1 frame, got {frames}")
        if kind in ("cut", "continue"):
            if length != 0:
                raise StitchError(f"{name}: a {kind} has no length, got {length} transition frames")
            continue
        if kind == "bridge":  # the bridge is a clip of its own, placed between the two shots: nothing overlaps
            bridge = shapes[i - 1] if i >= 2 else None
            if bridge is None or bridge[0] != length or bridge[1] != "continue":
                raise StitchError(f"{name}: a bridge of {length} frames needs its bridge clip ({length} frames, "
                                  f"continuing the clip before it) just before this clip, and a clip before that")
            continue
        if length < 1:
            raise StitchError(f"{name}: a {kind} needs at least 1 frame, got {length}")
        if i == 0:
            if kind == "crossfade":
                raise StitchError(f"{name}: the first clip has nothing to crossfade from; use fade")
            heads[0] = length  # the film fades in from black
        elif kind == "crossfade":
            heads[i], tails[i - 1] = length, length
        else:  # a fade: the outgoing clip darkens over length // 2, the incoming brightens over the rest
            heads[i], tails[i - 1] = length - length // 2, length // 2
    for i, (frames, _, _) in enumerate(shapes):
        if heads[i] + tails[i] > frames:
            raise StitchError(
                f"{name_of(clips[i], i)}: its transitions use {heads[i]} + {tails[i]} frames "
                f"but it has only {frames}"
            )
    return list(zip(heads, tails, strict=True))


def total_frames(clips: Sequence[Any]) -> int:
    """Frames of the film: every clip's frames, less each crossfade's overlap."""
    edges(clips)
    shapes = [shape(c) for c in clips]
    return sum(f for f, _, _ in shapes) - sum(n for _, kind, n in shapes if kind == "crossfade")


def sync_frames(clips: Sequence[Any]) -> list[list[int]]:
    """Per clip, the frame indices (besides 0) that must be sync frames (H.264 IDR frames; not the generated
    start pictures the story calls keyframes) for stitch() to stream-copy it.

    Takes CutClips, plan Jobs, or any objects with `frames` and either `transition` (str) plus
    `transition_frames`, or a `transition` with `.type` and `.frames`; no file is read. The index where
    a clip's untouched span starts must be a keyframe to copy from it; the index where its outgoing
    window starts is one too, so the window's frames decode without decoding the whole clip (measured on
    bench/cut_bench.py's 5 s clips: 40 ms for a 12-frame window from there, 147 ms from frame 0).
    """
    out = []
    for clip, (head, tail) in zip(clips, edges(clips), strict=True):
        frames = shape(clip)[0]
        out.append(sorted({k for k in (head, frames - tail) if 0 < k < frames}))
    return out


@dataclass(frozen=True)
class Copy:
    """Frames `start` .. `start + count - 1` of clip `clip`, their packets copied as they are."""

    clip: int
    start: int
    count: int


@dataclass(frozen=True)
class Blend:
    """Frames the cut renders itself (a crossfade or fade): per frame, terms (clip, frame index, weight) summed
    over black. Not a plan's Window (storyforge.plan.frames), which is a stretch of a generation."""

    frames: tuple[tuple[tuple[int, int, float], ...], ...]


def timeline(clips: Sequence[Any], edges: list[tuple[int, int]]) -> list[Copy | Blend]:
    """The film in order: windows to render (transitions) and spans of clips to copy; `edges` from edges()."""
    pieces: list[Copy | Blend] = []
    for i, clip in enumerate(clips):
        frames, kind, n = shape(clip)
        if i == 0 and kind == "fade":
            pieces.append(Blend(tuple(((0, k, k / n),) for k in range(n))))
        elif kind == "crossfade":
            before = shape(clips[i - 1])[0] - n
            weights = [(k + 1) / (n + 1) for k in range(n)]  # the incoming clip's share, never 0 or 1
            mixes = (((i - 1, before + k, 1 - w), (i, k, w)) for k, w in enumerate(weights))
            pieces.append(Blend(tuple(mixes)))
        elif kind == "fade":
            out, into = n // 2, n - n // 2
            before = shape(clips[i - 1])[0] - out
            # The last outgoing frame and the first incoming frame are fully black.
            darken = tuple(((i - 1, before + k, 1 - (k + 1) / out),) for k in range(out))
            brighten = tuple(((i, k, k / into),) for k in range(into))
            pieces.append(Blend(darken + brighten))
        head, tail = edges[i]
        if frames - head - tail > 0:
            pieces.append(Copy(i, head, frames - head - tail))
    return pieces


@dataclass(frozen=True)
class Probe:
    """What decides whether a clip's packets can sit next to the others' in one H.264 stream."""

    codec: str
    size: tuple[int, int]
    extradata: bytes  # the avcC box: SPS and PPS (profile, chroma, bit depth, colours, tools), per settings
    in_order: bool  # no B-frames, no edit list: packet n is frame n
    pts: tuple[int, ...]  # per packet, in decode order
    idr: frozenset[int]  # indices of the packets that begin with an IDR picture

    @property
    def signature(self) -> tuple[object, ...]:
        return (self.codec, self.size, self.extradata, self.in_order)


def names(clips: Sequence[Any]) -> list[str]:
    return [name_of(c, i) for i, c in enumerate(clips)]


def reencoded(probes: Sequence[Probe], reference: tuple[object, ...], size: tuple[int, int],
              edges: list[tuple[int, int]], labels: Sequence[str]) -> tuple[list[int], list[str]]:
    """The clips that cannot be stream-copied into the film (by index), and a warning saying why for each."""
    warnings, redo = [], []
    for i, (label, probe) in enumerate(zip(labels, probes, strict=True)):
        reason = mismatch(probe, reference, size, edges[i][0])
        if reason:
            redo.append(i)
            warnings.append(f"{label}: {reason}, so it was re-encoded to match the film")
    if redo and len(redo) == len(probes):
        warnings = [f"no clip was encoded with this version's settings; re-encoded all {len(probes)}"]
    return redo, warnings


def segments(pieces: Sequence[Copy | Blend], sources: Sequence[Path], windows: Path,
             redo: Sequence[int]) -> tuple[list[tuple[Path, int, int]], int]:
    """What the muxer copies, in order, as (file, first frame, frames) from the clips (or their re-encodes,
    `sources`) and from the one file of every rendered window; and how many frames come untouched from clips."""
    out: list[tuple[Path, int, int]] = []
    copied = window_at = 0
    for piece in pieces:
        if isinstance(piece, Blend):
            out.append((windows, window_at, len(piece.frames)))
            window_at += len(piece.frames)
        else:
            out.append((sources[piece.clip], piece.start, piece.count))
            copied += piece.count if piece.clip not in redo else 0
    return out, copied


def mismatch(probe: Probe, reference: tuple[object, ...], size: tuple[int, int], head: int) -> str | None:
    """Why a clip cannot be stream-copied into the film, or None."""
    if probe.size != size:
        return f"its size is {probe.size[0]}x{probe.size[1]}, not the film's {size[0]}x{size[1]} (scaled)"
    if probe.codec != "h264":
        return f"it is {probe.codec}, not h264"
    if not probe.in_order:
        return "it has B-frames or an edit list"
    if probe.signature != reference:
        return "it was encoded with other settings than the rest of the film"
    if head and head not in probe.idr:
        return f"it has no sync frame at frame {head}, where its copied part starts (see cut.sync_frames)"
    return None


def cut_key(clips: Sequence[Any], keys: Sequence[str], audio_sha256: str | None) -> str:
    """A sha256 over what decides the stitched film: clip keys, frames, transitions, audio and encoder."""
    if len(keys) != len(clips):
        raise ValueError(f"{len(clips)} clips but {len(keys)} keys")
    payload = {
        "stitch": STITCH_VERSION,
        "encoder": dataclasses.asdict(ENCODER),
        "clips": [[key, *shape(clip)] for key, clip in zip(keys, clips, strict=True)],
        "audio": audio_sha256,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
