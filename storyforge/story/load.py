"""Reading a story file: safe YAML with a line for every value, then the models, every error at file:line."""

from __future__ import annotations

import contextlib
import difflib
import gc
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
import yaml.constructor
from pydantic import BaseModel, ValidationError

from storyforge import FORMAT_VERSION
from storyforge.errors import Problem, StoryError, display_path
from storyforge.story.checks import check_files, check_film
from storyforge.story.models import (
    Character,
    DialogueLine,
    Enhance,
    Film,
    Keyframes,
    Location,
    RenderSettings,
    Scene,
    SeamSpec,
    Shot,
    TransitionSpec,
)
from storyforge.story.root import PathRefused, StoryRoot, read_bytes
from storyforge.story.source import PathKey, SourceMap, where

__all__ = ["PathKey", "SourceMap", "Story", "load", "parse_yaml", "read_text", "where"]

MAX_NODES = 100_000  # a 1,000-shot film has about 10,000; stops alias bombs ("billion laughs")
MAX_BYTES = 500_000  # a 1,000-shot film with long prompts is about 250 KB
MAX_DEPTH = 64  # a story nests about 8 levels (scenes > shots > render > ...)
MAX_SHOTS = 1_000  # over an hour of generated shots; longer films are several story files (planning stays < 1 s)
MAX_INT_DIGITS = 30  # far past any seed or frame count; stops 10**100000 (slow to convert, meaningless)
_SURROGATE = re.compile("[\ud800-\udfff]")

@dataclass(frozen=True)
class Story:
    """A loaded, validated story file with its source map."""

    path: Path
    film: Film
    source: SourceMap
    text: str
    root: StoryRoot

    def locate(self, written: str, *, folder: bool = False) -> Path:
        """The resolved path of a file the story names; raises PathRefused outside its root (see StoryRoot)."""
        return self.root.locate(written, folder=folder)


