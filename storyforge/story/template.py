"""The story's template namespace and rendering: every prompt, camera, style and description of a film as text.

What a template may touch and how much work it may do is the sandbox's business (storyforge.story.sandbox);
this module gives templates the story's names and turns each shot's fields into its final prompt.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, NamedTuple

from jinja2 import TemplateSyntaxError
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.runtime import Context, StrictUndefined
from jinja2.utils import missing

from storyforge.errors import Problem, StoryError, display_path
from storyforge.story.load import PathKey, Story
from storyforge.story.resolve import ResolvedFilm, ResolvedShot
from storyforge.story.root import PathRefused, read_bytes
from storyforge.story.sandbox import (
    MAX_TEMPLATE_FILE,
    MAX_TEXT,
    Refused,
    Sandbox,
    budget,
    charge,
    film_budget,
    refund,
    spent,
    text_of,
)
from storyforge.story.texts import KeyframeWriter, ShotText

NAMES = ("characters", "film", "location", "locations", "scene", "shot", "style")
_NAME_SET = frozenset(NAMES)
PACKAGED_SUFFIX = ".j2"
_SYNTAX = ("{{", "{%", "{#")


def _has_syntax(text: str) -> bool:
    """Whether `text` holds any of _SYNTAX (asked of every text of every shot: written out, not a loop)."""
    return "{" in text and ("{{" in text or "{%" in text or "{#" in text)


class _FieldFailure(Exception):
    """A field failed to render: carries the problem, at that field's line, through enclosing renders."""

    def __init__(self, problem: Problem):
        super().__init__(problem.message)
        self.problem = problem


# -- the scope: film, scene, shot, characters, locations, location, style --------------------------------------


class _Lazy(functools.partial):  # type: ignore[type-arg]
    """A text rendered on first use within one shot (descriptions may refer to each other): call it for the
    text. A partial, not a closure: a shot makes a dozen, made without running any Python."""

    __slots__ = ()


def _value(value: Any) -> Any:
    return value() if isinstance(value, _Lazy) else value


# The shot whose texts are rendering: the story's names tell it what a template reads (see _ShotRenderer.read).
_READER: contextvars.ContextVar[_ShotRenderer] = contextvars.ContextVar("storyforge_template_reader")


def _recorder() -> _ShotRenderer | None:
    """The shot whose render records reads now; None where nothing records them (_ShotRenderer.read would just
    do the read): most reads of a film, which then skip making the read's name and thunk."""
    reader = _READER.get(None)
    if reader is None or not reader.recordings or reader.recordings[-1].busy:
        return None
    return reader


class _Record:
    """`film`, `scene` and `shot` in templates: named fields and nothing else."""

    def __init__(self, label: str, fields: dict[str, Any]):
        self._label = label
        self._fields = fields

    def __getattr__(self, name: str) -> Any:
        if "_fields" not in self.__dict__:
            raise AttributeError(name)
        return self._read(name)

    def _read(self, name: str) -> Any:
        """`record.name` (what __getattr__ gives): read by the sandbox directly, a dozen times a shot."""
        reader = _READER.get(None)
        if reader is None or not reader.recordings or reader.recordings[-1].busy:  # _recorder(), written out
            if name not in self._fields:
                raise AttributeError(name)
            value = self._fields[name]
            return value() if isinstance(value, _Lazy) else value
        return reader.read((self._label, "attr", name), lambda: self._attr(name))

    def __getitem__(self, name: str) -> Any:
        reader = _recorder()
        if reader is None:
            return self._item(name)
        return reader.read((self._label, "item", name), lambda: self._item(name))

    def _attr(self, name: str) -> Any:
        if name not in self._fields:
            raise AttributeError(name)
        return _value(self._fields[name])

    def _item(self, name: str) -> Any:
        return _value(self._fields[name])

    def __repr__(self) -> str:
        return f"<{self._label}>"


class _CharacterText(str):
    """A character in templates: prints as its description; also has .name, .description and .reference."""

    name: str
    reference: str

    def __new__(cls, description: str, name: str, reference: str) -> _CharacterText:
        value = super().__new__(cls, description)
        value.name, value.reference = name, reference
        return value

    @property
    def description(self) -> str:
        return str.__str__(self)


