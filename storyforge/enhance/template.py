"""Prompt templates: every prompt, camera, style and description rendered in a bounded Jinja sandbox."""

from __future__ import annotations

import contextvars
import difflib
import hashlib
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import update_wrapper
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.runtime import Context, Macro, StrictUndefined, Undefined, missing
from jinja2.sandbox import ImmutableSandboxedEnvironment, modifies_known_mutable

from storyforge.errors import Problem, StoryError, display_path
from storyforge.plan.compiler import KeyframeWriter, ShotText
from storyforge.plan.model import Keyframe
from storyforge.spec.load import PathKey, Story
from storyforge.spec.resolve import ResolvedFilm, ResolvedShot

# Limits. A story file comes from other people, so a template must not be able to hang or exhaust a machine.
MAX_TEXT = 10_000  # characters (or items) any value, and the output, of a template may reach
MAX_WORK = 250_000  # steps per shot: loop iterations, calls and characters processed
MAX_RANGE = 100_000  # items in range(); the same bound as Jinja's own sandbox
MAX_NUMBER = 100_000  # largest number a filter or method may take (widths, counts, repeats)
MAX_INT_BITS = 4096  # integers may not grow past this (10**10**10 would hang)
MAX_TEMPLATE_FILE = 64_000  # bytes of a .j2 file

NAMES = ("characters", "film", "location", "locations", "scene", "shot", "style")
PACKAGED_SUFFIX = ".j2"
_SYNTAX = ("{{", "{%", "{#")


class Refused(Exception):
    """A template went past a limit or tried something a story template may not do; the message says which."""


class _FieldFailure(Exception):
    """A field failed to render: carries the problem, at that field's line, through enclosing renders."""

    def __init__(self, problem: Problem):
        super().__init__(problem.message)
        self.problem = problem


# -- the work budget -------------------------------------------------------------------------------------------

_budget: contextvars.ContextVar[list[int]] = contextvars.ContextVar("storyforge_template_budget")


def _spend(amount: int) -> None:
    box = _budget.get(None)
    if box is None:
        return
    box[0] += amount
    if box[0] > MAX_WORK:
        raise Refused(f"refused: the template does too much work (more than {MAX_WORK:,} steps); loops and "
                      "repetition in story templates are bounded")


def _size(value: Any) -> int:
    if isinstance(value, (str, list, tuple, dict, Mapping)):
        return len(value)
    return 0


def _check_result(value: Any) -> Any:
    if isinstance(value, str) and _ADDRESS.search(value):
        raise Refused("refused: templates print text, not Python objects")
    if _size(value) > MAX_TEXT:
        raise Refused(f"refused: a value in the template grows past {MAX_TEXT:,} characters; prompts are short")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise Refused("refused: a number in the template is too large")
    return value


def _check_number(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_NUMBER:
        raise Refused(f"refused: the number {value} is too large for a template (at most {MAX_NUMBER:,})")


_FORMAT_NUMBER = re.compile(r"%[^a-zA-Z%]*?(\d{6,})|\{[^{}]*?:[^{}]*?(\d{6,})")
_NESTED_FIELD = re.compile(r"\{[^{}]*\{")  # '{0:{1}}': the width comes from the arguments


def _check_format(spec: Any) -> None:
    """'%999999999d' or '{:999999999}' would allocate before any result could be checked."""
    if isinstance(spec, str) and _FORMAT_NUMBER.search(spec):
        raise Refused(f"refused: a format width in the template is too large (at most {MAX_NUMBER:,})")


def _check_expansion(name: str, subject: Any, args: tuple[Any, ...], method: bool) -> None:
    """Operations whose result can be much larger than their inputs: estimate before running them.

    `subject` is the object of a method (`sep.join(items)`) or the value of a filter (`items | join(sep)`)."""
    if name == "replace" and len(args) >= 2 and isinstance(subject, str):
        old, new = str(args[0]), str(args[1])
        count = subject.count(old) if old else len(subject) + 1
        estimate = len(subject) + count * max(0, len(new) - len(old))
    elif name == "join" and (args or not method):
        items, separator = (args[0], subject) if method else (subject, args[0] if args else "")
        estimate = _size(items) * len(separator) if isinstance(separator, str) else 0
    elif name == "indent" and args and isinstance(args[0], int):
        estimate = (str(subject).count("\n") + 1) * args[0]
    elif name == "expandtabs" and isinstance(subject, str):
        estimate = subject.count("\t") * (args[0] if args and isinstance(args[0], int) else 8)
    elif name in ("format", "format_map"):
        _check_format(subject)
        return
    else:
        return
    if estimate > MAX_TEXT:
        raise Refused(f"refused: {name} would make text longer than {MAX_TEXT:,} characters; prompts are short")


def _opaque(value: Any) -> bool:
    """A function, class or module (or a list holding one): its text would be a Python repr with an address."""
    if isinstance(value, (Undefined, Macro, str)):
        return False
    if isinstance(value, (type, types.ModuleType)) or callable(value):
        return True
    if isinstance(value, (list, tuple)):
        return any(_opaque(item) for item in value)
    if isinstance(value, dict):
        return any(_opaque(item) for item in value.values())
    return False


def _kind(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (dict, Mapping)):
        return "a collection of names"
    if isinstance(value, _Record):
        return f"the record '{value._label}'"
    if isinstance(value, (type, types.ModuleType)):
        return "a Python type"
    if callable(value):
        return "a function (call it with ())"
    return "a Python object"


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _refuse_objects(values: Iterable[Any]) -> None:
    for value in values:
        if _opaque(value):
            while isinstance(value, (list, tuple, dict)):  # name the offending item, not its container
                items = value.values() if isinstance(value, dict) else value
                value = next(item for item in items if _opaque(item))
            raise Refused(f"refused: templates pass text, numbers and lists, not {_kind(value)}")


def _text(value: Any) -> str:
    """What `{{ value }}` prints: text and numbers; anything else is refused, never its Python repr."""
    if isinstance(value, Undefined):
        return str(value)  # raises the unknown-name error
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value)
    raise Refused(f"refused: this prints {_kind(value)}, not text; print a name such as characters.fox, "
                  "or join a list with |join(', ')")


