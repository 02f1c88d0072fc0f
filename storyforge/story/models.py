"""The story format, version 1: frozen pydantic models of a Film and its scenes and shots."""

from __future__ import annotations

import functools
import re
from typing import Annotated, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*[sf]?\s*$"
RESOLUTION_PATTERN = r"^(540p|720p|\d+x\d+)$"
RESOLUTIONS = {"540p": (960, 544), "720p": (1280, 720)}
# Upper bounds real films never reach; they keep validating and planning any story file to milliseconds.
MAX_SHOT_SECONDS = 600  # one shot (one generation) of 10 minutes; long films are many shots
MAX_SHOT_FRAMES = 72_000  # 10 minutes at 120 fps
MAX_SIDE = 4096  # pixels per side of a frame
MAX_WINDOW_FRAMES = 257  # base_frames and overlap_frames (97 at 540p, 121 at 720p)
MAX_TAKES = 16  # takes of one shot: more is a lottery nobody reviews, and each costs a full render

Id = Annotated[str, Field(pattern=ID_PATTERN, description="Lower-case letters, digits, '-' and '_'.")]
Duration = Annotated[
    float | str,
    Field(
        description='A length: "4s", "4.5s", "97f" (frames), or a number of seconds. Must be > 0.',
        # the schema's pattern also refuses zero lengths and fractional frames, as parse_duration does
        json_schema_extra={"pattern": r"^\s*(?:(?=[\d.]*[1-9])\d+(?:\.\d+)?\s*s?|\d*[1-9]\d*\s*f)\s*$",
                           "exclusiveMinimum": 0},
    ),
]


@functools.lru_cache(maxsize=4096, typed=True)  # typed: True is not 1 here (a bool is refused)
def parse_duration(value: float | str) -> tuple[float | None, int | None]:
    """(seconds, None) or (None, frames) for a duration as written in a story file (read four times a shot:
    the model, the work bound, the plan and its transitions; a film has few distinct ones)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds, or text like '4s' or '97f'")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"duration must be greater than 0, got {value}")
        return _bounded_seconds(float(value), value), None
    text = str(value).strip()
    if not re.match(DURATION_PATTERN, text):
        raise ValueError(f"'{value}' is not a duration; write seconds like '4s' or '4.5s', or frames like '97f'")
    if text.endswith("f"):
        number = text[:-1].strip()
        if "." in number:
            raise ValueError(f"'{value}': a frame count is a whole number, like '97f'")
        if len(number) > 9:
            raise ValueError(f"'{value}' is longer than a shot may last: at most {MAX_SHOT_FRAMES}f "
                             f"({MAX_SHOT_SECONDS // 60} minutes at 120 fps); split it into shots")
        frames = int(number)
        if frames <= 0:
            raise ValueError(f"duration must be greater than 0, got '{value}'")
        if frames > MAX_SHOT_FRAMES:
            raise ValueError(f"'{value}' is longer than a shot may last: at most {MAX_SHOT_FRAMES}f "
                             f"({MAX_SHOT_SECONDS // 60} minutes at 120 fps); split it into shots")
        return None, frames
    seconds = float(text.rstrip("s").strip())
    if seconds <= 0:
        raise ValueError(f"duration must be greater than 0, got '{value}'")
    return _bounded_seconds(seconds, value), None


def _bounded_seconds(seconds: float, written: float | str) -> float:
    if seconds > MAX_SHOT_SECONDS:
        shown = f"'{written}'" if isinstance(written, str) else f"{written}s"
        raise ValueError(f"{shown} is longer than a shot may last: at most {MAX_SHOT_SECONDS}s "
                         f"({MAX_SHOT_SECONDS // 60} minutes); split it into shots")
    return seconds


MEMORY_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*(GB|GiB|G)?\s*$"


def parse_memory(value: float | str) -> int:
    """Bytes of a memory size as written: 24GB, 24 GiB, 80G or 24 (GB); GB means 2^30 bytes, as GPUs are sold."""
    if isinstance(value, bool):
        raise ValueError("gpu_memory is a size like 24GB")
    match = re.match(MEMORY_PATTERN, str(value), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0 or float(match.group(1)) > 100_000:
        raise ValueError(f"'{value}' is not a memory size; write the GPU's memory like 24GB or 80GB")
    return int(float(match.group(1)) * 2**30)


def parse_resolution(value: str) -> tuple[int, int]:
    """(width, height) for '540p', '720p' or 'WIDTHxHEIGHT'."""
    if value in RESOLUTIONS:
        return RESOLUTIONS[value]
    width, height = (int(part) for part in value.split("x"))
    return width, height


class Strict(BaseModel):
    """Frozen, unknown keys are errors, and a number is a number (what the JSON Schema says too)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_text_or_yes_for_numbers(cls, value: object, info: ValidationInfo) -> object:
        # pydantic would turn "24" into 24 and true into 1; YAML already types numbers, so either is a mistake
        if isinstance(value, (str, bool)) and info.field_name is not None:
            number, text = _takes(cls, info.field_name)
            if number and isinstance(value, bool):
                raise ValueError(f"expected a number, got {value} (YAML reads true/false, yes/no and on/off as "
                                 "True/False)")
            if number and not text and _is_number(value):
                raise ValueError(f"{value!r} is text, not a number; write the number without quotes")
        return value


