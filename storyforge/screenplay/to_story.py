"""A Script turned into story data: headings to scenes and locations, cues to characters, action to shots.

The mapping, element by element:

- scene heading (INT./EXT./EST./INT./EXT./I/E, forced .HEADING, #12# numbers) -> a scene; its place -> a location
  shared by every scene there; interior/exterior and time of day -> the scene's description;
- section (#) and synopsis (=) -> the description of the scene that follows (a synopsis right under a heading:
  that scene's);
- action paragraph -> a shot: the text is the prompt, the length comes from DURATION RULE below;
- character cue + dialogue -> `dialogue: [{character, line}]` on the shot it follows (parentheticals and lyrics
  lead or join the line), a `characters:` entry per speaker with a placeholder description, and the speaker in
  the shot's `cast` unless it is a voice off screen (V.O., O.S., O.C.);
- transition -> how the next shot begins, by its key word: CUT TO: (SMASH CUT, TIME CUT, INTERCUT WITH: ...)
  cut, DISSOLVE TO: crossfade, FADE IN:/FADE OUT./FADE TO BLACK. fade; any other (BURN TO PINK., BACK TO:) is
  reported and the next shot cuts; one at the very end is reported (a story's transitions begin shots);
- notes, boneyard, page breaks, centred text and lyrics outside dialogue -> nothing (counted in the report).

DURATION RULE: an action paragraph is read at 3 words a second and its dialogue spoken at 2.5 words a second
(150 words a minute; parentheticals are not spoken); the sum, at least 2 s, is snapped to the nearest frame count
the model makes without waste (4k+1 frames within one window, or whole windows of base_frames and overlap_frames
after it), at most three windows (257 frames at 24 fps, 10.7 s); longer paragraphs are cut to that length
(`--llm` splits them into shots instead).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from storyforge.plan.frames import is_generation_length, latents, snap
from storyforge.screenplay.script import Element, Script, script_error
from storyforge.story.load import MAX_SHOTS
from storyforge.story.presets import DEFAULT_MODEL, DEFAULTS, PRESETS

ACTION_WORDS_PER_SECOND = 3.0
SPOKEN_WORDS_PER_SECOND = 2.5
MIN_SECONDS = 2.0
MAX_TEXT_CHARS = 2_000  # a prompt, speech or description; the video model's text encoder reads about 512 tokens
MAX_WINDOWS = 3
PLACEHOLDER = "TODO: describe {name} (age, build, face, hair, clothes)"
OFF_SCREEN = {"V.O.", "VO", "O.S.", "OS", "O.C.", "OC", "V.O", "O.S", "O.C"}
_TIMES = {"DAY", "NIGHT", "MORNING", "AFTERNOON", "EVENING", "DAWN", "DUSK", "SUNRISE", "SUNSET", "NOON",
          "MIDNIGHT", "CONTINUOUS", "LATER", "SAME", "MOMENTS", "TWILIGHT", "LATE", "EARLY", "MAGIC", "HOUR",
          "NIGHTFALL", "DAYBREAK", "PRE-DAWN", "CONTINUING", "SAME TIME"}
_PREFIX = re.compile(r"^(INT\.?/EXT|EXT\.?/INT|INT|EXT|EST|I/E|E/I)\.?\s*", re.IGNORECASE)
_PARTS = re.compile(r"(?:^| )(?:-{1,2}|–|—)(?: |$)")  # "PLACE - ROOM - TIME", "- TIME"
_SIDES = {"INT": "interior", "EXT": "exterior", "EST": "establishing shot, exterior",
          "INT/EXT": "interior and exterior", "EXT/INT": "exterior and interior", "I/E": "interior and exterior",
          "E/I": "exterior and interior"}
# by the word that says what happens: SMASH CUT TO:, TIME CUT TO:, INTERCUT WITH: cut; DISSOLVE TO: crossfades
_CUTS = re.compile(r"\b(?:CUT|CUTS|INTERCUT|SMASH)\b")
_DISSOLVES = re.compile(r"\b(?:DISSOLVE|DISSOLVES|CROSSFADE|MIX)\b")
_FADES = re.compile(r"\bFADE[SD]?\b")
_SPOKEN = re.compile(r"\([^()]*\)")  # parentheticals and extensions are not spoken
_TEMPLATE_MARKS = re.compile(r"\{(?=[{%#])")  # each '{' before '{', '%' or '#': "{{{" has two
_ARTICLES = {"a", "an", "the", "and", "of", "to", "in", "on", "at", "is", "are", "we", "with"}


@dataclass(frozen=True)
class Geometry:
    """What the duration rule needs of the model: frames per second and its window sizes."""

    fps: int
    base_frames: int
    overlap_frames: int

    @classmethod
    def default(cls) -> Geometry:
        return cls(int(DEFAULTS["fps"]), PRESETS[DEFAULT_MODEL].base_frames, int(DEFAULTS["overlap_frames"]))

    def without_waste(self, frames: int) -> bool:
        """4k+1 frames within one window, or the first window and whole further windows."""
        if not is_generation_length(frames):
            return False
        if frames <= self.base_frames:
            return True
        step = latents(self.base_frames) - latents(self.overlap_frames)
        return (latents(frames) - latents(self.base_frames)) % step == 0

    @property
    def longest(self) -> int:
        step = 4 * (latents(self.base_frames) - latents(self.overlap_frames))
        return self.base_frames + (MAX_WINDOWS - 1) * step

    def frames(self, seconds: float) -> int:
        wanted = min(max(round(seconds * self.fps), 1), self.longest)
        return snap(wanted, self.without_waste) or self.base_frames


def duration_frames(action: str, spoken: list[str], geometry: Geometry) -> int:
    """Frames for a shot by the DURATION RULE (module docstring)."""
    seconds = len(action.split()) / ACTION_WORDS_PER_SECOND + sum(
        len(_SPOKEN.sub(" ", line).split()) for line in spoken) / SPOKEN_WORDS_PER_SECOND
    return geometry.frames(max(seconds, MIN_SECONDS))


def transition_of(text: str) -> str | None:
    """The story transition a screenplay transition maps to, or None when storyforge has none like it."""
    words = " ".join(text.upper().split())
    if _DISSOLVES.search(words):
        return "crossfade"
    if _FADES.search(words):
        return "fade"
    if _CUTS.search(words):
        return "cut"
    return None


def slug(text: str, limit: int = 40) -> str:
    """Lower-case ASCII words joined by '-' (for ids): "INT. BRICK'S POOL - DAY" -> "int-bricks-pool-day"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    ascii_text = re.sub(r"['’]", "", ascii_text.lower())
    words = re.findall(r"[a-z0-9]+", ascii_text)
    out = ""
    for word in words:
        if len(out) + len(word) + 1 > limit and out:
            break
        out = f"{out}-{word}" if out else word
    return out[:limit]


