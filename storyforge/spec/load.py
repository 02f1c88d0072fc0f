"""Reading a story file: safe YAML with a line for every value, then the models, every error at file:line."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
import yaml.constructor
from pydantic import ValidationError

from storyforge import FORMAT_VERSION
from storyforge.errors import Problem, StoryError, display_path
from storyforge.spec.models import (
    Character,
    Enhance,
    Film,
    Keyframes,
    Location,
    RenderSettings,
    Scene,
    Shot,
    TransitionSpec,
)

MAX_NODES = 200_000  # far above any real film; stops alias bombs ("billion laughs")
MAX_BYTES = 20_000_000

PathKey = tuple[Any, ...]


@dataclass
class SourceMap:
    """Where each value of a story file was written: key path -> line (1-based)."""

    file: str
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line(self, path: PathKey) -> int:
        """The line of the deepest known prefix of `path`."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)


@dataclass(frozen=True)
class Story:
    """A loaded, validated story file with its source map."""

    path: Path
    film: Film
    source: SourceMap
    text: str


class _Composer:
    """Builds plain Python data from PyYAML nodes, recording lines and refusing surprises."""

    def __init__(self, file: str):
        self.source = SourceMap(file)
        self.problems: list[Problem] = []
        self.nodes = 0
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig(node.start_mark.line + 1)
        if node.tag not in _PLAIN_TAGS:
            self._problem(node, path, f"the tag {_short(node.tag)} is not allowed in a story file; remove it")
            return _BAD
        self.source.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            self.constructor.flatten_mapping(node)  # YAML merge keys (<<) as PyYAML's safe loader does
            for key_node, value_node in node.value:
                key = self._scalar(key_node, path)
                if isinstance(key, (list, dict)) or key is _BAD:
                    self._problem(key_node, path, "a key must be plain text")
                    continue
                if key in result:
                    self._problem(key_node, path, f"key '{key}' appears twice; keep one")
                    continue
                self.source.lines[path + (key,)] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, path + (key,))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (index,)) for index, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: PathKey) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return self.build(node, path)
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError:
            self._problem(node, path, f"the tag {_short(node.tag)} is not allowed in a story file; remove it")
            return _BAD

    def _problem(self, node: yaml.Node, path: PathKey, message: str) -> None:
        self.problems.append(Problem(self.source.file, node.start_mark.line + 1, where(path), message))