# -- the scope: film, scene, shot, characters, locations, location, style --------------------------------------


class _Lazy:
    """A text rendered on first use within one shot (descriptions may refer to each other)."""

    __slots__ = ("get",)

    def __init__(self, get: Callable[[], Any]):
        self.get = get


def _value(value: Any) -> Any:
    return value.get() if isinstance(value, _Lazy) else value


class _Record:
    """`film`, `scene` and `shot` in templates: named fields and nothing else."""

    def __init__(self, label: str, fields: dict[str, Any]):
        self._label = label
        self._fields = fields

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("_fields", {})
        if name not in fields:
            raise AttributeError(name)
        return _value(fields[name])

    def __getitem__(self, name: str) -> Any:
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
    """`characters` and `locations`: each name gives its (rendered) description."""

    def __init__(self, label: str, items: dict[str, Any], on_use: Callable[[str], None] | None = None):
        self._label = label
        self._items = items
        self._on_use = on_use

    def __getitem__(self, name: str) -> Any:
        value = _value(self._items[name])
        if self._on_use is not None:
            self._on_use(name)
        return value

    def __getattr__(self, name: str) -> Any:
        items = self.__dict__.get("_items", {})
        if name.startswith("_") or name not in items:
            raise AttributeError(name)
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<{self._label}>"


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
        return _value(super().resolve_or_missing(key))


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise Refused(f"range({', '.join(str(a) for a in args)}) refused: ranges in templates are limited to "
                      f"{MAX_RANGE:,} items")
    _spend(len(numbers))  # what is done with the numbers is not all counted, so count them here
    return numbers


def _sentences(parts: Iterable[Any], capitalize: bool = False) -> str:
    """Non-empty parts as sentences: 'wide shot', 'a fox runs.' -> 'wide shot. a fox runs.'; a part that is a
    list gives one sentence per item."""
    out = []
    flat = [item for part in parts for item in (part if isinstance(part, (list, tuple)) else [part])]
    for part in flat:
        text = " ".join(_text(part).split()).rstrip(" .")
        if not text:
            continue
        if capitalize:
            text = text[0].upper() + text[1:]
        out.append(text if text[-1] in "!?…" else text + ".")
    return " ".join(out)


