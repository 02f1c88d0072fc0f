"""The settings cascade (preset -> film -> scene -> shot -> command line), resolved paths and image hashes."""

from __future__ import annotations

import difflib
import hashlib
import io
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from storyforge.errors import Problem, StoryError, StoryforgeError
from storyforge.story.load import PathKey, Story
from storyforge.story.models import RenderSettings, Scene, Shot, parse_duration, parse_memory, parse_resolution
from storyforge.story.presets import DEFAULT_MODEL, DEFAULTS, I2V_DEFAULTS, KEYFRAME_PRESETS, PRESETS, preset
from storyforge.story.root import PathRefused, open_regular, read_bytes


@dataclass(frozen=True)
class Settings:
    """Every generation setting of one shot, with nothing left unset."""

    model: str
    width: int
    height: int
    fps: int
    steps: int
    guidance: float
    shift: float
    base_frames: int
    overlap_frames: int
    ar_step: int
    causal_block_size: int
    addnoise_condition: int
    seed: int
    negative_prompt: str
    cache: str | None
    causal_attention: bool = False  # block-causal attention (a dense mask) instead of full attention
    color_match: bool = True
    takes: int = 1
    offload: str = "model"  # none | model | sequential (on a GPU)
    gpu_memory: int | None = None  # bytes the GPU has, when the story says


@dataclass(frozen=True)
class Image:
    """A reference image (or the soundtrack): where it is and the hash of its bytes."""

    path: Path
    relative: str
    sha256: str

    def read(self) -> bytes:
        """The image's bytes, read from one descriptor opened without following a link, and exactly the bytes
        the plan hashed (its key): a file swapped or edited after planning is an error, never rendered."""
        from storyforge.errors import StoryforgeError
        from storyforge.story.checks import MAX_IMAGE_BYTES

        try:
            data = read_bytes(self.path, MAX_IMAGE_BYTES, shown=f"'{self.relative}'", nofollow=True)
        except PathRefused as refused:
            raise StoryforgeError(f"{refused} (it was checked when the story was planned)") from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise StoryforgeError(f"'{self.relative}' changed after the story was planned (its bytes are not the "
                                  "ones the plan hashed); render again, so the plan uses the image as it is now")
        return data

    def stream(self) -> io.BytesIO:
        """`read()` as a file object, for an image decoder."""
        return io.BytesIO(self.read())


@dataclass(frozen=True)
class ResolvedShot:
    """A shot with its scene, its final settings and where each setting was written."""

    id: str
    scene: Scene
    shot: Shot
    path: PathKey  # the shot's key path in the story file
    settings: Settings
    origins: dict[str, PathKey]
    seed_is_explicit: bool
    image: Image | None
    end_image: Image | None


@dataclass(frozen=True)
class ResolvedFilm:
    """A story with every shot resolved."""

    story: Story
    shots: tuple[ResolvedShot, ...]
    audio: Image | None
    # reference images of characters and locations: ("characters" | "locations", name) -> image
    references: dict[tuple[str, str], Image] = field(default_factory=dict)
    keyframe_model: str | None = None  # `keyframes.model` resolved: a preset, an absolute folder or a hub id

    @property
    def fps(self) -> int:
        return self.shots[0].settings.fps

    @property
    def size(self) -> tuple[int, int]:
        return self.shots[0].settings.width, self.shots[0].settings.height