def name_key(name: str) -> str:
    """A character or location key templates can use: "MR. STEEL" -> "mr_steel"; "" when nothing is left."""
    key = slug(name, 60).replace("-", "_")
    if key and key[0].isdigit():
        key = "n_" + key
    return key


def spelled_in_ascii(text: str) -> bool:
    """Whether ASCII keeps every letter and digit of `text` (accents aside): "José" yes, "ИВАН 2" or "李明" no."""
    return all(c.isascii() or not c.isalnum() for c in unicodedata.normalize("NFKD", text))


def fingerprint(text: str) -> str:
    """Six hex digits of a text, the same in every import of it: what tells apart names ASCII cannot spell (an
    id from their order would change meaning when the script gains a name above them)."""
    normal = " ".join(unicodedata.normalize("NFKC", text).upper().split())
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()[:6]


def stable_key(name: str, kind: str) -> str:
    """A name's key: its ASCII words ("mr_steel"), with the name's fingerprint when ASCII drops some of its
    letters ("ivan" is not enough for "ИВАН", nor "n_2" for "ИВАН 2"): "character_3fa9c1", "n_2_0b1e44"."""
    key = name_key(name)
    if key and spelled_in_ascii(name):
        return key
    return f"{key[:40] or kind}_{fingerprint(name)}"


def safe_text(text: str) -> str:
    """Script text as story text: one line, and never Jinja syntax (a '{{' in a script is not a template)."""
    return _TEMPLATE_MARKS.sub("{ ", " ".join(text.split()))


def _not_templates(value: Any) -> Any:
    """Every text in story data made safe_text's way, wherever it came from in the script (a name, a heading's
    time of day): story texts are templates, a script's never are."""
    if isinstance(value, dict):
        return {key: _not_templates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_not_templates(item) for item in value]
    return _TEMPLATE_MARKS.sub("{ ", value) if isinstance(value, str) else value