def _short(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


class _TooBig(Exception):
    def __init__(self, line: int):
        self.line = line


_BAD = object()
# libyaml's composer when PyYAML was built with it (5-10x faster on big films); same nodes, same marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Only YAML's own types: any other tag (!!python/object, custom !tags) is refused, never constructed.
_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in
               ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary", "merge")}


def where(path: PathKey, data: Any = None) -> str:
    """A readable location: 'render.fps', 'dawn.location', 'dawn/glide.duration' (ids when known)."""
    parts = list(path)
    label = ""
    if len(parts) >= 2 and parts[0] == "scenes" and isinstance(parts[1], int):
        scene = _pick(data, ["scenes", parts[1]])
        scene_label = scene.get("id") if isinstance(scene, dict) and isinstance(scene.get("id"), str) else None
        label = scene_label or f"scenes[{parts[1]}]"
        parts = parts[2:]
        if len(parts) >= 2 and parts[0] == "shots" and isinstance(parts[1], int):
            shot = _pick(scene, ["shots", parts[1]]) if isinstance(scene, dict) else None
            shot_label = shot.get("id") if isinstance(shot, dict) and isinstance(shot.get("id"), str) else None
            label += "/" + (shot_label or f"shots[{parts[1]}]")
            parts = parts[2:]
    for part in parts:
        if isinstance(part, int):
            label += f"[{part}]"
        else:
            label += ("." if label else "") + str(part)
    return label or "(top)"


def _pick(data: Any, path: list[Any]) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def read_text(path: Path) -> str:
    """The story file's text, or a StoryError for a missing, huge or non-UTF-8 file."""
    shown = display_path(path)
    if not path.exists():
        raise StoryError([Problem(shown, 0, "", "no such file; check the path")])
    if path.is_dir():
        raise StoryError([Problem(shown, 0, "", "this is a folder; give the story's .yaml file")])
    raw = path.read_bytes()
    if len(raw) > MAX_BYTES:
        raise StoryError([Problem(shown, 0, "", f"the file is larger than {MAX_BYTES // 1_000_000} MB")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise StoryError(
            [Problem(shown, line, "", f"the file is not UTF-8 text (byte 0x{raw[error.start]:02x}); "
                     "save it as UTF-8")]
        ) from None


def parse_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    """Safe YAML -> plain data and its source map; syntax errors and unsafe tags become Problems."""
    if not text.strip() or all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        raise StoryError([Problem(file, 0, "", "the file is empty; run `storyforge init` for an example")])
    try:
        nodes = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.YAMLError:
        nodes = []  # parse again with the pure-Python loader: its messages are the same on every install
    try:
        if not nodes:
            nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 0
        what = " ".join(part for part in (error.context, error.problem) if part)
        message = f"YAML syntax error: {what}; fix the indentation or quoting"
        raise StoryError([Problem(file, line, "", message)]) from None
    except yaml.YAMLError as error:
        raise StoryError([Problem(file, 0, "", f"YAML error: {error}")]) from None
    if len(nodes) != 1:
        raise StoryError([Problem(file, 0, "", "a story file holds one YAML document; remove the '---' lines")])
    if nodes[0] is None:
        raise StoryError([Problem(file, 0, "", "the file is empty; run `storyforge init` for an example")])
    composer = _Composer(file)
    try:
        data = composer.build(nodes[0], ())
    except _TooBig as big:
        raise StoryError([Problem(file, big.line, "", "the file expands to too many values (YAML aliases?)")]) from None
    if composer.problems:
        raise StoryError(composer.problems)
    if not isinstance(data, dict):
        raise StoryError([Problem(file, composer.source.line(()), "", "a story file is a mapping of keys "
                                  "(storyforge, title, scenes, ...); run `storyforge init` for an example")])
    return data, composer.source


def load(path: Path | str) -> Story:
    """Read, parse and validate one story file; raise StoryError with every problem found."""
    path = Path(path)
    shown = display_path(path)
    text = read_text(path)
    data, source = parse_yaml(text, shown)
    version = data.get("storyforge")
    if "storyforge" in data and version != FORMAT_VERSION and isinstance(version, int):
        raise StoryError([Problem(shown, source.line(("storyforge",)), "storyforge",
                                  f"format version {version} is not supported by this storyforge "
                                  f"(it reads version {FORMAT_VERSION}); upgrade storyforge or write "
                                  f"`storyforge: {FORMAT_VERSION}`")])
    try:
        film = Film.model_validate(data)
    except ValidationError as error:
        raise StoryError(_problems(error, data, source)) from None
    from storyforge.spec.checks import check_film  # the checks that need the whole film and the disk

    problems = check_film(film, source, path.parent)
    if problems:
        raise StoryError(problems)
    return Story(path=path, film=film, source=source, text=text)


# Each model's keys, for "did you mean" on unknown keys; found by walking the error path.
_MODELS = {
    (): Film,
    ("render",): RenderSettings,
    ("enhance",): Enhance,
    ("scenes", 0): Scene,
    ("scenes", 0, "render"): RenderSettings,
    ("scenes", 0, "shots", 0): Shot,
    ("scenes", 0, "shots", 0, "render"): RenderSettings,
    ("scenes", 0, "shots", 0, "transition"): TransitionSpec,
    ("characters", ""): Character,
    ("locations", ""): Location,
    ("keyframes",): Keyframes,
}


def _model_at(path: PathKey) -> type | None:
    shape = tuple(0 if isinstance(part, int) else part for part in path)
    if len(shape) == 2 and shape[0] in ("characters", "locations"):
        shape = (shape[0], "")
    return _MODELS.get(shape)


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[PathKey, list[Any]]:
    """Split a pydantic error location into the part that exists in the data and the rest."""
    path: list[Any] = []
    rest: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part in _field_names(path):
            rest.append(part)  # a missing key: the location is its parent
            break
        # union branch names ('str', 'TransitionSpec', 'function-after[...]') are not data keys: skip
    return tuple(path), rest


def _field_names(path: list[Any]) -> set[str]:
    model = _model_at(tuple(path))
    return set(model.model_fields) if model else set()


# When a value fails every branch of a union, the most specific complaint wins.
_PRIORITY = {"value_error": 0, "extra_forbidden": 0, "missing": 0, "literal_error": 1}


def _problems(error: ValidationError, data: Any, source: SourceMap) -> list[Problem]:
    problems: dict[tuple[int, str], tuple[int, Problem]] = {}
    suggested: set[tuple[PathKey, str]] = set()
    for item in error.errors():
        path, rest = _data_path(item["loc"], data)
        kind = item["type"]
        if kind == "missing" and rest:
            line = source.line(path)
            message = f"missing required key '{rest[0]}'"
            if rest[0] == "storyforge":
                message += f" (the format version); add `storyforge: {FORMAT_VERSION}` at the top"
            else:
                message += "; add it"
        elif kind == "extra_forbidden":
            key = path[-1]
            line = source.line(path)
            path = path[:-1]
            allowed = sorted(_field_names(list(path)))
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(allowed)}"
            if close:
                suggested.add((path, close[0]))
            message = f"unknown key '{key}'; {hint}"
        else:
            line = source.line(path)
            message = _message(item)
        problem = Problem(source.file, line, where(path, data), message)
        rank = _PRIORITY.get(kind, 2)
        slot = (line, problem.where, message if kind in ("missing", "extra_forbidden") else "")
        if slot not in problems or rank < problems[slot][0]:
            problems[slot] = (rank, problem)  # a union reports one mistake per branch: keep the best
    # "unknown key 'duraton'; did you mean 'duration'?" already says what "missing 'duration'" would
    return [problem for _, problem in problems.values()
            if not any(problem.message.startswith(f"missing required key '{key}'") and
                       problem.where == where(path, data) for path, key in suggested)]


def _message(item: dict[str, Any]) -> str:
    kind, ctx, value = item["type"], item.get("ctx") or {}, item.get("input")
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    if kind == "value_error":
        return str(ctx.get("error", item["msg"]))
    if kind == "literal_error":
        return f"{shown} is not one of: {ctx.get('expected', '').replace(' or ', ', ')}"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        if pattern.startswith("^[a-z0-9]"):
            return f"{shown} is not a valid id: use lower-case letters, digits, '-' and '_', starting with a " \
                   "letter or digit"
        if pattern.startswith("^[A-Za-z_]"):
            return f"{shown} is not a valid name: use letters, digits and '_', so templates can say " \
                   "{{ characters.name }}"
        if "540p" in pattern:
            return f"{shown} is not a resolution: write 540p, 720p or WIDTHxHEIGHT like 960x544"
        return f"{shown} does not match {pattern}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{shown} is not a whole number"
    if kind in ("float_parsing", "float_type"):
        return f"{shown} is not a number"
    if kind in ("string_type",):
        return f"{shown} is not text; quote it"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of keys, got {shown}"
    if kind == "list_type":
        return f"expected a list (items starting with '-'), got {shown}"
    if kind == "too_short":
        return "must not be empty; add at least one item"
    if kind == "greater_than":
        return f"must be greater than {ctx.get('gt')}, got {shown}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}, got {shown}"
    if kind == "less_than":
        return f"must be less than {ctx.get('lt')}, got {shown}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}, got {shown}"
    if kind == "bool_parsing" or kind == "bool_type":
        return f"{shown} is not true or false"
    if kind == "union_tag_invalid":
        return f"{shown} is not allowed here"
    return f"{item['msg']} (got {shown})"