class _Environment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with bounded work, bounded values and messages meant for story authors."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    context_class = _Context

    def __init__(self) -> None:
        super().__init__(undefined=_Undefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
                         finalize=_text, keep_trailing_newline=False)
        self.globals.pop("lipsum", None)  # random text: a prompt must render the same every time
        self.globals["range"] = _range
        for name in ("random", "pprint"):  # random output; Python reprs
            self.filters.pop(name, None)
        self.filters["sentences"] = _sentences
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    # called from templates rewritten by _bound (see there)
    def sf_iterate(self, iterable: Any) -> Iterator[Any]:
        _spend(1)
        for item in iterable:
            _spend(1)
            yield item

    def sf_concat(self, value: Any) -> str:
        return _check_result(_text(value))

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return super().is_safe_attribute(obj, attr, value) and not isinstance(value, (type, types.ModuleType))

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        if modifies_known_mutable(obj, attribute):
            hint = f"'{attribute}' refused: templates cannot change the story's data"
        else:
            hint = (f"'{attribute}' refused: templates cannot reach Python internals; use the story's names "
                    f"({', '.join(NAMES)})")
        return self.undefined(hint, obj=obj, name=attribute, exc=SecurityError)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _spend(1)
        if __obj is _range or getattr(__obj, "__func__", None) in (_Environment.sf_iterate, _Environment.sf_concat):
            return super().call(__context, __obj, *args, **kwargs)
        target = getattr(__obj, "__wrapped__", __obj)  # str.format is wrapped by the sandbox
        subject = getattr(target, "__self__", None)
        name = getattr(target, "__name__", "")
        _spend(_size(subject) + sum(_size(a) for a in args))
        if name not in ("format", "format_map") or _NESTED_FIELD.search(str(subject)):  # numbers are widths
            for value in (*args, *kwargs.values()):
                _check_number(value)
        _refuse_objects([*args, *(v for k, v in kwargs.items() if k != "caller")])
        _check_expansion(name, subject, args, method=True)
        return _check_result(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _spend(1 + _size(left) + _size(right))
        _refuse_objects([left, right])
        if operator == "*":
            count, sequence = (left, right) if isinstance(left, int) else (right, left)
            if isinstance(count, int) and count > 0 and _size(sequence) * count > MAX_TEXT:
                raise Refused(f"refused: repeating text or a list past {MAX_TEXT:,} items; prompts are short")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
                if right * max(1, abs(left).bit_length()) > MAX_INT_BITS:
                    raise Refused("refused: a number in the template is too large")
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
            if "*" in left:  # '%*d' takes its width from the arguments
                for value in right if isinstance(right, tuple) else (right,):
                    _check_number(value)
        return _check_result(super().call_binop(context, operator, left, right))


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that counts its work, refuses huge numbers and Python objects, and checks its result size."""

    passes_first = getattr(function, "jinja_pass_arg", None) is not None  # context or environment comes first

    def bounded(*args: Any, **kwargs: Any) -> Any:
        values = args[1:] if passes_first else args
        _spend(1 + sum(_size(v) for v in values))
        for value in (*values[1:], *kwargs.values()):  # arguments are widths and counts; the value is data
            _check_number(value)
        _refuse_objects([*values, *kwargs.values()])
        if values:
            _check_expansion(name, values[0], tuple(values[1:]), method=False)
        return _check_result(function(*args, **kwargs))

    return update_wrapper(bounded, function)  # keeps jinja_pass_arg (context/environment arguments)


_FORBIDDEN = {nodes.Include: "{% include %}", nodes.Extends: "{% extends %}", nodes.Import: "{% import %}",
              nodes.FromImport: "{% from ... import %}"}


def _bound(tree: nodes.Template) -> nodes.Template:
    """Rewrite a parsed template so every loop and every `~` goes through the budget."""
    for kind, label in _FORBIDDEN.items():
        found = next(iter(tree.find_all(kind)), None)
        if found is not None:
            raise TemplateSyntaxError(f"{label} is not available in story templates; write the text here",
                                      found.lineno)
    for loop in list(tree.find_all(nodes.For)):
        if loop.recursive:
            raise TemplateSyntaxError("recursive loops are not available in story templates", loop.lineno)
        loop.iter = nodes.Call(nodes.EnvironmentAttribute("sf_iterate"), [loop.iter], [], None, None,
                               lineno=loop.lineno)
    for concat in list(tree.find_all(nodes.Concat)):
        concat.nodes = [nodes.Call(nodes.EnvironmentAttribute("sf_concat"), [part], [], None, None,
                                   lineno=part.lineno) for part in concat.nodes]
    return tree


_ENV = _Environment()


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
    """The story's `enhance.template`, read (a file beside the story must stay inside its folder)."""
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
    folder = story.path.parent.resolve()
    relative = Path(name)
    path = (folder / relative).resolve()
    if relative.is_absolute() or not path.is_relative_to(folder):
        raise problem(f"'{name}' is outside the story's folder; keep template files beside the story file or "
                      "in a folder below it")
    if not path.is_file():
        raise problem(f"no such template file: {name} (paths are relative to the story file)")
    raw = path.read_bytes()
    if len(raw) > MAX_TEMPLATE_FILE:
        raise problem(f"{name} is larger than {MAX_TEMPLATE_FILE // 1000} KB; a prompt template is short")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise problem(f"{name} is not UTF-8 text; save it as UTF-8") from None
    return PromptTemplate(name, source, _sha256(source), display_path(path))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- rendering ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """One template text: a story field (at a key path) or the prompt template (in its own file)."""

    label: str  # how the story refers to it: style, characters.fox, dawn/glide.prompt
    source: str
    where: str
    path: PathKey | None = None  # key path in the story; None for the prompt template file
    file: str | None = None  # the template file, when not the story


class _Compiled:
    """Parsed templates, shared by every shot of a film."""

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}

    def get(self, source: str) -> Any:
        if source not in self.cache:
            try:
                code = _ENV.compile(_bound(_ENV.parse(source)))
                self.cache[source] = _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None), None)
            except TemplateSyntaxError as error:
                self.cache[source] = error
            except RecursionError:
                self.cache[source] = Refused("refused: the template nests too deeply")
        found = self.cache[source]
        if isinstance(found, Exception):
            raise found.with_traceback(None)  # the same error for every shot, without piling up tracebacks
        return found