def heading_parts(heading: str) -> tuple[str | None, str, str | None]:
    """("interior" | ... | None, place, time of day | None) of a scene heading."""
    side = None
    match = _PREFIX.match(heading)
    rest = heading
    if match:
        side = _SIDES.get(match.group(1).upper().replace("./", "/"))
        rest = heading[match.end():]
    # "PLACE - TIME", "PLACE - ROOM - TIME", and "- TIME" with no place
    # on single spaces: '\s+' before a dash would try every run of spaces again at each of its positions
    split = [p.strip() for p in _PARTS.split(" ".join(rest.split()))]
    time = None
    if len(split) > 1 and set(re.findall(r"[A-Z-]+", split[-1].upper())) & _TIMES:
        time = split.pop()
    parts = [part for part in split if part]
    return side, " - ".join(parts), time


@dataclass
class Built:
    """The story data made from a script, where each scene and shot came from, and what to tell the writer."""

    data: dict[str, Any]
    origins: dict[str, dict[str, Any]]  # "scenes": id -> {heading, line}; "shots": "scene/shot" -> {text, line}
    warnings: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)  # character keys whose description is a placeholder
    left_out: Counter[str] = field(default_factory=Counter)


@dataclass
class _Shot:
    text: str
    line: int
    transition: str | None = None
    dialogue: list[tuple[str, str]] = field(default_factory=list)
    cast: list[str] = field(default_factory=list)
    camera: str | None = None
    part: int = 0  # the index of this shot among those one paragraph was split into
    spoken_only: bool = False


@dataclass
class _Scene:
    heading: str
    line: int
    number: str | None
    description: list[str]
    location: str | None
    shots: list[_Shot] = field(default_factory=list)