@functools.cache
def _takes(model: type[BaseModel], name: str) -> tuple[bool, bool]:
    """Whether a field takes a number, and whether it takes text."""
    kinds = _kinds(model.model_fields[name].annotation)
    return bool({int, float} & kinds), str in kinds


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def _kinds(annotation: object) -> set[object]:
    """The plain types an annotation admits (the types of Literal values included)."""
    if get_origin(annotation) is Literal:
        return {type(arg) for arg in get_args(annotation)}
    args = get_args(annotation)
    if not args:
        return {annotation}
    return set().union(*(_kinds(arg) for arg in args))


class RenderSettings(Strict):
    """Generation settings; each one cascades film -> scene -> shot, and unset ones come from the preset."""

    model: str | None = Field(
        None,
        description="A preset (df-1.3b-540p, df-14b-540p, df-14b-720p, tiny), a hub id, or a local folder.",
    )
    resolution: str | None = Field(
        None,
        pattern=RESOLUTION_PATTERN,
        description="540p (960x544), 720p (1280x720) or WIDTHxHEIGHT, both multiples of 16.",
    )
    fps: int | None = Field(None, gt=0, le=120, description="Frames per second of the film.")
    steps: int | None = Field(None, ge=1, le=1000, description="Denoising steps per window.")
    guidance: float | None = Field(None, ge=0, le=50, description="Classifier-free guidance scale.")
    shift: float | None = Field(None, gt=0, le=100, description="Flow shift of the scheduler.")
    base_frames: int | None = Field(
        None, ge=1, le=MAX_WINDOW_FRAMES,
        description="Frames the model generates in one window (4k+1: 97 at 540p, 121 at 720p)."
    )
    overlap_frames: int | None = Field(
        None, ge=1, le=MAX_WINDOW_FRAMES,
        description="Frames shared by consecutive windows and continued shots (4k+1: 17 or 37)."
    )
    ar_step: int | None = Field(None, ge=0, le=1000, description="0 = synchronous; > 0 = asynchronous DF.")
    causal_block_size: int | None = Field(None, ge=1, le=64, description="Latent frames per causal block.")
    causal_attention: bool | None = Field(
        None, description="Block-causal attention in blocks of causal_block_size (SkyReels' --causal_attention): "
        "a dense mask of (window tokens)^2 bytes per call (about 2.4 GiB at 540p); off = full attention, as the "
        "reference runs by default.",
    )
    addnoise_condition: int | None = Field(
        None, ge=0, le=50, description="Noise added to the conditioning frames of later windows (0-50)."
    )
    seed: int | None = Field(None, ge=0, lt=2**32, description="Seed; shots without their own derive one.")
    negative_prompt: str | None = Field(None, description="What the model should avoid.")
    cache: Literal["magcache", "firstblock"] | None = Field(
        None, description="Experimental transformer cache (speed-up); only for plans with equal windows."
    )
    color_match: bool | None = Field(
        None, strict=True,
        description="Colour-correct each new window and continued shot toward the frames it continues (default true).",
    )
    takes: int | None = Field(
        None, ge=1, le=MAX_TAKES,
        description="Takes rendered per shot, each with its own seed; `storyforge pick` chooses one (default 1).",
    )
    gpu_memory: float | str | None = Field(
        None,
        description="The GPU's memory, e.g. 24GB (GB and GiB both mean 2^30 bytes, as GPUs are sold; a bare number is "
                    "GB): the plan refuses what cannot fit and names what would.",
        json_schema_extra={"pattern": r"^\s*\d+(\.\d+)?\s*(GB|GiB|G)?\s*$"},
    )
    offload: Literal["none", "model", "sequential"] | None = Field(
        None,
        description="CPU offload on a GPU: none (everything resident), model (one component at a time; the default), "
                    "sequential (module by module: least memory, slowest). The VAE decodes in tiles where it saves "
                    "memory.",
    )

    @field_validator("gpu_memory")
    @classmethod
    def _memory(cls, value: float | str | None) -> float | str | None:
        if value is not None:
            parse_memory(value)
        return value

    @field_validator("resolution")
    @classmethod
    def _multiple_of_16(cls, value: str | None) -> str | None:
        if value is not None and value not in RESOLUTIONS:
            if any(len(side) > 6 for side in value.split("x")):
                raise ValueError(f"resolution {value[:20]}… is larger than {MAX_SIDE}x{MAX_SIDE}; use 540p or 720p")
            width, height = parse_resolution(value)
            if width > MAX_SIDE or height > MAX_SIDE:
                raise ValueError(f"resolution {value} is larger than {MAX_SIDE}x{MAX_SIDE} pixels; use 540p, 720p "
                                 f"or WIDTHxHEIGHT up to {MAX_SIDE} a side")
            if width % 16 or height % 16 or not width or not height:
                near = f"{max(16, round(width / 16) * 16)}x{max(16, round(height / 16) * 16)}"
                raise ValueError(
                    f"resolution {value} is not a multiple of 16 in both sides; use {near}, 540p or 720p"
                )
        return value