_CAMERA_MOTION = re.compile(
    r"\b(push(es|ing)?|pull(s|ing)?|pan(s|ning)?|tilt(s|ing)?|dolly|track(s|ing)?|truck(s|ing)?|zoom(s|ing)?|"
    r"orbit(s|ing)?|arc(s|ing)?|crane|boom|pedestal|follow(s|ing)?|handheld|steadicam|rotat(e|es|ing)|"
    r"mov(e|es|ing)|glid(e|es|ing)|drift(s|ing)?|ris(e|es|ing)|descend(s|ing)?|sweep(s|ing)?|whip|static|"
    r"locked[- ]off|fly(ing)?|flyover|fly-through|flythrough|travel(s|ling|ing)?|reveal(s|ing)?)\b",
    re.IGNORECASE,
)


def split_camera(camera: str) -> tuple[str, str]:
    """'wide shot, low angle, slow push in' -> ('wide shot, low angle', 'slow push in')."""
    framing, motion = [], []
    for part in (p.strip() for p in camera.split(",")):
        if part:
            (motion if _CAMERA_MOTION.search(part) else framing).append(part)
    return ", ".join(framing), ", ".join(motion)


class _ShotRenderer:
    """Renders the texts of one shot, each at most once, each with the shot's scope."""

    def __init__(self, story: Story, shot: ResolvedShot, compiled: _Compiled):
        self.story, self.shot, self.compiled = story, shot, compiled
        self.done: dict[str, str] = {}
        self.stack: list[str] = []
        self.named: list[str] = []  # characters the prompt uses, in order
        self.cast: list[str] = []  # characters any of the shot's story texts use, in order (not the template's)
        self.in_story: list[bool] = []  # per text being rendered: whether it is the story's (not a .j2 file's)
        film, scene, spec = story.film, shot.scene, shot.shot
        s = shot.path[1]
        characters = {
            name: _Lazy(lambda name=name, c=c: _CharacterText(
                self.text(_Field(f"characters.{name}", c.description, f"characters.{name}",
                                 ("characters", name, "description"))), name, c.reference or ""))
            for name, c in film.characters.items()
        }
        locations = {name: self._lazy(f"locations.{name}", place.description, f"locations.{name}",
                                      ("locations", name, "description"))
                     for name, place in film.locations.items()}
        if scene.location and scene.location in film.locations:
            location: Any = locations[scene.location]
        else:
            location = self._lazy(f"{scene.id}.location", scene.location or "", f"{scene.id}.location",
                                  ("scenes", s, "location"))
        camera = self._lazy(f"{shot.id}.camera", spec.camera or "", shot.id, shot.path + ("camera",))
        prompt = self._lazy(f"{shot.id}.prompt", spec.prompt, shot.id, shot.path + ("prompt",))
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
                "framing": _Lazy(lambda: split_camera(camera.get())[0]),
                "motion": _Lazy(lambda: split_camera(camera.get())[1]),
                "characters": _Lazy(lambda: self._characters(prompt.get())),
                "subjects": _Lazy(lambda: self._subjects(prompt.get())),
                "setting": _Lazy(lambda: self._setting(prompt.get())),
            }),
            "characters": _Names("characters", characters, self._use),
            "locations": _Names("locations", locations),
            "location": location,
            "style": self._lazy("style", film.style or "", "style", ("style",)),
        }

    def _lazy(self, label: str, source: str, where: str, path: PathKey) -> _Lazy:
        return _Lazy(lambda: self.text(_Field(label, source, where, path)))

    def _use(self, name: str) -> None:
        if f"{self.shot.id}.prompt" in self.stack and name not in self.named:
            self.named.append(name)
        # the cast is what the story's texts name; the prompt template naming characters by word does not count
        if self.in_story and self.in_story[-1] and name not in self.cast:
            self.cast.append(name)

    def _characters(self, prompt: str) -> list[_CharacterText]:
        """Characters the prompt uses (through `characters.x`) or names as a word ('the fox runs')."""
        names = [*self.named]
        for name in self.story.film.characters:
            words = {name, name.replace("_", " ")}
            if name not in names and any(re.search(rf"\b{re.escape(w)}\b", prompt, re.IGNORECASE) for w in words):
                names.append(name)
        return [self.scope["characters"][name] for name in names]

    def _subjects(self, prompt: str) -> list[str]:
        """Descriptions of the characters in the shot that its prompt does not already spell out."""
        lowered = prompt.lower()
        return [c.description for c in self._characters(prompt) if c.description.lower() not in lowered]

    def _setting(self, prompt: str) -> list[str]:
        """The location and scene description, less what the prompt already says."""
        lowered = prompt.lower()
        texts = [self.scope["location"].get(), self.scope["scene"].description]
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
        if not any(mark in item.source for mark in _SYNTAX):
            return " ".join(item.source.split())  # plain text: nothing to render
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
        if any(mark in text for mark in _SYNTAX):
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
    """Each shot's prompt (its enhance.template applied) and camera words, every template rendered."""
    story = film.story
    template = prompt_template(story)
    context = _Film(story, template)
    problems: list[Problem] = []
    texts: dict[str, ShotText] = {}
    for shot in film.shots:
        try:
            texts[shot.id] = _render_shot(context, shot)
        except _FieldFailure as failure:
            if failure.problem not in problems:
                problems.append(failure.problem)
    if problems:
        raise StoryError(problems)
    return texts