class _Builder:
    def __init__(self, script: Script, geometry: Geometry):
        self.script, self.geometry = script, geometry
        self.scenes: list[_Scene] = []
        self.characters: dict[str, str] = {}  # key -> name as written (first seen)
        self.locations: dict[str, str] = {}  # key -> place as written
        self.pending_transition: tuple[str, int, str] | None = None  # (type, line, text)
        self.pending_notes: list[str] = []
        self.warnings: list[str] = []
        self.left_out: Counter[str] = Counter()
        self.cue: Element | None = None
        self.spoken: list[str] = []
        self.shots = 0

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(f"{self.script.file}:{line}: {message}" if line else f"{self.script.file}: {message}")

    def run(self) -> None:
        for element in self.script.elements:
            if element.kind not in ("dialogue", "parenthetical", "lyric") or self.cue is None:
                self.end_speech()
            getattr(self, f"on_{element.kind}")(element)
        self.end_speech()
        if self.pending_transition is not None and transition_of(self.pending_transition[2]) is not None:
            kind, line, text = self.pending_transition
            self.warn(line, f"'{text}' ends the script; a story's transitions begin shots, so the film simply ends")
        for scene in self.scenes:
            if not scene.shots:  # a heading alone (titles, a POV) is one establishing shot of its place
                prompt = safe_text(_place_prompt(scene.heading))
                shot = _Shot(prompt if any(c.isalnum() for c in prompt) else "the place", scene.line)
                shot.camera = "establishing shot"
                scene.shots.append(shot)

    # -- elements ----------------------------------------------------------------------------------------------
    def on_heading(self, element: Element) -> None:
        side, place, time = heading_parts(element.text)
        key = None
        if any(c.isalnum() for c in place):  # "INT. - NIGHT" names no place: the scene has no location
            key = stable_key(place, "place")
            self.locations.setdefault(key, place)
        described = ", ".join(part.lower() for part in (side, time) if part)
        description = [described[:1].upper() + described[1:] + "."] if described else []
        self.scenes.append(_Scene(element.text, element.line, element.number, description + self.pending_notes,
                                  key))
        self.pending_notes = []

    def on_section(self, element: Element) -> None:
        if element.text:
            self.pending_notes.append(self.bounded(safe_text(element.text), element.line, "the section").rstrip(".")
                                      + ".")

    def on_synopsis(self, element: Element) -> None:
        if not element.text:
            return
        text = self.bounded(safe_text(element.text), element.line, "the synopsis")
        scene = self.scenes[-1] if self.scenes else None
        if scene is not None and not scene.shots and not self.pending_notes:
            scene.description.append(text)  # right under its heading: this scene's synopsis
        else:
            self.pending_notes.append(text)

    def bounded(self, text: str, line: int, what: str) -> str:
        """`text` cut at a sentence end within MAX_TEXT_CHARS, with a warning, when it is longer."""
        if len(text) <= MAX_TEXT_CHARS:
            return text
        cut = text[:MAX_TEXT_CHARS]
        end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
        self.warn(line, f"{what} is longer than {MAX_TEXT_CHARS:,} characters (more than a video model reads); "
                  "the story keeps its beginning: split the paragraph, or import with --llm")
        return cut[: end + 1] if end > MAX_TEXT_CHARS // 2 else cut.rstrip() + "…"

    def on_action(self, element: Element) -> None:
        text = safe_text(element.text)
        if not any(c.isalnum() for c in text):  # "...", "* * *", "—": a beat on the page, nothing to film
            self.left_out["paragraphs without words"] += 1
        else:
            self.add_shot(_Shot(self.bounded(text, element.line, "the action paragraph"), element.line))

    def on_transition(self, element: Element) -> None:
        kind = transition_of(element.text)
        if kind is None:
            self.warn(element.line, f"the transition '{element.text}' has no storyforge equivalent; the next shot "
                      "begins with a cut (use cut, crossfade or fade in the story)")
            kind = "cut"
        if self.pending_transition is not None and self.pending_transition[0] != kind:
            _, line, text = self.pending_transition
            self.warn(line, f"'{text}' is followed by '{element.text}' before any shot; the later one is used")
        self.pending_transition = (kind, element.line, element.text)

    def on_cue(self, element: Element) -> None:
        self.cue = element
        self.spoken = []

    def on_parenthetical(self, element: Element) -> None:
        self.spoken.append(element.text)

    def on_dialogue(self, element: Element) -> None:
        self.spoken.append(element.text)

    def on_lyric(self, element: Element) -> None:
        if self.cue is None:
            self.left_out["lyrics"] += 1
        else:
            self.spoken.append(f"♪ {element.text}")

    def on_centered(self, element: Element) -> None:
        self.left_out["centred text"] += 1

    def on_page_break(self, element: Element) -> None:
        self.left_out["page breaks"] += 1

    # -- shots ---------------------------------------------------------------------------------------------------
    def current_scene(self, line: int) -> _Scene:
        if not self.scenes:  # action before the first heading: an opening scene without a place
            self.scenes.append(_Scene("", line, None, self.pending_notes, None))
            self.pending_notes = []
        return self.scenes[-1]

    def add_shot(self, shot: _Shot) -> None:
        self.shots += 1
        if self.shots > MAX_SHOTS:
            raise script_error(self.script.file, shot.line, f"the script makes more than {MAX_SHOTS:,} shots, more "
                               "than a story file may hold; split the script into parts and import each")
        scene = self.current_scene(shot.line)
        if self.pending_transition is not None:
            shot.transition = self.pending_transition[0]
            self.pending_transition = None
        scene.shots.append(shot)

    def end_speech(self) -> None:
        cue, self.cue = self.cue, None
        if cue is None:
            return
        key = stable_key(cue.text, "character")
        self.characters.setdefault(key, cue.text)
        off_screen = {part.strip().upper().rstrip(".") for part in cue.extension.split(",")} & {
            mark.rstrip(".") for mark in OFF_SCREEN}
        lead = f"({cue.extension}) " if cue.extension else ""
        line = self.bounded(safe_text(lead + " ".join(self.spoken)), cue.line, "the speech") or "…"
        scene = self.scenes[-1] if self.scenes else None
        if scene is None or not scene.shots or self.pending_transition is not None:
            # speech with no action before it in the scene: a shot of the speaker
            self.add_shot(_Shot(f"{_display(cue.text)} speaks", cue.line, spoken_only=True))
            scene = self.scenes[-1]
        shot = scene.shots[-1]
        shot.dialogue.append((key, line))
        if not off_screen and key not in shot.cast:
            shot.cast.append(key)
        self.spoken = []


def _display(name: str) -> str:
    """A cue as a name: "MR. STEEL" -> "Mr. Steel"; a word with digits stays as written ("R2D2", "2ND")."""
    return " ".join(word.capitalize() if word.isupper() and not any(c.isdigit() for c in word) else word
                    for word in name.split())


def _place_prompt(heading: str) -> str:
    side, place, time = heading_parts(heading)
    text = _display(place) if place.isupper() else place
    return ", ".join(part for part in (text, time.lower() if time else "") if part)


