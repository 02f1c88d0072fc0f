r"""How a file was made, in the file: MP4 metadata (story, shot, take, seed, prompt, keys, version), stamped by
stream copy and read back.

Cache entries hold clips without these tags: a clip's pixels depend only on its key, but its story title and
shot id do not (two shots may share an entry), so the tags are written when a clip is placed in the output
folder, by copying its packets into a new file: no pixel changes, no re-encode, frame-exact.

Tags carry the exact text. MP4 keeps any UTF-8 in a tag but ends it at a NUL, and a lone surrogate (which a
story's JSON lock can hold) is not UTF-8 at all; and a tag shown by ffprobe or exiftool goes to a terminal. So a
text tag is written escaped: a backslash as `\\`, every control character but tab and newline (C0, DEL, C1) as
`\xHH`, a lone surrogate as `\uDHHH`; everything else as it is. `unescape` gives the text back. The film's
`storyforge_shots` is JSON, escaped JSON's own way (`\uHHHH`, which `json.loads` reads back).
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from storyforge import __version__
from storyforge.atomic import checked_path, regular, replacing

if TYPE_CHECKING:
    from storyforge.plan.model import Job, Plan

# Tags every file carries; `title` and `comment` are the standard ones players show, the rest are custom keys
# (written with movflags=use_metadata_tags, which ffprobe, PyAV and exiftool read back).
PREFIX = "storyforge_"
_ESCAPED = re.compile("[\\\\\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_JSON_ESCAPED = re.compile("[\x7f-\x9f\ud800-\udfff]")  # json.dumps escapes the C0 controls itself
_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")


def tag_text(text: str) -> str:
    """`text` as a tag holds it (see the module's docstring); `unescape` reverses it."""
    def escaped(match: re.Match[str]) -> str:
        char = match.group()
        return "\\\\" if char == "\\" else f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    return _ESCAPED.sub(escaped, text)


def unescape(tag: str) -> str:
    """The exact text a tag written by `tag_text` holds."""
    def plain(match: re.Match[str]) -> str:
        code = match.group(1)
        return "\\" if code == "\\" else chr(int(code[1:], 16))
    return _ESCAPE.sub(plain, tag)


def _json_tag(value: object) -> str:
    return _JSON_ESCAPED.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False,
                                                                               separators=(",", ":")))


def take_tags(plan: Plan, job: Job, cache_key: str) -> dict[str, str]:
    """The tags of one take's clip (`job` as that take renders it: its seed and key)."""
    tags = {
        "title": f"{plan.title} — {job.id}" + (f" take {job.take}" if job.takes > 1 else ""),
        "comment": job.prompt,
        "description": job.prompt,
        PREFIX + "version": __version__,
        PREFIX + "story": plan.title,
        PREFIX + "shot": job.id,
        PREFIX + "take": str(job.take),
        PREFIX + "takes": str(job.takes),
        PREFIX + "seed": str(job.seed),
        PREFIX + "prompt": job.prompt,
        PREFIX + "negative_prompt": job.settings.negative_prompt,
        PREFIX + "model": job.settings.model,
        PREFIX + "cache_key": cache_key,
        PREFIX + "job_key": job.key,
    }
    return {key: tag_text(value) for key, value in tags.items()}


def film_tags(plan: Plan, cache_keys: dict[str, str], cut_key: str | None = None) -> dict[str, str]:
    """The tags of the film: the story, and per shot the take it was cut from (shot, take, seed, keys, prompt)."""
    shots = [{"shot": job.id, "take": job.take, "takes": job.takes, "seed": job.seed, "prompt": job.prompt,
              "cache_key": cache_keys.get(job.id, ""), "job_key": job.key} for job in plan.jobs]
    tags = {
        "title": plan.title,
        "comment": f"made with storyforge {__version__} from {len(plan.jobs)} shots",
        PREFIX + "version": __version__,
        PREFIX + "story": plan.title,
    }
    if cut_key:
        tags[PREFIX + "cut_key"] = cut_key
    return {**{key: tag_text(value) for key, value in tags.items()}, PREFIX + "shots": _json_tag(shots)}


def read_tags(path: Path) -> dict[str, str]:
    """The container metadata of a media file, as PyAV reads it (as stored: `unescape` a text tag for its text)."""
    from storyforge.clipfile import open_video

    with open_video(path) as container:
        return dict(container.metadata)


def stamp(source: Path, target: Path, tags: dict[str, str]) -> bool:
    """`target` becomes `source` with `tags` (packets copied, timestamps and timescale kept), atomically;
    False when `target` already has them, from a source of the same size (a no-op render opens each file once).
    """
    import av

    source, target = checked_path(Path(source)), Path(target)  # both through the door: no link followed
    # the source's size tells a re-encoded cache entry (same key, new keyframes) from the one stamped before
    tags = {**tags, PREFIX + "source_bytes": str(getattr(regular(source), "st_size", 0))}
    if regular(target) is not None:
        try:
            have = read_tags(checked_path(target))
            if all(have.get(key) == value for key, value in tags.items()):
                return False
        except (av.FFmpegError, OSError, IndexError):
            pass
    with av.open(str(source)) as inp:
        stream = inp.streams.video[0]
        time_base = stream.time_base or Fraction(1, 1)
        options = {"movflags": "use_metadata_tags",
                   "video_track_timescale": str(time_base.denominator)}
        with replacing(target, suffix=".mp4") as partial:
            with av.open(str(partial), "w", format="mp4", options=options) as out:
                video = out.add_stream_from_template(stream)
                video.time_base = time_base
                out.metadata.update(tags)
                for packet in inp.demux(stream):
                    if packet.size == 0:
                        continue
                    packet.stream = video
                    out.mux(packet)
    return True