class _Names(Mapping[str, Any]):
    """`characters` and `locations`: each name gives its (rendered) description. The entry of a name is made
    when a shot first uses it: every shot gets its own, and making all of them for every shot is quadratic (an
    imported feature has hundreds of places and shots)."""

    def __init__(self, label: str, names: Mapping[str, Any], make: Callable[[str], Any],
                 on_use: Callable[[str], None] | None = None):
        self._label = label
        self._items = names
        self._make = make
        self._made: dict[str, Any] = {}
        self._on_use = on_use

    def _entry(self, name: str) -> Any:
        """The name's entry (a _Lazy text) unrendered."""
        if name not in self._made:
            if name not in self._items:
                raise KeyError(name)
            self._made[name] = self._make(name)
        return self._made[name]

    def __getitem__(self, name: str) -> Any:
        reader = _recorder()
        if reader is None:
            return self._item(name)
        return reader.read((self._label, "item", name), lambda: self._item(name))

    def _item(self, name: str) -> Any:
        value = _value(self._entry(name))
        if self._on_use is not None:
            self._on_use(name)
        return value

    def __getattr__(self, name: str) -> Any:
        names = self.__dict__.get("_items", {})
        if name.startswith("_") or name not in names:
            raise AttributeError(name)
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<{self._label}>"


# what getattr finds on _Names itself (Mapping's get, keys...) before __getattr__ looks among the names
_NAMES_OWN = frozenset(dir(_Names))


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


class _Undefined(StrictUndefined):
    """An unknown name: the error names it and lists the names that do exist."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name, obj = self._undefined_name, self._undefined_obj
        if obj is missing:
            return (f"unknown name '{name}'; {_did_you_mean(str(name), NAMES)}"
                    f"names in scope: {', '.join(NAMES)}")
        if isinstance(obj, _Names):
            known = ", ".join(obj) or f"(none; add them under `{obj._label}:`)"
            return (f"unknown name '{obj._label}.{name}'; {_did_you_mean(str(name), obj)}"
                    f"known {obj._label}: {known}")
        if isinstance(obj, _Record):
            fields = sorted(obj._fields)
            return (f"unknown name '{obj._label}.{name}'; {_did_you_mean(str(name), fields)}"
                    f"{obj._label} has: {', '.join(fields)}")
        if isinstance(obj, _CharacterText):
            return f"unknown name 'characters.{obj.name}.{name}'; a character has: description, name, reference"
        return f"unknown name '{name}'"


# -- the environment -------------------------------------------------------------------------------------------


class _Context(Context):
    """Top-level names such as `style` and `location` render when a template first uses them."""

    def resolve_or_missing(self, key: str) -> Any:
        if key in self.vars or key not in _NAME_SET:  # the template's own variable, or a global: the same every shot
            return _value(super().resolve_or_missing(key))
        reader = _recorder()
        if reader is None:  # Context.resolve_or_missing, written out: not among the template's own variables
            value = self.parent.get(key, missing)
            return value() if isinstance(value, _Lazy) else value
        return reader.read(("top", key), lambda: _value(Context.resolve_or_missing(self, key)))


def _sentences(parts: Iterable[Any], capitalize: bool = False) -> str:
    """Non-empty parts as sentences: 'wide shot', 'a fox runs.' -> 'wide shot. a fox runs.'; a part that is a
    list gives one sentence per item."""
    out = []
    flat = [item for part in parts for item in (part if isinstance(part, (list, tuple)) else [part])]
    for part in flat:
        text = _single_spaced(part if type(part) is str else text_of(part))
        if not text:
            continue
        if capitalize:
            text = text[0].upper() + text[1:]
        out.append(text if text[-1] in "!?…" else text + ".")
    return " ".join(out)


@functools.lru_cache(maxsize=4096)
def _single_spaced(text: str) -> str:
    """A part's words single-spaced, without trailing dots; remembered: a film's shots share most of their parts
    (the framing, the setting, the style), only the prompt is new in each."""
    return " ".join(text.split()).rstrip(" .")


class _StorySandbox(Sandbox):
    """The sandbox with the story's names: lazy top-level names and messages that list what exists."""

    context_class = _Context
    records = frozenset({_Record, _Names, _CharacterText})

    def read_record(self, obj: Any, attribute: str) -> Any:
        # what getattr gives, without Python's failed lookup before __getattr__ (public names: see getattr)
        if type(obj) is _Record:
            return obj._read(attribute)
        if type(obj) is _Names and attribute not in _NAMES_OWN:
            if attribute not in obj._items:
                raise AttributeError(attribute)
            return obj[attribute]
        return getattr(obj, attribute)


_ENV = _StorySandbox(undefined=_Undefined, names=NAMES, filters={"sentences": _sentences})