def _render_shot(context: _Film, shot: ResolvedShot) -> ShotText:
    renderer = _ShotRenderer(context.story, shot, context.compiled)
    source, template = context.story.source, context.template

    def empty(message: str) -> _FieldFailure:
        return _FieldFailure(Problem(source.file, source.line(shot.path + ("prompt",)), shot.id, message))

    token = _budget.set([0])
    try:
        if not renderer.scope["shot"].prompt:  # rendered first, so its errors come first
            raise empty("the prompt renders to empty text; write what happens in the shot")
        camera = renderer.scope["shot"].camera or None
        prompt = renderer.text(_Field(f"template {template.name}", template.source, shot.id, None, template.file))
        if not prompt:
            raise empty(f"the template {template.name} renders this shot to empty text")
    except Refused as refused:  # a cycle found while a field asked for another
        raise empty(str(refused)) from None
    finally:
        _budget.reset(token)
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

    def write(prompt: str, camera: str | None, keyframe: Keyframe) -> str:
        pictures = [f"the {r.name.replace('_', ' ')} from picture {n}"
                    for n, r in enumerate(keyframe.references, start=1)]
        scope = {"prompt": prompt, "camera": camera or "", "pictures": pictures, "cast": list(keyframe.cast),
                 "location": keyframe.location or ""}
        token = _budget.set([0])
        try:
            if len(source) > MAX_TEXT:
                raise Refused(f"refused: the text is longer than {MAX_TEXT:,} characters; prompts are short")
            text = " ".join("".join(compiled.get(source).generate(scope)).split())
            if len(text) > MAX_TEXT:
                raise Refused(f"refused: the template renders to more than {MAX_TEXT:,} characters; prompts are short")
        except Exception as error:  # noqa: BLE001 - every failure becomes one message at the template's line
            message = _message(error)
            if "unknown name" in message:
                message = message.split(";")[0] + f"; names in scope: {', '.join(KEYFRAME_NAMES)}"
            raise StoryError([Problem(story.source.file, line, "keyframes.template", message)]) from None
        finally:
            _budget.reset(token)
        if not text:
            raise StoryError([Problem(story.source.file, line, "keyframes.template",
                                      "the edit instruction renders to empty text; use {{ prompt }} in it")])
        return text

    return write
