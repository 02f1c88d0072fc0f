"""Checks that need the whole film or the disk: unique ids, transitions in order, files that exist and decode."""

from __future__ import annotations

import difflib
import io
from collections.abc import Iterator
from typing import Any

from storyforge.errors import Problem
from storyforge.story.models import Film
from storyforge.story.root import PathRefused, StoryRoot, read_bytes
from storyforge.story.source import PathKey, SourceMap, where

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
MAX_IMAGE_BYTES = 100_000_000
MAX_IMAGE_PIXELS = 40_000_000  # 8K UHD is 33 million; a start frame is scaled to the film's size (4096 a side at most)
MAX_AUDIO_BYTES = 2_000_000_000

# Every key that names a file, as a pattern of its key path ("*" = any id or index), and what it holds.
# Anything added later that names a file goes here, so it is confined and checked like the rest.
FILE_KEYS: tuple[tuple[PathKey, str], ...] = (
    (("scenes", "*", "shots", "*", "image"), "image"),
    (("scenes", "*", "shots", "*", "end_image"), "image"),
    (("characters", "*", "reference"), "image"),
    (("locations", "*", "reference"), "image"),
    (("audio",), "audio"),
)


def named_files(data: Any) -> Iterator[tuple[PathKey, str, str]]:
    """(key path, path as written, kind) for every file a story's raw data names, in FILE_KEYS."""
    for pattern, kind in FILE_KEYS:
        for path, value in _matches(data, pattern, ()):
            if isinstance(value, str) and value:
                yield path, value, kind


def _matches(data: Any, pattern: PathKey, path: PathKey) -> Iterator[tuple[PathKey, Any]]:
    if not pattern:
        yield path, data
        return
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
        for key, value in items:
            yield from _matches(value, rest, path + (key,))
    elif isinstance(data, dict) and head in data:
        yield from _matches(data[head], rest, path + (head,))


def check_files(data: Any, source: SourceMap, root: StoryRoot) -> list[Problem]:
    """Every file the story names: inside its root, a regular file, and decodable; each problem at its line.

    Works on the raw data, so files are checked even when the story has format mistakes elsewhere.
    """
    problems = []
    for path, written, kind in named_files(data):
        message = file_problem(root, written, kind)
        if message:
            problems.append(Problem(source.file, source.line(path), where(path[:-1] if len(path) > 1 else path, data),
                                    message))
    return problems


def file_problem(root: StoryRoot, written: str, kind: str) -> str | None:
    """Why the file a story names as `written` cannot be used as `kind` (image or audio), or None."""
    try:
        path = root.locate(written)
    except PathRefused as refused:
        return str(refused)
    return image_problem(path, written) if kind == "image" else audio_problem(path, written)


def check_film(film: Film, source: SourceMap) -> list[Problem]:
    """Every problem the models alone cannot see, each at its line."""
    problems: list[Problem] = []

    def problem(path: PathKey, where: str, message: str) -> None:
        problems.append(Problem(source.file, source.line(path), where, message))

    seen_scenes: dict[str, int] = {}
    files: dict[str, tuple[str, int]] = {}  # output file name -> the shot that has it, and its line
    first = True
    for s, scene in enumerate(film.scenes):
        if scene.id in seen_scenes:
            problem(("scenes", s, "id"), scene.id,
                    f"scene id '{scene.id}' is already used at line {seen_scenes[scene.id]}; ids must be unique")
        else:
            seen_scenes[scene.id] = source.line(("scenes", s, "id"))
        seen_shots: dict[str, int] = {}
        for i, shot in enumerate(scene.shots):
            at = ("scenes", s, "shots", i)
            name = f"{scene.id}/{shot.id}"
            if shot.id in seen_shots:
                problem(at + ("id",), name, f"shot id '{shot.id}' is already used at line "
                        f"{seen_shots[shot.id]} in scene '{scene.id}'; ids must be unique within a scene")
            else:
                seen_shots[shot.id] = source.line(at + ("id",))
                _one_file_name(files, name, source.file, source.line(at + ("id",)), problem, at)
            kind = shot.transition_type
            if first and kind == "continue":
                problem(at + ("transition",), name,
                        "the first shot of the film has nothing to continue; use cut or fade")
            if first and kind == "crossfade":
                problem(at + ("transition",), name,
                        "the first shot of the film has nothing to crossfade from; use fade to fade in from black")
            if first and kind == "bridge":
                problem(at + ("transition",), name,
                        "the first shot of the film has nothing to bridge from (a bridge continues the shot before "
                        "it); use cut or fade")
            if kind == "continue" and shot.image:
                problem(at + ("image",), name, "a continued shot starts from the previous shot's last frames, "
                        "so it cannot also have a start image; remove 'image' or use another transition")
            problems.extend(_cast_problems(film, source, at, name))
            problems.extend(_speaker_problems(film, source, at, name))
            first = False
    return problems