# -- templates ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptTemplate:
    """The template that turns a shot's fields into its prompt: packaged (plain, cinematic) or a .j2 file."""

    name: str  # as written in `enhance.template`
    source: str
    sha256: str
    file: str  # where errors inside it are reported


def packaged_templates() -> list[str]:
    """The names of the templates shipped with storyforge (storyforge/templates/*.j2)."""
    folder = resources.files("storyforge").joinpath("templates")
    return sorted(item.name[: -len(PACKAGED_SUFFIX)] for item in folder.iterdir()
                  if item.name.endswith(PACKAGED_SUFFIX))


def prompt_template(story: Story) -> PromptTemplate:
    """The story's `enhance.template`, read (a file must lie inside the story root, like every file it names)."""
    name = story.film.enhance.template
    line = story.source.line(("enhance", "template"))
    packaged = packaged_templates()

    def problem(message: str) -> StoryError:
        return StoryError([Problem(story.source.file, line, "enhance.template", message)])

    if name in packaged:
        source = resources.files("storyforge").joinpath("templates", name + PACKAGED_SUFFIX).read_text("utf-8")
        return PromptTemplate(name, source, _sha256(source), f"<storyforge>/templates/{name}{PACKAGED_SUFFIX}")
    if not name.endswith(PACKAGED_SUFFIX):
        hint = _did_you_mean(name, packaged)
        raise problem(f"unknown template '{name}'; {hint}use {' or '.join(packaged)}, or a path to a .j2 file")
    try:
        path = story.locate(name)  # inside the story root, a regular file; nothing opened yet
        raw = read_bytes(path, MAX_TEMPLATE_FILE, shown=name)
    except PathRefused as refused:
        raise problem(str(refused)) from None
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise problem(f"{name} is not UTF-8 text; save it as UTF-8") from None
    return PromptTemplate(name, source, _sha256(source), display_path(path))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- rendering ---------------------------------------------------------------------------------------------------


class _Field(NamedTuple):  # a tuple, not a frozen dataclass: a film makes several for every shot
    """One template text: a story field (at a key path) or the prompt template (in its own file)."""

    label: str  # how the story refers to it: style, characters.fox, dawn/glide.prompt
    source: str
    where: str
    path: PathKey | None = None  # key path in the story; None for the prompt template file
    file: str | None = None  # the template file, when not the story


class _Compiled:
    """Parsed templates, shared by every shot of a film, and what each has rendered to (see _ShotRenderer.read)."""

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}
        self._words: list[tuple[str, tuple[str, ...], re.Pattern[str]]] | None = None
        self._named: dict[str, list[str]] = {}
        self._cameras: dict[str, tuple[str, str]] = {}
        self._plain: dict[str, str] = {}
        self.renders: dict[str, _Step] = {}  # template text -> the first step of its renders so far
        # template text -> [real renders, walks of its tree, walks that gave its text]: a text rendered once is
        # not recorded, and one whose context is nearly always new (a prompt template reading each shot's own
        # prompt) stops being walked and recorded, so a film whose texts never repeat pays little for this
        self.tally: dict[str, list[int]] = {}

    def get(self, source: str) -> Any:
        if source not in self.cache:
            try:
                self.cache[source] = _ENV.compile_bounded(source)
            except TemplateSyntaxError as error:
                self.cache[source] = error
            except RecursionError:
                self.cache[source] = Refused("refused: the template nests too deeply")
        found = self.cache[source]
        if isinstance(found, Exception):
            raise found.with_traceback(None)  # the same error for every shot, without piling up tracebacks
        return found

    def named_in(self, prompt: str, characters: Iterable[str]) -> list[str]:
        """The characters a text names as a word ('the fox runs'; 'old_fox' also as 'old fox'), any case, in
        the film's order; worked out once per text of a film (a shot's prompt is asked for again and again)."""
        if self._words is None:
            self._words = []
            for name in characters:
                forms = tuple(dict.fromkeys((name, name.replace("_", " "))))
                self._words.append((name, tuple(form.lower() for form in forms),
                                    re.compile("|".join(rf"\b{re.escape(w)}\b" for w in forms), re.IGNORECASE)))
        if prompt not in self._named:
            # an ASCII text names a word only where its lower case holds the word, which rules out most names
            # without a search (in other text case folding reaches past ASCII: the Kelvin sign is a 'k')
            lowered = prompt.lower() if prompt.isascii() else None
            self._named[prompt] = [name for name, forms, word in self._words
                                   if (lowered is None or any(map(lowered.__contains__, forms)))
                                   and word.search(prompt)]
        return self._named[prompt]

    def plain(self, source: str) -> str:
        """A text without template syntax as it renders: its words, single-spaced; worked out once per text."""
        text = self._plain.get(source)
        if text is None:
            text = self._plain[source] = " ".join(source.split())
        return text

    def camera_part(self, camera_text: _Lazy, part: int) -> str:
        """The framing (0) or the motion (1) of a shot's camera text."""
        return self.camera(camera_text())[part]

    def camera(self, camera: str) -> tuple[str, str]:
        """split_camera(camera), worked out once per camera text of a film."""
        if camera not in self._cameras:
            self._cameras[camera] = split_camera(camera)
        return self._cameras[camera]