class _Composer:
    """Builds plain Python data from PyYAML nodes, recording lines and refusing surprises.

    The one place a story's YAML becomes values, so every bound on what YAML can express lives here: aliases
    that contain themselves, nesting deeper than any story needs, numbers too long to convert or too large to
    mean anything, NaN and infinities, and text that is not valid Unicode.
    """

    def __init__(self, file: str):
        self.source = SourceMap(file)
        self.problems: list[Problem] = []
        self.nodes = 0
        self.active: set[int] = set()  # ids of the nodes being built: an alias to one of them is a cycle
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig(node.start_mark.line + 1)
        if node.tag not in _PLAIN_TAGS:
            self._problem(node, path, f"the tag {_short(node.tag)} is not allowed in a story file; remove it")
            return _BAD
        if len(path) > MAX_DEPTH:
            self._problem(node, path, f"the values are nested more than {MAX_DEPTH} levels deep; a story needs "
                          "far fewer: flatten it")
            return _BAD
        if id(node) in self.active:
            self._problem(node, path, "an alias (*name) refers to the value that contains it; a value cannot "
                          "contain itself: copy the parts you need instead")
            return _BAD
        self.source.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.build(item, path + (index,)) for index, item in enumerate(node.value)]
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> Any:
        result: dict[Any, Any] = {}
        if node.flow_style and node.value and isinstance(node.value[0][0], yaml.MappingNode) and \
                node.value[0][0].flow_style:  # `prompt: {{ x }}` is a mapping whose key is a mapping, to YAML
            self._problem(node, path, UNQUOTED_TEMPLATE)
            return _BAD
        if any(key.tag in _MERGE_TAGS for key, _ in node.value):  # nothing to merge in most mappings
            if not self._merges_are_safe(node, path):
                return _BAD
            self.constructor.flatten_mapping(node)  # YAML merge keys (<<) as PyYAML's safe loader does
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key is _BAD:
                continue
            if key in result:
                self._problem(key_node, path, f"key '{key}' appears twice; keep one")
                continue
            at = path + (key,)
            self.source.lines[at] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, at)
        return result

    def _merges_are_safe(self, node: yaml.MappingNode, path: PathKey) -> bool:
        """`<<: *x` inside x itself (or deeper than the bound) would make PyYAML's merge recurse forever."""
        stack, seen = [(node, 0)], set()
        while stack:
            current, depth = stack.pop()
            if depth > MAX_DEPTH:
                self._problem(current, path, f"merge keys (<<) are nested more than {MAX_DEPTH} levels deep")
                return False
            for key_node, value_node in current.value:
                if key_node.tag != "tag:yaml.org,2002:merge":
                    continue
                merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for item in merged:
                    if item is node or id(item) in self.active or id(item) in seen:
                        self._problem(key_node, path, "a merge key (<<) refers to the mapping that contains it; "
                                      "a value cannot contain itself")
                        return False
                    if isinstance(item, yaml.MappingNode):
                        seen.add(id(item))
                        stack.append((item, depth + 1))
        return True

    def _key(self, node: yaml.Node, path: PathKey) -> Any:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in _PLAIN_TAGS:
            self._problem(node, path, "a key must be plain text")
            return _BAD
        key = self._scalar(node, path)
        if isinstance(key, (list, dict, bytes)) or key is _BAD:
            if key is not _BAD:
                self._problem(node, path, "a key must be plain text")
            return _BAD
        return key

    def _scalar(self, node: yaml.ScalarNode, path: PathKey) -> Any:
        if node.tag == _STR:  # what the constructor gives for text, without its bookkeeping (most of a story)
            value = node.value
        else:
            if node.tag == "tag:yaml.org,2002:int" and len(node.value.lstrip("+-0_")) > MAX_INT_DIGITS:
                self._problem(node, path, f"the number {_written(node)} is too large; numbers in a story have at "
                              f"most {MAX_INT_DIGITS} digits")
                return _BAD
            try:
                value = self.constructor.construct_object(node, deep=True)
            except yaml.constructor.ConstructorError:
                self._problem(node, path, f"the tag {_short(node.tag)} is not allowed in a story file; remove it")
                return _BAD
            except (ValueError, OverflowError, TypeError):  # a date like 2024-13-45, a binary that is not base64
                self._problem(node, path, f"'{_written(node)}' cannot be read as {_short(node.tag)[2:]}; quote it "
                              "to make it text")
                return _BAD
            if isinstance(value, float) and not math.isfinite(value):
                self._problem(node, path, f"{_written(node)} is not a finite number; write an ordinary number")
                return _BAD
        if isinstance(value, str) and not value.isascii() and _SURROGATE.search(value):
            self._problem(node, path, "the text holds an invalid character (a lone UTF-16 surrogate written as an "
                          "escape like \\ud800); remove it")
            return _BAD
        return value

    def _problem(self, node: yaml.Node, path: PathKey, message: str) -> None:
        self.problems.append(Problem(self.source.file, node.start_mark.line + 1, where(path), message))


def _written(node: yaml.ScalarNode) -> str:
    """A scalar as written, shortened for a message."""
    text: str = node.value
    return text if len(text) <= 40 else text[:40] + "…"


def _short(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


class _TooBig(Exception):
    def __init__(self, line: int):
        self.line = line


_BAD = object()


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's composer when PyYAML was built with it (5-10x faster on big films); same nodes, same marks.

    A scalar's tag is worked out once per distinct scalar of the file: PyYAML matches a plain scalar against its
    implicit types' patterns every time it appears, and a film writes the same keys and values thousands of
    times. Without path resolvers (none are registered) the tag follows from the arguments alone."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._tags: dict[tuple[Any, Any, Any], str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if self.yaml_path_resolvers:
            return str(super().resolve(kind, value, implicit))
        key = (kind, value, implicit)
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = super().resolve(kind, value, implicit)
        return tag


_LOADER = _Loader
# Only YAML's own types: any other tag (!!python/object, custom !tags) is refused, never constructed.
_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in
               ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary", "merge")}
_STR = "tag:yaml.org,2002:str"
# keys that PyYAML's flatten_mapping rewrites: merge keys (<<), and the `=` value key (read as text)
_MERGE_TAGS = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})


