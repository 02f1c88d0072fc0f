"""Checks that need the whole film or the disk: unique ids, transitions in order, files that exist and decode."""

from __future__ import annotations

import difflib
from pathlib import Path

from storyforge.errors import Problem
from storyforge.spec.load import PathKey, SourceMap
from storyforge.spec.models import Film
from storyforge.spec.presets import KEYFRAME_PRESETS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def check_film(film: Film, source: SourceMap, folder: Path) -> list[Problem]:
    """Every problem the models alone cannot see, each at its line."""
    problems: list[Problem] = []

    def problem(path: PathKey, where: str, message: str) -> None:
        problems.append(Problem(source.file, source.line(path), where, message))

    seen_scenes: dict[str, int] = {}
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
            kind = shot.transition_type
            if first and kind == "continue":
                problem(at + ("transition",), name,
                        "the first shot of the film has nothing to continue; use cut or fade")
            if first and kind == "crossfade":
                problem(at + ("transition",), name,
                        "the first shot of the film has nothing to crossfade from; use fade to fade in from black")
            if kind == "continue" and shot.image:
                problem(at + ("image",), name, "a continued shot starts from the previous shot's last frames, "
                        "so it cannot also have a start image; remove 'image' or use another transition")
            problems.extend(_cast_problems(film, source, at, name))
            for key in ("image", "end_image"):
                value = getattr(shot, key)
                if value:
                    message = image_problem(folder, value)
                    if message:
                        problem(at + (key,), name, message)
            first = False
    for group, items in (("characters", film.characters), ("locations", film.locations)):
        for name, item in items.items():
            if item.reference:
                message = image_problem(folder, item.reference)
                if message:
                    problem((group, name, "reference"), f"{group}.{name}", message)
    if film.keyframes is not None:
        model = film.keyframes.model
        if model not in KEYFRAME_PRESETS and "/" not in model and not (folder / model).is_dir():
            close = difflib.get_close_matches(model, list(KEYFRAME_PRESETS), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problem(("keyframes", "model"), "keyframes.model",
                    f"unknown keyframe model '{model}'; {hint}use {', '.join(KEYFRAME_PRESETS)}, a hub id "
                    "(owner/name) or a local folder")
    if film.audio:
        message = audio_problem(folder, film.audio)
        if message:
            problem(("audio",), "audio", message)
    return problems


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


def audio_problem(folder: Path, relative: str) -> str | None:
    """Why a soundtrack cannot be used, or None when it decodes (checked only where PyAV is installed)."""
    path = folder / relative
    if not path.is_file():
        return f"no such file '{relative}' (paths are relative to the story file)"
    try:
        import av  # the `video` extra; without it the render stops earlier and names the extra
    except ImportError:
        return None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return f"'{relative}' has no audio stream; use an audio file (MP3, AAC, WAV, FLAC, Ogg)"
            next(container.decode(audio=0))
    except (av.FFmpegError, StopIteration, OSError, ValueError) as error:
        return f"'{relative}' is not audio that can be decoded ({type(error).__name__}); re-export it"
    return None


def image_problem(folder: Path, relative: str) -> str | None:
    """Why an image path cannot be used, or None when it decodes."""
    path = folder / relative
    if not path.is_file():
        return f"no such file '{relative}' (paths are relative to the story file)"
    from PIL import Image, UnidentifiedImageError  # Pillow is light; planning needs to know images decode

    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        kind = "an image" if path.suffix.lower() in IMAGE_SUFFIXES else "an image (PNG, JPEG or WebP)"
        return f"'{relative}' is not {kind} that can be decoded ({type(error).__name__}); re-export it"
    return None