def file_sha256(path: Path, shown: str | None = None) -> str:
    """The sha256 of a regular file, from one descriptor checked when opened (see storyforge.story.root)."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path, shown=shown or f"'{path}'", nofollow=True), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _image(story: Story, relative: str | None, at: PathKey) -> Image | None:
    if not relative:
        return None
    try:
        path = story.locate(relative)  # checked when the story loaded; the same gate again, right before reading
    except PathRefused as refused:
        raise StoryError([Problem(story.source.file, story.source.line(at), "", str(refused))]) from None
    try:
        sha256 = file_sha256(path, f"'{relative}'")
    except PathRefused as refused:
        raise StoryError([Problem(story.source.file, story.source.line(at), "", str(refused))]) from None
    return Image(path=path, relative=relative, sha256=sha256)


def _model_folder(story: Story, model: str, at: PathKey) -> str:
    """A model the story names: a local folder inside the story root (made absolute), else a hub id as written.

    A path that leaves the root is refused like any file the story names; a hub id ("org/name") stays a hub id.
    """
    try:
        return str(story.locate(model, folder=True))
    except PathRefused as refused:
        looks_like_path = model.startswith(("/", "./", "../", "~")) or "\\" in model
        if looks_like_path and "outside the story root" in str(refused):
            raise StoryError([Problem(story.source.file, story.source.line(at), "", str(refused))]) from None
        return model


# A hub id as the hub spells one: owner/name, letters, digits, '-', '_' and '.' (no '..', no leading '-' or '.')
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def model_problem(model: str, found: bool) -> str | None:
    """Why `model` names no model: not a preset, not an existing folder (`found`), not shaped like a hub id."""
    if preset(model) is not None or found or (HUB_ID.match(model) and ".." not in model):
        return None
    close = difflib.get_close_matches(model, list(PRESETS), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    shaped = "/" in model or model.startswith((".", "~")) or "\\" in model
    what = f"no model folder '{model}'" if shaped else f"unknown model '{model}'"
    return f"{what}; {hint}use a preset ({', '.join(PRESETS)}), a hub id (owner/name) or a local folder"


def _check_models(story: Story) -> None:
    """Every `model:` the story writes names a model: one error per place it is written, before any shot."""
    film = story.film
    layers: list[tuple[RenderSettings | None, PathKey, str]] = [(film.render, ("render",), "render.model")]
    for s, scene in enumerate(film.scenes):
        layers.append((scene.render, ("scenes", s, "render"), f"{scene.id}.render.model"))
        layers += [(shot.render, ("scenes", s, "shots", i, "render"), f"{scene.id}/{shot.id}.render.model")
                   for i, shot in enumerate(scene.shots)]
    problems = []
    for layer, at, label in layers:
        model = layer.model if layer is not None else None
        if not model or preset(model) is not None:
            continue
        try:
            found, message = story.locate(model, folder=True).is_dir(), None
        except PathRefused as refused:  # a folder outside the root says so (the same gate as every path)
            found, message = False, str(refused) if "outside the story root" in str(refused) else None
        if not found and message is None and model.startswith("~"):
            # a home-relative folder is found as --model finds it; each machine reads it from its own home
            found = Path(model).expanduser().is_dir()
        message = message or model_problem(model, found)
        if message:
            problems.append(Problem(story.source.file, story.source.line(at + ("model",)), label, message))
    if problems:
        raise StoryError(problems)


def resolve(story: Story, overrides: dict[str, Any] | None = None) -> ResolvedFilm:
    """Cascade the settings of every shot; raise StoryError when shots disagree on fps or size."""
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    RenderSettings.model_validate(overrides)  # a bad override is a usage error caught by the caller
    if "model" in overrides:  # the command line's --model: the same rule, said as a usage mistake
        message = model_problem(overrides["model"], Path(overrides["model"]).expanduser().is_dir())
        if message:
            raise StoryforgeError(f"--model: {message}")
    else:
        _check_models(story)
    film, folder = story.film, story.path.parent
    shots: list[ResolvedShot] = []
    for s, scene in enumerate(film.scenes):
        for i, shot in enumerate(scene.shots):
            shots.append(_resolve_shot(story, s, scene, i, shot, overrides, folder))
    _check_film_wide(story, shots)
    _check_work(story, shots)
    references = {(group, name): _image(story, item.reference, (group, name, "reference"))
                  for group, items in (("characters", film.characters), ("locations", film.locations))
                  for name, item in items.items() if item.reference}
    return ResolvedFilm(story=story, shots=tuple(shots), audio=_image(story, film.audio, ("audio",)),
                        references=references, keyframe_model=_keyframe_model(story))  # type: ignore[arg-type]


def _keyframe_model(story: Story) -> str | None:
    """The film's keyframe model: a preset, a local folder inside the story root (made absolute), or a hub id."""
    spec = story.film.keyframes
    if spec is None or spec.model in KEYFRAME_PRESETS:
        return spec.model if spec is not None else None
    at = ("keyframes", "model")
    try:
        model = _model_folder(story, spec.model, at)
    except StoryError as refused:  # the same gate as every path; said at `keyframes.model`
        raise StoryError([replace(p, where="keyframes.model") for p in refused.problems]) from None
    if model == spec.model and "/" not in model:  # neither a folder nor an owner/name hub id: a misspelt preset?
        close = difflib.get_close_matches(model, list(KEYFRAME_PRESETS), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise StoryError([Problem(story.source.file, story.source.line(at), "keyframes.model",
                                  f"unknown keyframe model '{model}'; {hint}use {', '.join(KEYFRAME_PRESETS)}, a hub "
                                  "id (owner/name) or a local folder")])
    return model


def _resolve_shot(story: Story, s: int, scene: Scene, i: int, shot: Shot, overrides: dict[str, Any],
                  folder: Path) -> ResolvedShot:
    shot_path: PathKey = ("scenes", s, "shots", i)
    layers: list[tuple[RenderSettings | None, PathKey]] = [
        (story.film.render, ("render",)),
        (scene.render, ("scenes", s, "render")),
        (shot.render, shot_path + ("render",)),
    ]
    values: dict[str, Any] = {}
    origins: dict[str, PathKey] = {}
    for layer, at in layers:
        if layer is not None:
            for key in layer.model_fields_set:
                if getattr(layer, key) is None and key != "cache":
                    continue  # `fps: null` sets nothing: the value cascades from above (only cache: null means off)
                values[key] = getattr(layer, key)
                origins[key] = at + (key,)
    for key, value in overrides.items():
        values[key] = value
        origins[key] = shot_path
    model = values.pop("model", None) or DEFAULT_MODEL
    chosen = preset(model)
    if chosen is None and "model" not in overrides:  # the command line's --model is the user's own choice
        model = _model_folder(story, model, origins.get("model", shot_path))
    elif chosen is None and (folder / model).is_dir():
        model = str((folder / model).resolve())
    defaults = dict(DEFAULTS)
    defaults["resolution"] = chosen.resolution if chosen else "540p"
    defaults["base_frames"] = chosen.base_frames if chosen else 97
    defaults["steps"] = chosen.steps if chosen else 30
    if shot.image:
        defaults.update(I2V_DEFAULTS)
    for key, value in defaults.items():
        if key not in values:
            values[key] = value
            origins[key] = shot_path
    explicit_seed = shot.seed is not None or (shot.render is not None and "seed" in shot.render.model_fields_set)
    if shot.seed is not None:
        values["seed"] = shot.seed
        origins["seed"] = shot_path + ("seed",)
    if values.get("gpu_memory") is not None:
        values["gpu_memory"] = parse_memory(values["gpu_memory"])
    width, height = parse_resolution(values.pop("resolution"))
    origins["width"] = origins["height"] = origins["resolution"]
    settings = Settings(model=model, width=width, height=height, **values)
    return ResolvedShot(
        id=f"{scene.id}/{shot.id}", scene=scene, shot=shot, path=shot_path, settings=settings,
        origins=origins, seed_is_explicit=explicit_seed,
        image=_image(story, shot.image, shot_path + ("image",)),
        end_image=_image(story, shot.end_image, shot_path + ("end_image",)),
    )


MAX_WINDOWS = 20_000  # generation windows in a film: a 2-hour film has about 2,200 at 24 fps; planning stays < 1 s


def _check_work(story: Story, shots: list[ResolvedShot]) -> None:
    """A film that needs more than MAX_WINDOWS windows is one error at the shot that crosses the bound.

    Planning costs about one step per window, so this bounds it however long the shots and however small
    the stride (base_frames - overlap_frames) a story asks for."""
    total = 0
    for shot in shots:
        s = shot.settings
        seconds, frames = parse_duration(shot.shot.duration)
        frames = frames if frames is not None else max(1, round((seconds or 0) * s.fps))
        latent, base = (frames - 1) // 4 + 1, (s.base_frames - 1) // 4 + 1
        stride = base - ((s.overlap_frames - 1) // 4 + 1)
        total += 1 if latent <= base or stride <= 0 else 2 + (latent - base - 1) // stride
        if total > MAX_WINDOWS:
            line = story.source.line(shot.path + ("duration",))
            raise StoryError([Problem(story.source.file, line, shot.id, f"the film needs more than "
                                      f"{MAX_WINDOWS:,} generation windows by this shot (windows of "
                                      f"{s.base_frames} frames overlapping by {s.overlap_frames}); real films need "
                                      "far fewer: shorten the shots, or overlap the windows less")])


def _check_film_wide(story: Story, shots: list[ResolvedShot]) -> None:
    """One film has one fps and one frame size: a shot that differs is an error at its setting."""
    first = shots[0]
    problems = []
    for shot in shots[1:]:
        for key, label in (("fps", "fps"), ("size", "resolution")):
            mine_value = (shot.settings.width, shot.settings.height) if key == "size" else shot.settings.fps
            first_value = (first.settings.width, first.settings.height) if key == "size" else first.settings.fps
            if mine_value != first_value:
                mine, theirs = shot.settings, first.settings
                value = mine.fps if key == "fps" else f"{mine.width}x{mine.height}"
                other = theirs.fps if key == "fps" else f"{theirs.width}x{theirs.height}"
                problems.append(Problem(
                    story.source.file, story.source.line(shot.origins[key if key == "fps" else "resolution"]),
                    shot.id, f"{label} {value} differs from the film's {other} (shot {first.id}); every shot "
                    f"of a film shares one {label}: set it once under the film's `render:`"))
    if problems:
        raise StoryError(problems[:1] + [p for p in problems[1:] if p.line != problems[0].line])