def read_text(path: Path) -> str:
    """The story file's text, or a StoryError for a missing, huge, non-regular or non-UTF-8 file.

    The size is checked before anything is read, and only a regular file is opened (never a FIFO or a link to
    /dev/zero), so naming any path finishes at once.
    """
    shown = display_path(path)
    if not path.exists() and not path.is_symlink():
        raise StoryError([Problem(shown, 0, "", "no such file; check the path")])
    if path.is_dir():
        raise StoryError([Problem(shown, 0, "", "this is a folder; give the story's .yaml file")])
    try:
        raw = read_bytes(path, MAX_BYTES, shown="the story file")
    except PathRefused as refused:
        raise StoryError([Problem(shown, 0, "", str(refused))]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise StoryError(
            [Problem(shown, line, "", f"the file is not UTF-8 text (byte 0x{raw[error.start]:02x}); "
                     "save it as UTF-8")]
        ) from None


def _compose(text: str) -> list[yaml.Node]:
    """The YAML documents as nodes (libyaml when present); a syntax error is raised from the pure-Python
    parser, whose messages are the same on every install."""
    try:
        return list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as error:
        if "nesting depth" in str(error.problem):  # libyaml's own bound; the Python parser would recurse
            raise _Nested(error.problem_mark.line + 1 if error.problem_mark else 0) from None
    except yaml.YAMLError:
        pass
    try:
        return list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except RecursionError:
        raise _Nested(0) from None


class _Nested(Exception):
    def __init__(self, line: int):
        self.line = line


UNQUOTED_TEMPLATE = ('a value that begins with {{ is read by YAML as a mapping, not as text; quote values that begin '
                     'with {{, e.g. prompt: "{{ characters.fox }} runs"')
# A plain (unquoted) value that begins with `{{`: `key: {{`, `- {{`, `- key: {{` (not inside quotes or a comment)
_TEMPLATE_START = re.compile(r"""^\s*(?:-\s+)*(?:[^'"\s#{\[][^'"#]*?:\s+)?\{\{""")


def _syntax_problem(error: yaml.MarkedYAMLError, file: str, text: str = "") -> Problem:
    """A YAML syntax error at the line to fix: where an unclosed quote or bracket opens, else where it broke."""
    unclosed = "end of stream" in str(error.problem) and error.context_mark is not None
    mark = error.context_mark if unclosed else (error.problem_mark or error.context_mark)
    line = mark.line + 1 if mark else 0
    marks = [m.line for m in (error.context_mark, error.problem_mark) if m is not None]
    if marks:  # `prompt: {{ x }} runs`: YAML's own message ("expected <block end>") would not say what to do
        lines = text.splitlines()
        for number in range(min(marks), min(max(marks), len(lines) - 1) + 1):
            if _TEMPLATE_START.match(lines[number]):
                return Problem(file, number + 1, "", UNQUOTED_TEMPLATE)
    context = str(error.context or "")
    if unclosed and "quoted scalar" in context:
        return Problem(file, line, "", "YAML syntax error: the quoted text that starts on this line is never "
                       "closed; add the closing quote")
    if unclosed and "flow" in context:
        return Problem(file, line, "", "YAML syntax error: the '[' or '{' on this line is never closed; add the "
                       "closing bracket")
    what = " ".join(part for part in (error.context, error.problem) if part)
    return Problem(file, line, "", f"YAML syntax error: {what}; fix the indentation or quoting")


def parse_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    """Safe YAML -> plain data and its source map; syntax errors and unsafe tags become Problems."""
    if not text.strip() or all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        raise StoryError([Problem(file, 0, "", "the file is empty; run `storyforge init` for an example")])
    try:
        nodes = _compose(text)
    except _Nested as nested:
        raise StoryError([Problem(file, nested.line, "", f"the values are nested too deeply; a story needs at "
                                  f"most {MAX_DEPTH} levels: flatten them")]) from None
    except yaml.MarkedYAMLError as error:
        raise StoryError([_syntax_problem(error, file, text)]) from None
    except yaml.reader.ReaderError as error:  # a character YAML forbids: it has a position, not a line
        line = text.count("\n", 0, max(0, error.position)) + 1
        code = error.character if isinstance(error.character, int) else ord(error.character)
        raise StoryError([Problem(file, line, "", f"character {chr(code)!r} (U+{code:04X}) "
                                  "is not allowed in a YAML file; remove it or write it as an escape inside "
                                  "double quotes, e.g. \"\\x1b\"")]) from None
    except yaml.YAMLError as error:
        raise StoryError([Problem(file, 0, "", f"YAML error: {error}")]) from None
    if len(nodes) != 1:
        raise StoryError([Problem(file, 0, "", "a story file holds one YAML document; remove the '---' lines")])
    if nodes[0] is None:
        raise StoryError([Problem(file, 0, "", "the file is empty; run `storyforge init` for an example")])
    _check_shot_count(nodes[0], file)
    composer = _Composer(file)
    try:
        data = composer.build(nodes[0], ())
    except _TooBig as big:
        raise StoryError([Problem(file, big.line, "", f"the file expands to more than {MAX_NODES:,} values "
                                  "(YAML aliases?); a story needs far fewer")]) from None
    if composer.problems:
        raise StoryError(composer.problems)
    if not isinstance(data, dict):
        raise StoryError([Problem(file, composer.source.line(()), "", "a story file is a mapping of keys "
                                  "(storyforge, title, scenes, ...); run `storyforge init` for an example")])
    return data, composer.source


def load(path: Path | str, *, allow: tuple[Path | str, ...] | None = None) -> Story:
    """Read, parse and validate one story file; raise StoryError with every problem found.

    Files the story names must lie inside its root (see storyforge.story.root); `allow` widens it (default:
    the --allow-path folders in effect, and STORYFORGE_ALLOW_PATH). Format problems and file problems are
    reported together.
    """
    path = Path(path)
    shown = display_path(path)
    text = read_text(path)
    with _collector_paused():  # the cyclic GC rescans every node made so far, again and again: 5x on big files
        data, source = parse_yaml(text, shown)
    root = StoryRoot.of(path, allow)
    version = data.get("storyforge")
    if "storyforge" in data and version != FORMAT_VERSION and isinstance(version, int):
        raise StoryError([Problem(shown, source.line(("storyforge",)), "storyforge",
                                  f"format version {version} is not supported by this storyforge "
                                  f"(it reads version {FORMAT_VERSION}); upgrade storyforge or write "
                                  f"`storyforge: {FORMAT_VERSION}`")])
    problems = check_files(data, source, root)  # the files named, even when the format has mistakes too
    try:
        film = Film.model_validate(data)
    except ValidationError as error:
        raise StoryError(_problems(error, data, source) + problems) from None
    problems += check_film(film, source)
    if problems:
        raise StoryError(problems)
    return Story(path=path, film=film, source=source, text=text, root=root)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_shot_count(document: yaml.Node, file: str) -> None:
    """More shots than MAX_SHOTS is one error at the first one too many, found on the YAML nodes before any
    value is built (building 40,000 shots would take seconds)."""
    count = 0
    scenes = _child(document, "scenes")
    for scene in scenes.value if isinstance(scenes, yaml.SequenceNode) else ():
        shots = _child(scene, "shots")
        if isinstance(shots, yaml.SequenceNode):
            count += len(shots.value)
            if count > MAX_SHOTS:
                line = shots.value[len(shots.value) - (count - MAX_SHOTS)].start_mark.line + 1
                raise StoryError([Problem(file, line, "", f"the film has more than {MAX_SHOTS:,} shots; split it "
                                          "into several story files")])


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value_node
    return None


# Each model's keys, for "did you mean" on unknown keys; found by walking the error path.
_MODELS: dict[PathKey, type[BaseModel]] = {
    (): Film,
    ("render",): RenderSettings,
    ("enhance",): Enhance,
    ("scenes", 0): Scene,
    ("scenes", 0, "render"): RenderSettings,
    ("scenes", 0, "shots", 0): Shot,
    ("scenes", 0, "shots", 0, "render"): RenderSettings,
    ("scenes", 0, "shots", 0, "transition"): TransitionSpec,
    ("scenes", 0, "shots", 0, "seams"): SeamSpec,
    ("scenes", 0, "shots", 0, "dialogue", 0): DialogueLine,
    ("characters", ""): Character,
    ("locations", ""): Location,
    ("keyframes",): Keyframes,
}


def _model_at(path: PathKey) -> type[BaseModel] | None:
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
    problems: dict[tuple[int, str, str], tuple[int, Problem]] = {}
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
            message = _message(dict(item))
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