class TransitionSpec(Strict):
    """A transition with its length (and, for a bridge, what the generated frames show)."""

    type: Literal["cut", "continue", "crossfade", "fade", "bridge"] = Field(description="How the shot begins.")
    duration: Duration = Field("0.5s", description="Length of a crossfade, fade or bridge.")
    prompt: str | None = Field(
        None, description="What a bridge shows, a Jinja template with the shot's names plus `previous` and `next` "
                          "(the two shots' final prompts); default: the two prompts joined.")

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: float | str) -> float | str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _length_only_for_blends(self) -> TransitionSpec:
        if self.type in ("cut", "continue") and "duration" in self.model_fields_set:
            raise ValueError(f"a '{self.type}' has no length; remove 'duration' or use crossfade or fade")
        if self.prompt is not None and self.type == "continue":  # both at once would be a cycle: see Shot
            raise ValueError("a shot either continues the previous one or is reached by a bridge, not both (a "
                             "bridge ends on this shot's first frame, which a continue would make from the "
                             "bridge's); remove 'prompt', or use type: bridge")
        if self.prompt is not None and self.type != "bridge":
            raise ValueError(f"a '{self.type}' has no prompt: only a bridge generates frames of its own; remove "
                             f"'prompt' or use type: bridge")
        return self


Transition = Union[Literal["cut", "continue", "crossfade", "fade", "bridge"], TransitionSpec]  # noqa: UP007 (pydantic on 3.10)


class _Described(Strict):
    """A cast member or place: written as a mapping, or as just its description."""

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        return {"description": value} if isinstance(value, str) else value


class Character(_Described):
    """Someone who appears in the film; renders as its description in templates."""

    description: str = Field(description="How the character looks; this text is what `{{ characters.x }}` gives.")
    reference: str | None = Field(None, description="An image of the character, relative to the story file.")


class Location(_Described):
    """A place in the film; renders as its description in templates."""

    description: str = Field(description="How the place looks; this text is what `{{ locations.x }}` gives.")
    reference: str | None = Field(None, description="An image of the place, relative to the story file.")


KEYFRAME_MODEL = "qwen-image-edit"


class Keyframes(Strict):
    """Generated start frames: an image-edit model composes the cast's and location's references per shot."""

    model: str = Field(
        KEYFRAME_MODEL,
        description="A keyframe preset (qwen-image-edit, tiny), a hub id or a local folder of a diffusers "
                    "image-edit pipeline that takes a list of images.",
    )
    steps: int = Field(40, ge=1, le=1000, description="Denoising steps per keyframe.")
    guidance: float = Field(4.0, ge=0, le=50, description="Classifier-free guidance scale of the edit model.")
    seed: int = Field(0, ge=0, lt=2**32, description="Seed; each shot's keyframe derives its own from it.")
    takes: int = Field(1, ge=1, le=MAX_TAKES,
                       description="Candidate start pictures per shot, each with its own seed; `storyforge pick FILE "
                                   "SHOT --keyframe N` (or the studio) chooses the one the video starts from.")
    template: str | None = Field(
        None,
        description="The edit instruction, a Jinja template with `prompt`, `camera`, `pictures`, `cast` and "
                    "`location` in scope; default: the pictures named in order, then the prompt and camera.",
    )