# -- rendering each text once per distinct context -------------------------------------------------------------
#
# A film renders the same template texts shot after shot (the style, a character described through another, the
# prompt template), mostly with the same names behind them. A render reads the story only through the names in
# scope (a top-level name, a field of film/scene/shot, an entry of characters/locations), and what it makes and
# does (its text, the steps it spends, the names it marks as used) follows from what those reads give. So each
# render is kept as its reads in order, what each gave, the steps spent between them, and the text: a tree per
# template text, branching where a read gives something new. Another shot walks the tree doing the same reads
# (so the same names are marked used and the same nested texts render, with their own errors) and charging the
# same steps; where a read gives something the tree has not seen, or a charge would pass a limit, it gives the
# steps back and renders for real, so errors and limits come out exactly where and as a real render meets them.


class _Step:
    """One point in a template text's renders: `spent` steps, then the read `read` (None: done, giving `text`)."""

    __slots__ = ("spent", "read", "next", "text")

    def __init__(self, spent: int, read: tuple[str, ...] | None, text: str | None = None):
        self.spent, self.read, self.text = spent, read, text
        self.next: dict[tuple[Any, ...], _Step] = {}  # what the read gave -> the step after


class _Opaque(Exception):
    """A read gave something that cannot be compared across shots: the render is not kept."""


def _gave(value: Any) -> tuple[Any, ...]:
    """What a read gave, as something comparable across shots (each shot has its own records and names)."""
    if isinstance(value, _CharacterText):
        return ("character", str.__str__(value), value.name, value.reference)
    if isinstance(value, str):
        return ("text", value)
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_gave(item) for item in value))
    if isinstance(value, (_Record, _Names)):
        return ("names", value._label)
    raise _Opaque


class _Recording:
    """The reads of one real render of a template text, as they happen (see _Step)."""

    __slots__ = ("mark", "busy", "kept", "events")

    def __init__(self) -> None:
        self.mark = spent()  # the budget's count after the last read
        self.busy = False  # inside a read: what it reads in turn is part of it, not another read
        self.kept = True
        self.events: list[tuple[int, tuple[str, ...], tuple[Any, ...]]] = []

    def keep(self, renders: dict[str, _Step], source: str, text: str) -> None:
        """Add this render to the text's tree (unless something in it could not be kept)."""
        if not self.kept:
            return
        slots: dict[Any, _Step] = renders
        slot: Any = source
        for steps, read, gave in self.events:
            found = slots.get(slot)
            if found is None:
                found = slots[slot] = _Step(steps, read)
            elif found.spent != steps or found.read != read:
                return  # cannot differ for the same reads; keep what is known rather than guess
            slots, slot = found.next, gave
        if slot not in slots:
            slots[slot] = _Step(spent() - self.mark, None, text)


_TRIES = 64  # walks of a text's tree after which, if fewer than one in eight gave its text, renders are not kept
_QUIET = _Recording()  # on top while a kept render is walked: its reads are not recorded anywhere
_QUIET.busy = True


_CAMERA_MOTION = re.compile(
    r"\b(push(es|ing)?|pull(s|ing)?|pan(s|ning)?|tilt(s|ing)?|dolly|track(s|ing)?|truck(s|ing)?|zoom(s|ing)?|"
    r"orbit(s|ing)?|arc(s|ing)?|crane|boom|pedestal|follow(s|ing)?|handheld|steadicam|rotat(e|es|ing)|"
    r"mov(e|es|ing)|glid(e|es|ing)|drift(s|ing)?|ris(e|es|ing)|descend(s|ing)?|sweep(s|ing)?|whip|static|"
    r"locked[- ]off|fly(ing)?|flyover|fly-through|flythrough|travel(s|ling|ing)?|reveal(s|ing)?)\b",
    re.IGNORECASE,
)