def build(script: Script, geometry: Geometry | None = None) -> Built:
    """Story data for `script` (ids fresh from headings and action), with origins and the writer's to-do list."""
    geometry = geometry or Geometry.default()
    builder = _Builder(script, geometry)
    builder.run()
    if not builder.scenes:
        raise script_error(script.file, 0, "the script has no scene heading, action or dialogue, so there is "
                           "nothing to make shots of; is this the screenplay?")
    title = script.title_page.get("title") or _title_from_file(script.file)
    data: dict[str, Any] = {"storyforge": 1, "title": safe_text(title)}
    characters = {key: {"description": PLACEHOLDER.format(name=_display(name))}
                  for key, name in builder.characters.items()}
    if characters:
        data["characters"] = characters
    locations = {key: safe_text((place.lower() if place.isupper() else place).replace(" - ", ", "))
                 for key, place in builder.locations.items()}
    if locations:
        data["locations"] = locations
    origins: dict[str, dict[str, Any]] = {"scenes": {}, "shots": {}}
    scenes = []
    used_scene_ids: set[str] = Ids()
    for number, scene in enumerate(builder.scenes, start=1):
        scene_id = unique(scene_id_for(scene.heading, scene.number, number), used_scene_ids)
        origins["scenes"][scene_id] = {"heading": scene.heading, "line": scene.line}
        entry: dict[str, Any] = {"id": scene_id}
        if scene.location:
            entry["location"] = scene.location
        if scene.description:
            entry["description"] = " ".join(scene.description)
        shots = []
        used: set[str] = Ids()
        for shot in scene.shots:
            shot_id = unique(shot_id_for(shot.text), used)
            origins["shots"][f"{scene_id}/{shot_id}"] = {"text": shot.text, "line": shot.line, "part": shot.part}
            shots.append(shot_data(shot_id, shot, geometry))
        entry["shots"] = shots
        scenes.append(entry)
    if scenes:
        first = scenes[0]["shots"][0]
        if first.get("transition") in ("crossfade", "continue"):
            first["transition"] = "fade"  # nothing comes before the first shot to dissolve from
    data["scenes"] = scenes
    data = _not_templates(data)
    return Built(data, origins, builder.warnings, sorted(characters), builder.left_out)


def shot_data(shot_id: str, shot: _Shot, geometry: Geometry) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": shot_id, "prompt": shot.text}
    if shot.camera:
        entry["camera"] = shot.camera
    spoken = [line for _, line in shot.dialogue]
    entry["duration"] = f"{duration_frames('' if shot.spoken_only else shot.text, spoken, geometry)}f"
    if shot.transition:
        entry["transition"] = shot.transition
    if shot.cast:
        entry["cast"] = list(shot.cast)
    if shot.dialogue:
        entry["dialogue"] = [{"character": who, "line": line} for who, line in shot.dialogue]
    return entry


def scene_id_for(heading: str, number: str | None, index: int) -> str:
    """A scene's id from its heading (and scene number): 'INT. GARAGE - DAY #12#' -> '12-garage-day'."""
    side, place, time = heading_parts(heading)
    if not heading:
        return "opening"
    named = " ".join(part for part in (place, time) if part)
    base = slug(named) or slug(heading)
    if not base or not spelled_in_ascii(named):  # the heading's fingerprint: stable wherever the scene moves
        base = f"{base[:32] or 'scene'}-{fingerprint(heading)}"
    return f"{slug(number, 8)}-{base}"[:48].rstrip("-") if number and slug(number, 8) else base


def shot_id_for(text: str) -> str:
    """A shot's id from the first words of its action that say something: 'The men look at...' -> 'men-look-each'."""
    words = [w for w in slug(text, 200).split("-") if w not in _ARTICLES]
    base = "-".join(words[:3])[:30].rstrip("-")
    if not base or not spelled_in_ascii(text[:200]):
        base = f"{base[:23] or 'shot'}-{fingerprint(text)}"
    return base


class Ids(set[str]):
    """Ids in use, remembering the last number tried for each base (so 1,000 shots called 'x' stay linear)."""

    def __init__(self, items: object = ()) -> None:
        super().__init__(items)  # type: ignore[arg-type]
        self.tried: dict[str, int] = {}


def unique(base: str, used: set[str]) -> str:
    """`base`, or `base-2`, `base-3`, ... whichever is not in `used` (which it joins)."""
    tried = used.tried if isinstance(used, Ids) else {}
    candidate, n = base, tried.get(base, 1)
    if n > 1:
        candidate = f"{base}-{n}"
    while candidate in used:
        n += 1
        candidate = f"{base}-{n}"
    tried[base] = n
    used.add(candidate)
    return candidate


def _title_from_file(file: str) -> str:
    stem = file.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return " ".join(stem.replace("_", " ").replace("-", " ").split()) or "Untitled"