class Enhance(Strict):
    """How prompts are written out: a template, optionally expanded by an instruct LLM."""

    template: str = Field(
        "plain", description="A packaged template (plain, cinematic) or a path to a .j2 file."
    )
    llm: str | None = Field(None, description="An instruct model (hub id or local folder) that expands prompts.")
    seed: int = Field(0, ge=0, lt=2**32, description="Seed for the LLM's decoding.")
    max_new_tokens: int = Field(256, ge=1, le=4096, description="Longest expansion the LLM may write.")


class DialogueLine(Strict):
    """A line spoken in a shot, kept for people (the review page) and templates (`shot.dialogue`)."""

    character: str = Field(pattern=NAME_PATTERN, description="Who speaks: a key of `characters`.")
    line: str = Field(description="What is said; a parenthetical such as '(quietly)' may lead it.")


class SeamSpec(Strict):
    """What the seam report should know about a shot's seams."""

    intended: bool = Field(False, strict=True, description="The change at this shot's seams is asked for: they are "
                                                            "reported, never flagged, and its chain's drift is not "
                                                            "scored.")


class Shot(Strict):
    """One generation: a prompt, a length, optional start/end images, and how it begins."""

    id: Id
    prompt: str = Field(description="What happens; a Jinja template.")
    camera: str | None = Field(None, description="Shot type and camera motion, e.g. 'wide shot, slow push in'.")
    duration: Duration
    image: str | None = Field(None, description="Start frame (image-to-video), relative to the story file.")
    end_image: str | None = Field(None, description="End frame, relative to the story file.")
    transition: Transition = Field(
        "cut", description="cut, continue, crossfade, fade or bridge, or {type, duration} ({type: bridge, duration, "
                           "prompt} generates a shot from the previous shot's last frames to this one's first).")
    cast: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = Field(
        default_factory=list,
        description="Characters in the shot besides those its texts use (keys of `characters`).")
    seed: int | None = Field(None, ge=0, lt=2**32, description="This shot's seed.")
    render: RenderSettings | None = None
    seams: SeamSpec | None = Field(
        None, description="How the seam report reads this shot's seams: {intended: true} when the change at them is "
                          "asked for (a lighting change in the prompt, a start-to-end image move).")
    dialogue: list[DialogueLine] = Field(
        default_factory=list,
        description="Lines spoken in the shot, in order; not rendered, but templates can use `shot.dialogue`.")

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: float | str) -> float | str:
        parse_duration(value)
        return value

    @property
    def transition_type(self) -> str:
        return self.transition if isinstance(self.transition, str) else self.transition.type

    @property
    def transition_duration(self) -> float | str:
        return "0.5s" if isinstance(self.transition, str) else self.transition.duration

    @property
    def bridge_prompt(self) -> str | None:
        """A bridge's own prompt template, when it has one."""
        return None if isinstance(self.transition, str) else self.transition.prompt


class Scene(Strict):
    """A run of shots in one place."""

    id: Id
    location: str | None = Field(None, description="A key of `locations`, or free text.")
    description: str | None = Field(None, description="Scene context; a Jinja template.")
    render: RenderSettings | None = None
    shots: list[Shot] = Field(min_length=1)


class Film(Strict):
    """A whole story file."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="storyforge story file, format 1")

    storyforge: Literal[1] = Field(description="Format version of the story file.")
    title: str = Field(min_length=1)
    render: RenderSettings | None = None
    style: str | None = Field(None, description="Look of the whole film; a Jinja template.")
    characters: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Character] = Field(default_factory=dict)
    locations: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Location] = Field(default_factory=dict)
    keyframes: Keyframes | None = Field(
        None, description="Generate a start frame for every shot that starts a take and has references.")
    enhance: Enhance = Field(default_factory=lambda: Enhance.model_validate({}))
    scenes: list[Scene] = Field(min_length=1)
    audio: str | None = Field(None, description="A soundtrack, trimmed or padded to the cut.")