def split_camera(camera: str) -> tuple[str, str]:
    """'wide shot, low angle, slow push in' -> ('wide shot, low angle', 'slow push in')."""
    framing: list[str] = []
    motion: list[str] = []
    for part in (p.strip() for p in camera.split(",")):
        if part:
            (motion if _CAMERA_MOTION.search(part) else framing).append(part)
    return ", ".join(framing), ", ".join(motion)


class _ShotRenderer:
    """Renders the texts of one shot, each at most once, each with the shot's scope."""

    def __init__(self, story: Story, shot: ResolvedShot, compiled: _Compiled, *, reuse: bool = True):
        self.story, self.shot, self.compiled = story, shot, compiled
        # a bridge's texts also read `previous` and `next`, which are not the story's names and so not recorded:
        # its renders are neither kept nor reused (a bridge is rendered once, with texts no other render has)
        self.reuse = reuse
        self.done: dict[str, str] = {}
        self.stack: list[str] = []
        self.named: list[str] = []  # characters the prompt uses, in order
        self.cast: list[str] = []  # characters any of the shot's story texts use, in order (not the template's)
        self.in_story: list[bool] = []  # per text being rendered: whether it is the story's (not a .j2 file's)
        self.recordings: list[_Recording] = []  # per template text rendering for real, innermost last
        film, scene, spec = story.film, shot.scene, shot.shot
        s = shot.path[1]
        self._cast_texts: dict[str, _CharacterText] = {}  # a character's text is the same all shot long: made once
        characters = _Names("characters", film.characters, functools.partial(_Lazy, self._character), self._use)
        locations = _Names("locations", film.locations, lambda name: self._lazy(
            f"locations.{name}", film.locations[name].description, f"locations.{name}",
            ("locations", name, "description")))
        if scene.location and scene.location in film.locations:
            location: Any = locations._entry(scene.location)
        else:
            location = self._lazy(f"{scene.id}.location", scene.location or "", f"{scene.id}.location",
                                  ("scenes", s, "location"))
        camera = self._lazy(f"{shot.id}.camera", spec.camera or "", shot.id, shot.path + ("camera",))
        self._prompt_label = f"{shot.id}.prompt"
        prompt = self._lazy(self._prompt_label, spec.prompt, shot.id, shot.path + ("prompt",))
        self.scope: dict[str, Any] = {
            "film": _Record("film", {"title": film.title}),
            "scene": _Record("scene", {
                "id": scene.id, "location": scene.location or "",
                "description": self._lazy(f"{scene.id}.description", scene.description or "",
                                          f"{scene.id}.description", ("scenes", s, "description")),
            }),
            "shot": _Record("shot", {
                "id": spec.id, "duration": str(spec.duration), "transition": spec.transition_type,
                "image": spec.image or "", "end_image": spec.end_image or "",
                "camera": camera, "prompt": prompt,
                "framing": _Lazy(compiled.camera_part, camera, 0),
                "motion": _Lazy(compiled.camera_part, camera, 1),
                "characters": _Lazy(self._characters, prompt),
                "subjects": _Lazy(self._subjects, prompt),
                "setting": _Lazy(self._setting, prompt),
                # lines as written (never templates): `{% for d in shot.dialogue %}{{ d.character }}: {{ d.line }}`
                "dialogue": [_Record("dialogue line", {"character": d.character, "line": d.line})
                             for d in spec.dialogue],
            }),
            "characters": characters,
            "locations": locations,
            "location": location,
            "style": self._lazy("style", film.style or "", "style", ("style",)),
        }

    def read(self, read: tuple[str, ...], do: Callable[[], Any]) -> Any:
        """Do a read of the story's names for the template rendering now, and record it with what it gave."""
        recording = self.recordings[-1] if self.recordings else None
        if recording is None or recording.busy:
            return do()
        steps = spent() - recording.mark  # this text's own steps since its last read
        recording.busy = True
        try:
            value = do()
        except (KeyError, AttributeError) as missing:  # the name does not exist: Jinja tries another way or fails
            recording.events.append((steps, read, ("missing", type(missing).__name__)))
            raise
        except BaseException:
            recording.kept = False
            raise
        finally:
            recording.busy = False
            recording.mark = spent()  # what nested texts spent while this read ran is theirs, not this text's
        try:
            recording.events.append((steps, read, _gave(value)))
        except _Opaque:
            recording.kept = False
        return value

    def _again(self, item: _Field) -> str | None:
        """The text of `item` from a kept render whose reads give the same now (see _Step); None: render it."""
        step = self.compiled.renders.get(item.source)
        charged = 0
        self.recordings.append(_QUIET)
        try:
            while step is not None:
                if not charge(step.spent):
                    break
                charged += step.spent
                if step.read is None:
                    return step.text
                try:
                    gave = _gave(self._perform(step.read))
                except (KeyError, AttributeError) as missing:
                    gave = ("missing", type(missing).__name__)
                except _FieldFailure:
                    raise  # a nested text failed: the real render would fail with it at this very read
                except Exception:  # noqa: BLE001 - e.g. a cycle: the real render reports it at its template line
                    break
                step = step.next.get(gave)
        finally:
            self.recordings.pop()
        refund(charged)
        return None

    def _perform(self, read: tuple[str, ...]) -> Any:
        """A recorded read done again, on this shot's names."""
        if read[0] == "top":
            return _value(self.scope[read[1]])
        label, how, name = read
        target = self.scope[label]
        if how == "attr":
            return target._attr(name)
        return target._item(name)

    def _lazy(self, label: str, source: str, where: str, path: PathKey) -> _Lazy:
        return _Lazy(self._field_text, label, source, where, path)

    def _field_text(self, label: str, source: str, where: str, path: PathKey) -> str:
        # a text asked for again (most are: the prompt template reads what the story's texts read) is what
        # `text` would give at once, without making its _Field
        done = self.done
        if label in done:
            return done[label]
        if not _has_syntax(source) and label not in self.stack:
            # plain text (most of a film's: descriptions, cameras) is what `text` would give: nothing renders,
            # nothing is read, so neither the stack nor the recordings see it
            text = done[label] = self.compiled.plain(source)
            return text
        return self.text(_Field(label, source, where, path))

    def _character(self, name: str) -> _CharacterText:
        made = self._cast_texts.get(name)
        if made is None:
            c, label = self.story.film.characters[name], f"characters.{name}"
            made = self._cast_texts[name] = _CharacterText(
                self._field_text(label, c.description, label, ("characters", name, "description")), name,
                c.reference or "")
        return made

    def _use(self, name: str) -> None:
        if self._prompt_label in self.stack and name not in self.named:
            self.named.append(name)
        # the cast is what the story's texts name; the prompt template naming characters by word does not count
        if self.in_story and self.in_story[-1] and name not in self.cast:
            self.cast.append(name)

    def _characters(self, prompt_text: _Lazy) -> list[_CharacterText]:
        """Characters the prompt uses (through `characters.x`) or names as a word ('the fox runs')."""
        prompt = prompt_text()
        names = [*self.named]
        names += [name for name in self.compiled.named_in(prompt, self.story.film.characters) if name not in names]
        return [self.scope["characters"][name] for name in names]

    def _subjects(self, prompt_text: _Lazy) -> list[str]:
        """Descriptions of the characters in the shot that its prompt does not already spell out."""
        lowered = prompt_text().lower()
        return [c.description for c in self._characters(prompt_text) if c.description.lower() not in lowered]

    def _setting(self, prompt_text: _Lazy) -> list[str]:
        """The location and scene description, less what the prompt already says."""
        lowered = prompt_text().lower()
        texts = [self.scope["location"](), self.scope["scene"].description]
        return [t for t in texts if t and t.lower() not in lowered]

    def text(self, item: _Field) -> str:
        """A field's text, rendered; a field that (through others) includes itself is an error."""
        if item.label in self.done:
            return self.done[item.label]
        if item.label in self.stack:
            cycle = " -> ".join(self.stack[self.stack.index(item.label):] + [item.label])
            raise Refused(f"{item.label} includes itself ({cycle}); a text cannot contain itself")
        self.stack.append(item.label)
        self.in_story.append(item.file is None)
        try:
            result = self._render(item)
        finally:
            self.stack.pop()
            self.in_story.pop()
        self.done[item.label] = result
        return result

    def _render(self, item: _Field) -> str:
        if not _has_syntax(item.source):
            return self.compiled.plain(item.source)  # plain text: nothing to render
        if not self.reuse:
            return self._render_now(item)
        tally = self.compiled.tally.setdefault(item.source, [0, 0, 0])
        if tally[1] >= _TRIES and tally[2] * 8 < tally[1]:
            return self._render_now(item)  # its contexts hardly ever repeat
        if tally[0]:
            tally[1] += 1
            again = self._again(item)
            if again is not None:
                tally[2] += 1
                return again
        tally[0] += 1
        if tally[0] == 1:
            return self._render_now(item)
        recording = _Recording()
        self.recordings.append(recording)
        try:
            text = self._render_now(item)
        finally:
            self.recordings.pop()
        recording.keep(self.compiled.renders, item.source, text)
        return text

    def _render_now(self, item: _Field) -> str:
        try:
            if len(item.source) > MAX_TEXT:
                raise Refused(f"refused: the text is longer than {MAX_TEXT:,} characters; prompts are short")
            chunks, total = [], 0
            for chunk in self.compiled.get(item.source).generate(self.scope):
                total += len(chunk)
                if total > MAX_TEXT:
                    raise Refused(f"refused: the template renders to more than {MAX_TEXT:,} characters; "
                                  "prompts are short")
                chunks.append(chunk)
        except _FieldFailure:
            raise
        except Exception as error:  # noqa: BLE001 - every failure becomes one message at the field's line
            raise _FieldFailure(self._problem(item, error)) from None
        text = " ".join("".join(chunks).split())
        if _has_syntax(text):
            raise _FieldFailure(self._problem(item, Refused(
                "the text still contains '{{', '{%' or '{#' after rendering; prompts are plain text")))
        return text

    def _problem(self, item: _Field, error: BaseException) -> Problem:
        message, line = _message(error), _template_line(error)
        if item.file is not None:
            return Problem(item.file, line or 0, self.shot.id, message)
        key_line = self.story.source.line(item.path or ())
        if line and "\n" in item.source.strip():
            message += f" (line {line} of the text)"
        return Problem(self.story.source.file, key_line, item.where, message)