def file_stem(shot_id: str) -> str:
    """A shot's name among the output files: `scene__shot` (clips/, takes/, keyframes/)."""
    return shot_id.replace("/", "__")


def _one_file_name(files: dict[str, tuple[str, int]], name: str, file: str, line: int, problem: Any,
                   at: PathKey) -> None:
    """Two shots whose ids join into one output name (`x/y__z` and `x__y/z` are both `x__y__z`) would share their
    clip, takes and keyframe: the second is refused, naming the first."""
    stem = file_stem(name)
    if stem not in files:
        files[stem] = (name, line)
        return
    other, other_line = files[stem]
    problem(at + ("id",), name,
            f"shot '{name}' and shot '{other}' ({file}:{other_line}) would share the output name '{stem}' "
            f"(clips/{stem}.mp4, takes/{stem}/, keyframes/{stem}.png); rename one of them or its scene so that "
            "scene and shot ids joined by '__' differ (ids without '__' never collide)")


def _cast_problems(film: Film, source: SourceMap, at: PathKey, name: str) -> list[Problem]:
    """A shot's `cast` names characters of the film, each once."""
    problems = []
    seen: set[str] = set()
    for k, member in enumerate(film.scenes[at[1]].shots[at[3]].cast):
        if member in seen:
            message = f"'{member}' is already in the cast; list each character once"
        elif member not in film.characters:
            close = difflib.get_close_matches(member, list(film.characters), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            known = ", ".join(film.characters) or "(none; add them under `characters:`)"
            message = f"unknown character '{member}' in the cast; {hint}known characters: {known}"
        else:
            seen.add(member)
            continue
        problems.append(Problem(source.file, source.line(at + ("cast", k)), name, message))
    return problems


def _speaker_problems(film: Film, source: SourceMap, at: PathKey, name: str) -> list[Problem]:
    """Whoever speaks a shot's dialogue is a character of the film."""
    problems = []
    for k, spoken in enumerate(film.scenes[at[1]].shots[at[3]].dialogue):
        if spoken.character in film.characters:
            continue
        close = difflib.get_close_matches(spoken.character, list(film.characters), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        known = ", ".join(film.characters) or "(none; add them under `characters:`)"
        problems.append(Problem(source.file, source.line(at + ("dialogue", k, "character")), name,
                                f"unknown character '{spoken.character}' speaks in the dialogue; {hint}"
                                f"known characters: {known}"))
    return problems


def audio_problem(path: Any, written: str) -> str | None:
    """Why a soundtrack cannot be used, or None when it decodes (checked only where PyAV is installed)."""
    try:
        import av  # the `video` extra; without it the render stops earlier and names the extra
    except ImportError:
        return None
    if path.stat().st_size > MAX_AUDIO_BYTES:
        return (f"'{written}' is larger than {MAX_AUDIO_BYTES // 1_000_000_000} GB; use a shorter or compressed "
                "soundtrack")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return f"'{written}' has no audio stream; use an audio file (MP3, AAC, WAV, FLAC, Ogg)"
            next(container.decode(audio=0))
    except (av.FFmpegError, StopIteration, OSError, ValueError, MemoryError) as error:
        return f"'{written}' is not audio that can be decoded ({type(error).__name__}); re-export it"
    return None


def image_problem(path: Any, written: str) -> str | None:
    """Why an image cannot be used, or None when every pixel decodes (a header alone proves nothing)."""
    from PIL import Image, UnidentifiedImageError  # Pillow is light; planning needs to know images decode

    kind = "an image" if path.suffix.lower() in IMAGE_SUFFIXES else "an image (PNG, JPEG or WebP)"
    try:
        data = read_bytes(path, MAX_IMAGE_BYTES, shown=f"'{written}'")
    except PathRefused as refused:
        return str(refused)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size  # from the header: refuse a bomb before decoding it
            if width * height > MAX_IMAGE_PIXELS:
                return (f"'{written}' is {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS // 1_000_000} "
                        "million an image may have; scale it down")
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, MemoryError, Image.DecompressionBombError,
            EOFError, IndexError, TypeError) as error:
        return f"'{written}' is not {kind} that can be decoded ({type(error).__name__}); re-export it"
    return None