def _message(error: BaseException) -> str:
    if isinstance(error, (Refused, SecurityError, UndefinedError)):
        return str(error)
    if isinstance(error, TemplateSyntaxError):
        return f"template syntax error: {error.message}"
    if isinstance(error, RecursionError):
        return "refused: the template calls itself too deeply"
    if isinstance(error, TemplateError):
        return f"template error: {error.message}"
    text = " ".join(str(error).split())
    text = text if len(text) <= 200 else text[:200] + "…"
    return f"template error: {type(error).__name__}: {text}"


def _template_line(error: BaseException) -> int | None:
    """The line inside the template text: from a syntax error, or from Jinja's rewritten traceback."""
    if isinstance(error, TemplateSyntaxError):
        return error.lineno
    line = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


@dataclass
class _Film:
    """What rendering a film needs, built once."""

    story: Story
    template: PromptTemplate
    compiled: _Compiled = field(default_factory=_Compiled)


def render_texts(film: ResolvedFilm) -> dict[str, ShotText]:
    """Each shot's prompt (its enhance.template applied) and camera words, every template rendered; and each
    bridge's prompt, under its job id (`scene/shot~bridge`)."""
    story = film.story
    template = prompt_template(story)
    context = _Film(story, template)
    problems: list[Problem] = []
    texts: dict[str, ShotText] = {}
    with film_budget():
        for shot in film.shots:
            try:
                with budget():  # each shot gets the whole work budget, and all draw on the film's
                    texts[shot.id] = _render_shot(context, shot)
            except _FieldFailure as failure:
                if failure.problem not in problems:
                    problems.append(failure.problem)
                if "the film's templates do too much work" in failure.problem.message:
                    break  # every later shot would say the same
        else:
            previous: ResolvedShot | None = None
            for shot in film.shots:  # bridges last: each joins two shots' final prompts
                if shot.shot.transition_type == "bridge" and previous is not None \
                        and {shot.id, previous.id} <= texts.keys():
                    try:
                        with budget():
                            texts[f"{shot.id}~bridge"] = _render_bridge(context, shot, texts[previous.id],
                                                                         texts[shot.id])
                    except _FieldFailure as failure:
                        problems.append(failure.problem)
                previous = shot
    if problems:
        raise StoryError(problems)
    return texts


# What a bridge shows when its transition names no prompt: where it comes from, then where it arrives.
DEFAULT_BRIDGE_TEMPLATE = "{{ previous }} The camera moves on without a cut and arrives at: {{ next }}"


def _render_bridge(context: _Film, shot: ResolvedShot, previous: ShotText, following: ShotText) -> ShotText:
    """A bridge's prompt: its own template (or DEFAULT_BRIDGE_TEMPLATE) with the shot's names, and `previous` and
    `next`, the final prompts of the shots it joins; rendered in the same sandbox as every prompt."""
    renderer = _ShotRenderer(context.story, shot, context.compiled, reuse=False)
    renderer.scope.update(previous=previous.prompt, next=following.prompt)
    source = context.story.source
    written = shot.shot.bridge_prompt
    at = shot.path + ("transition", "prompt") if written is not None else shot.path + ("transition",)
    label = f"{shot.id}.transition.prompt"
    try:
        prompt = renderer.text(_Field(label, written if written is not None else DEFAULT_BRIDGE_TEMPLATE,
                                      f"{shot.id}~bridge", at))
    except Refused as refused:
        raise _FieldFailure(Problem(source.file, source.line(at), f"{shot.id}~bridge", str(refused))) from None
    if not prompt:
        raise _FieldFailure(Problem(source.file, source.line(at), f"{shot.id}~bridge",
                                    "the bridge's prompt renders to empty text; write what the bridge shows"))
    return ShotText(prompt=prompt, camera=None)


def _render_shot(context: _Film, shot: ResolvedShot) -> ShotText:
    renderer = _ShotRenderer(context.story, shot, context.compiled)
    reading = _READER.set(renderer)
    try:
        return _shot_texts(context, shot, renderer)
    finally:
        _READER.reset(reading)
        # the scope's lazy texts refer back to the renderer: without this cycle the shot's objects go as soon as
        # it is done, instead of piling up for the garbage collector (a sixth of a templated film's texts)
        renderer.scope.clear()


def _shot_texts(context: _Film, shot: ResolvedShot, renderer: _ShotRenderer) -> ShotText:
    source, template = context.story.source, context.template

    def empty(message: str) -> _FieldFailure:
        return _FieldFailure(Problem(source.file, source.line(shot.path + ("prompt",)), shot.id, message))

    try:
        record = renderer.scope["shot"]
        if not record._read("prompt"):  # rendered first, so its errors come first
            raise empty("the prompt renders to empty text; write what happens in the shot")
        camera = record._read("camera") or None
        prompt = renderer.text(_Field(f"template {template.name}", template.source, shot.id, None, template.file))
        if not prompt:
            raise empty(f"the template {template.name} renders this shot to empty text")
    except Refused as refused:  # a cycle found while a field asked for another
        raise empty(str(refused)) from None
    return ShotText(prompt=prompt, camera=camera, cast=tuple(renderer.cast))


# -- keyframe instructions ---------------------------------------------------------------------------------------

# Qwen-Image-Edit-2509 reads its input images as "Picture 1", "Picture 2", ...: name who is in which.
# The packaged prompt templates already carry the camera words: add them only when the prompt lacks them.
DEFAULT_KEYFRAME_TEMPLATE = (
    '{{ ["the first frame of a film shot with " ~ (pictures | join(" and ")), prompt, '
    'camera if (camera | lower) not in (prompt | lower) else ""] | sentences(capitalize=true) }}'
)
KEYFRAME_NAMES = ("camera", "cast", "location", "pictures", "prompt")


def keyframe_writer(story: Story) -> KeyframeWriter:
    """Writes each keyframe's edit instruction with the story's `keyframes.template` (or the default)."""
    spec = story.film.keyframes
    source = (spec.template if spec is not None else None) or DEFAULT_KEYFRAME_TEMPLATE
    line = story.source.line(("keyframes", "template"))
    compiled = _Compiled()
    film_work = [0]  # every instruction of the film draws on one film budget, like the prompts do

    def write(prompt: str, camera: str | None, references: Sequence[str], cast: Sequence[str],
              location: str | None) -> str:
        pictures = [f"the {name.replace('_', ' ')} from picture {n}" for n, name in enumerate(references, start=1)]
        scope = {"prompt": prompt, "camera": camera or "", "pictures": pictures, "cast": list(cast),
                 "location": location or ""}
        try:
            if len(source) > MAX_TEXT:
                raise Refused(f"refused: the text is longer than {MAX_TEXT:,} characters; prompts are short")
            with film_budget(film_work), budget():
                text = " ".join("".join(compiled.get(source).generate(scope)).split())
            if len(text) > MAX_TEXT:
                raise Refused(f"refused: the template renders to more than {MAX_TEXT:,} characters; prompts are short")
        except Exception as error:  # noqa: BLE001 - every failure becomes one message at the template's line
            message = _message(error)
            if "unknown name" in message:
                message = message.split(";")[0] + f"; names in scope: {', '.join(KEYFRAME_NAMES)}"
            raise StoryError([Problem(story.source.file, line, "keyframes.template", message)]) from None
        if not text:
            raise StoryError([Problem(story.source.file, line, "keyframes.template",
                                      "the edit instruction renders to empty text; use {{ prompt }} in it")])
        return text

    return write
