"""The template sandbox: what a story template may touch, and the bounds on the work and values it makes.

A story file comes from other people, so a template must not be able to hang or exhaust a machine, reach Python
internals, or print a Python object. Every bound is enforced here, at one of a few choke points: a call, a
filter, an operator, a loop, a `~`, and every list/tuple/dict the template builds.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, MutableSequence, MutableSet
from functools import update_wrapper
from itertools import repeat
from types import CodeType
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.lexer import Token, TokenStream
from jinja2.parser import Parser
from jinja2.runtime import Context, Macro, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, modifies_known_mutable
from jinja2.visitor import NodeTransformer

# Limits.
MAX_TEXT = 10_000  # characters (or items) any value, and the output, of a template may reach
MAX_VALUE = 100_000  # characters and items of a list or mapping, all the way down (see `weigh`)
MAX_DEPTH = 100  # lists in lists
MAX_WORK = 250_000  # steps per shot: loop iterations, calls and characters processed
MAX_FILM_WORK = 1_000_000  # steps for all shots together (the packaged templates spend about 10 a shot)
MAX_RANGE = 100_000  # items in range(); the same bound as Jinja's own sandbox
MAX_NUMBER = 100_000  # largest number a filter or method may take (widths, counts, repeats)
MAX_INT_BITS = 4096  # integers may not grow past this (10**10**10 would hang)
MAX_TEMPLATE_FILE = 64_000  # bytes of a .j2 file
MAX_SHAPES = 4096  # compiled template shapes kept per environment (see Sandbox.compile_bounded)


class Refused(Exception):
    """A template went past a limit or tried something a story template may not do; the message says which."""


# -- the work budget -------------------------------------------------------------------------------------------

_budget: contextvars.ContextVar[list[Any]] = contextvars.ContextVar("storyforge_template_budget")
_film_budget: contextvars.ContextVar[list[int]] = contextvars.ContextVar("storyforge_film_budget")


@contextlib.contextmanager
def film_budget(box: list[int] | None = None) -> Iterator[None]:
    """One budget (MAX_FILM_WORK steps) shared by the shots rendered inside: a film's texts together. `box`
    carries one film's budget across several entries (one per keyframe instruction)."""
    token = _film_budget.set(box if box is not None else [0])
    try:
        yield
    finally:
        _film_budget.reset(token)


def spend(amount: int) -> None:
    box = _budget.get(None)
    if box is None:
        return
    box[0] += amount
    box[1][0] += amount
    if box[1][0] > MAX_FILM_WORK:
        raise Refused(f"refused: the film's templates do too much work together (more than {MAX_FILM_WORK:,} "
                      "steps); loops and repetition in story templates are bounded")
    if box[0] > MAX_WORK:
        raise Refused(f"refused: the template does too much work (more than {MAX_WORK:,} steps); loops and "
                      "repetition in story templates are bounded")


def spent() -> int:
    """Steps counted so far in the current shot's budget (0 outside one)."""
    box = _budget.get(None)
    return box[0] if box is not None else 0


def charge(amount: int) -> bool:
    """Count `amount` steps of work that is not done again (a template's render reused for another shot), in the
    shot's and the film's budget: True when both still hold them; False, counting nothing, when either would
    run over (the caller then does the work itself, so the limit is met where the work really passes it)."""
    box = _budget.get(None)
    if box is None or amount <= 0:
        return True
    if box[0] + amount > MAX_WORK or box[1][0] + amount > MAX_FILM_WORK:
        return False
    box[0] += amount
    box[1][0] += amount
    return True


def refund(amount: int) -> None:
    """Take back steps `charge` counted for work that will be done (and counted) after all."""
    box = _budget.get(None)
    if box is not None and amount > 0:
        box[0] -= amount
        box[1][0] -= amount


def _size(value: Any) -> int:
    if isinstance(value, (str, list, tuple, dict, Mapping)):
        return len(value)
    return 0


def weigh(value: Any, limit: int = MAX_VALUE) -> int:
    """The size of a value all the way down (characters plus items at every level), counted up to just past
    `limit` and no further: a list nested by doubling ([a, a] forty times) weighs what it would print as, yet
    is never walked past the bound. Only the story's plain data is entered: the story's own names (characters,
    locations) are counted by their length, never rendered."""
    total, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if type(item) is str or isinstance(item, str):
            total += len(item)
        elif isinstance(item, (list, tuple, dict)):
            if depth >= MAX_DEPTH:
                raise Refused(f"refused: lists in the template are nested more than {MAX_DEPTH} deep")
            total += len(item) + 1
            values = item.values() if isinstance(item, dict) else item
            stack.extend(zip(values, repeat(depth + 1)))  # (child, depth + 1) each, made without Python per item
            if isinstance(item, dict):
                stack.extend(zip(item, repeat(depth + 1)))
        elif isinstance(item, Mapping):
            total += len(item)
        else:
            total += 1
        if total > limit:
            break
    return total


def _check_result(value: Any) -> Any:
    if type(value) is str and len(value) <= MAX_TEXT and not _ADDRESS.search(value):
        return value  # most results: text that passes the checks below, found so at once
    if isinstance(value, str) and _ADDRESS.search(value):
        raise Refused("refused: templates print text, not Python objects")
    if _size(value) > MAX_TEXT:
        raise Refused(f"refused: a value in the template grows past {MAX_TEXT:,} characters; prompts are short")
    if isinstance(value, (list, tuple, dict)) and weigh(value) > MAX_VALUE:
        raise Refused(f"refused: a value in the template grows past {MAX_VALUE:,} characters and items in all; "
                      "prompts are short")
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


_EXPANDING = frozenset({"replace", "join", "indent", "expandtabs", "format", "format_map"})  # see _check_expansion


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
    """A function, class or module (or a list holding one): its text would be a Python repr with an address.

    Walks at most MAX_VALUE items (values are bounded when built, see `weigh`)."""
    stack, seen = [value], 0
    while stack and seen <= MAX_VALUE:
        item = stack.pop()
        seen += 1
        if type(item) is str or isinstance(item, (Undefined, Macro, str)):  # text first: nearly every item is
            continue
        if isinstance(item, (type, types.ModuleType)) or callable(item):
            return True
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return False


def _kind(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (dict, Mapping)):
        return "a collection of names"
    if hasattr(type(value), "_label") or "_label" in getattr(value, "__dict__", {}):
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


def text_of(value: Any) -> str:
    """What `{{ value }}` prints: text and numbers; anything else is refused, never its Python repr."""
    if type(value) is str:  # most values: what str() gives, without the checks before
        return value
    if isinstance(value, Undefined):
        return str(value)  # raises the unknown-name error
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value)
    raise Refused(f"refused: this prints {_kind(value)}, not text; print a name such as characters.fox, "
                  "or join a list with |join(', ')")


class budget:  # noqa: N801 - used as `with budget():`, like film_budget
    """A fresh work budget (MAX_WORK steps) for what renders inside: one shot's texts. Every shot of a film
    (one thread) also draws on the film's budget, MAX_FILM_WORK, started by `film_budget`. A class rather than a
    generator: entered once for every shot of a film."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _budget.set([0, _film_budget.get(None) or [0]])

    def __exit__(self, *exc: object) -> None:
        _budget.reset(self._token)


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise Refused(f"range({', '.join(str(a) for a in args)}) refused: ranges in templates are limited to "
                      f"{MAX_RANGE:,} items")
    spend(len(numbers))  # what is done with the numbers is not all counted, so count them here
    return numbers


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with bounded work, bounded values and messages meant for story authors.

    `names`: the names a template has in scope (for messages); `filters`: extra filters, bounded like Jinja's.
    A subclass sets `context_class` for how names are looked up.
    """

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    # The types of the names a subclass gives templates whose public attributes are all a template may read:
    # plain classes, neither Python internals nor mutable containers (see getattr).
    records: frozenset[type] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mutable = (MutableMapping, MutableSequence, MutableSet, deque, types.FunctionType, types.MethodType, type,
                   types.ModuleType)
        if any(issubclass(record, mutable) for record in cls.records):
            raise TypeError(f"{cls.__name__}.records: only plain record types are read without checks")

    def __init__(self, *, undefined: type[Undefined], names: tuple[str, ...],
                 filters: dict[str, Callable[..., Any]] | None = None) -> None:
        super().__init__(undefined=undefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
                         finalize=text_of, keep_trailing_newline=False)
        self.names = names
        self.globals.pop("lipsum", None)  # random text: a prompt must render the same every time
        self.globals["range"] = _range
        for name in ("random", "pprint"):  # random output; Python reprs
            self.filters.pop(name, None)
        self.filters.update(filters or {})
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self._shapes: dict[tuple[Any, ...], _Shape] = {}  # token shape (or simple shape) -> code; compile_bounded
        self._globals = dict(self.make_globals(None))

    def compile_bounded(self, source: str) -> Any:
        """A template object for `source`, rewritten so its loops, joins and literals go through the bounds.

        Templates that differ only in their plain text ("{{ characters.hero }} walks past the well" and
        "{{ characters.hero }} waits by the gate") share one compiled shape: parsing and compiling are most of
        the cost of a template used once, and a film's prompts are mostly one shape with different words."""
        shaped = self._shaped(source)
        if shaped is not None:
            return shaped[0].template(self, shaped[1])
        # a plain dict of the globals rather than jinja's ChainMap over them: every render copies the globals into
        # its context, and walking a ChainMap was a tenth of rendering a film's texts (the globals never change)
        return self.template_class.from_code(self, self.compile(_bound(self.parse(source))), dict(self._globals),
                                             None)

    def _shaped(self, source: str) -> tuple[_Shape, list[str]] | None:
        """The compiled shape of `source`'s tokens and the plain text to set into it (see _Shape.template); None
        where the shape is not known and cannot be compiled (the plain path then reports why).

        The shape is the token stream with each piece of plain text replaced by a numbered marker (and, in a
        simple text, each attribute name: see _simple_shape). Jinja's parser reads plain text only for whether it
        is empty, and its code generator only joins it into string constants, so putting the text back into
        those constants gives the code of the template itself."""
        if _MARK in source:
            return None
        simple = _simple_shape(source)
        if simple is not None and simple[0] in self._shapes:
            return self._shapes[simple[0]], simple[1]
        try:
            tokens = list(self._tokenize(source, None))
        except Exception:  # noqa: BLE001 - a lexing error: the plain path raises it as Jinja reports it
            return None
        texts: list[str] = []
        shape: list[Token] = []
        for index, token in enumerate(tokens):
            # a simple text's attribute names (`characters.hero`) are holes too: Jinja's code only quotes them
            # (`environment.getattr(x, 'hero')`), and its parser only reads a name's value after a dot to name a
            # filter or a test, or to fold a constant (`true.real`), none of which a simple text holds
            if (token.type == "data" and token.value) or (simple is not None and token.type == "name" and
                                                          index and tokens[index - 1].type == "dot"):
                shape.append(Token(token.lineno, token.type, f"{_MARK}{len(texts)}{_MARK}"))
                texts.append(token.value)
            else:
                shape.append(token)
        key = tuple(shape)
        found = self._shapes.get(key)
        if found is None:
            if len(self._shapes) >= MAX_SHAPES:
                return None
            parser = Parser(self, "")
            parser.stream = TokenStream(shape, None, None)
            try:
                found = _Shape(self, self.compile(_bound(parser.parse())))
            except Exception:  # noqa: BLE001 - the plain path raises the same error, with Jinja's own report
                return None
            self._shapes[key] = found
        if simple is not None and simple[1] == texts and len(self._shapes) < MAX_SHAPES:
            self._shapes[simple[0]] = found  # the lexer's plain text is the simple reading's: the next one skips it
        return found, texts

    # called from templates rewritten by _bound (see there)
    def sf_iterate(self, iterable: Any) -> Iterator[Any]:
        spend(1)
        for item in iterable:
            spend(1)
            yield item

    def sf_concat(self, value: Any) -> str:
        return str(_check_result(text_of(value)))

    def sf_value(self, value: Any) -> Any:
        """A list, tuple or mapping written in the template: bounded when built, so nothing later (==, tojson,
        string, a loop) can meet a value bigger than the bound."""
        spend(1)
        return _check_result(value)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return super().is_safe_attribute(obj, attr, value) and not isinstance(value, (type, types.ModuleType))

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`obj.attribute` as Jinja's sandbox reads it; on one of the `records` (the story's own names, read a
        dozen times a shot) a public attribute that gives text or a list is let through without the general
        checks, which let exactly these through (a record is neither Python internals nor a mutable container)."""
        if type(obj) not in self.records or attribute.startswith("_"):
            return super().getattr(obj, attribute)
        try:
            value = self.read_record(obj, attribute)
        except AttributeError:  # Jinja's own way on: the item of that name, else undefined
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                return self.undefined(obj=obj, name=attribute)
        if type(value) is str or type(value) is list or isinstance(value, str):
            return value
        fmt = self.wrap_str_format(value)
        if fmt is not None:
            return fmt
        if self.is_safe_attribute(obj, attribute, value):
            return value
        return self.unsafe_undefined(obj, attribute)

    def read_record(self, obj: Any, attribute: str) -> Any:
        """`getattr(obj, attribute)` on one of the `records` for a public name; a subclass may read its own
        records more directly, giving what getattr gives (and raising AttributeError where it does)."""
        return getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        if modifies_known_mutable(obj, attribute):
            hint = f"'{attribute}' refused: templates cannot change the story's data"
        else:
            hint = (f"'{attribute}' refused: templates cannot reach Python internals; use the story's names "
                    f"({', '.join(self.names)})")
        return self.undefined(hint, obj=obj, name=attribute, exc=SecurityError)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        spend(1)
        if getattr(__obj, "__func__", None) in _OWN and not kwargs:
            # the bounds _bound wrapped around the template (a few a render): safe, and taking nothing Jinja
            # would inject, so called as Jinja's call would call them
            return __obj(*args)
        if __obj is _range or getattr(__obj, "__func__", None) in _OWN:
            return super().call(__context, __obj, *args, **kwargs)
        target = getattr(__obj, "__wrapped__", __obj)  # str.format is wrapped by the sandbox
        subject = getattr(target, "__self__", None)
        name = getattr(target, "__name__", "")
        spend(_size(subject) + sum(_size(a) for a in args))
        if name not in ("format", "format_map") or _NESTED_FIELD.search(str(subject)):  # numbers are widths
            for value in (*args, *kwargs.values()):
                _check_number(value)
        _refuse_objects([*args, *(v for k, v in kwargs.items() if k != "caller")])
        _check_expansion(name, subject, args, method=True)
        return _check_result(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        spend(1 + _size(left) + _size(right))
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


_MARK = "\x00"  # around a plain-text marker in a template shape; a source holding it is compiled as it is
_MARKED = re.compile(f"{_MARK}(\\d+){_MARK}")


# `{{ name }}` or `{{ name.field }}` on one line: most story texts hold nothing else
_SIMPLE_NAME = re.compile(r"\{\{[ \t]*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)[ \t]*\}\}", re.ASCII)
# names Jinja's parser reads as constants, not variables: `true.real` would be folded while compiling
_CONSTANT_NAMES = frozenset({"true", "false", "none", "True", "False", "None"})


def _simple_shape(source: str) -> tuple[tuple[Any, ...], list[str]] | None:
    """The shape and holes of a template made only of plain text and `{{ dotted.names }}`, read without Jinja's
    lexer (a third of compiling a template whose shape is known); None for anything else.

    The holes are the plain texts and the attribute names, in order: "{{ characters.hero }} walks past
    {{ locations.market }}" and "{{ characters.dog }} waits by {{ locations.gate }}" are one shape, so a film's
    prompts compile once whatever names they use. For such a text the lexer gives one data token per run of
    plain text, unchanged: no block or comment tags (the only ones whitespace control touches), no carriage
    returns (which it rewrites), no trailing newline (which it drops), and no `{` before a `{{` (which would
    start the tag one character earlier)."""
    if "{%" in source or "{#" in source or "\r" in source or source.endswith("\n"):
        return None
    parts = _SIMPLE_NAME.split(source)
    key: list[Any] = ["simple"]
    texts: list[str] = []
    line = 1
    for index, part in enumerate(parts):
        if index % 2:
            top, *attributes = part.split(".")
            if top in _CONSTANT_NAMES:
                return None
            key.append((line, top, len(attributes)))
            texts += attributes
            continue
        if "{{" in part or (part.endswith("{") and index < len(parts) - 1):
            return None
        key.append(bool(part))
        if part:
            texts.append(part)
            line += part.count("\n")
    return tuple(key), texts


class _Shape:
    """A compiled template shape: its code, and where in its constants (and its nested functions') the
    plain-text markers sit, found once so that filling in a template's texts touches only those.

    Where the markers are all in the render function (no blocks), the shape is also made into a template once,
    and each text's template is a copy of it with its own render function: its code with the texts set in, in
    the shape's module, whose names, line table and file name every text of the shape shares. That skips running
    the module's code (its imports) and building a template for every text."""

    def __init__(self, env: Sandbox, code: CodeType):
        self.code = code
        self.holes = _holes(code.co_consts) or {}
        roots = [index for index, value in enumerate(code.co_consts)
                 if isinstance(value, CodeType) and value.co_name == "root"]
        self.base: Any = None
        if len(roots) == 1 and set(self.holes) <= set(roots):
            self.base = env.template_class.from_code(env, code, dict(env._globals), None)
            self.root_holes = self.holes.get(roots[0], {})

    def filled(self, texts: list[str]) -> CodeType:
        """The code with the plain texts set in where the markers were."""
        return self.code.replace(co_consts=_fill(self.code.co_consts, self.holes, texts))

    def template(self, env: Sandbox, texts: list[str]) -> Any:
        """The template of the text whose plain texts are `texts`: what compiling the text itself gives."""
        if self.base is None:
            return env.template_class.from_code(env, self.filled(texts), dict(env._globals), None)
        root = self.base.root_render_func
        code = root.__code__.replace(co_consts=_fill(root.__code__.co_consts, self.root_holes, texts))
        made = object.__new__(type(self.base))
        made.__dict__.update(self.base.__dict__)
        made.root_render_func = types.FunctionType(code, root.__globals__, root.__name__, root.__defaults__,
                                                   root.__closure__)
        return made


def _holes(consts: tuple[Any, ...]) -> dict[int, Any] | None:
    """Per constant that holds markers: for text, its pieces (text and text numbers, alternating), or only the
    text number where the constant is one marker; for code or a tuple, the same for its constants or items. None
    where nothing holds a marker."""
    holes: dict[int, Any] = {}
    for index, value in enumerate(consts):
        if isinstance(value, str) and _MARK in value:
            pieces: list[Any] = _MARKED.split(value)
            pieces[1::2] = [int(number) for number in pieces[1::2]]
            # a constant that is one marker and nothing else (most are) is just that text: no join to fill it
            holes[index] = pieces[1] if len(pieces) == 3 and pieces[0] == pieces[2] == "" else pieces
        elif isinstance(value, CodeType):
            inner = _holes(value.co_consts)
            if inner:
                holes[index] = inner
        elif isinstance(value, (tuple, frozenset)):
            inner = _holes(tuple(value))
            if inner:
                holes[index] = inner
    return holes or None


def _fill(consts: tuple[Any, ...], holes: dict[int, Any], texts: list[str]) -> tuple[Any, ...]:
    filled = list(consts)
    for index, hole in holes.items():
        if type(hole) is int:
            filled[index] = texts[hole]
            continue
        value = consts[index]
        if isinstance(hole, list):
            filled[index] = "".join([texts[piece] if n % 2 else piece for n, piece in enumerate(hole)])
        elif isinstance(value, CodeType):
            filled[index] = value.replace(co_consts=_fill(value.co_consts, hole, texts))
        else:
            filled[index] = type(value)(_fill(tuple(value), hole, texts))
    return tuple(filled)


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that counts its work, refuses huge numbers and Python objects, and checks its result size."""

    passes_first = getattr(function, "jinja_pass_arg", None) is not None  # context or environment comes first
    expands = name in _EXPANDING

    def bounded(*args: Any, **kwargs: Any) -> Any:
        values = args[1:] if passes_first else args
        spend(1 + sum(map(_size, values)))
        for value in (*values[1:], *kwargs.values()):  # arguments are widths and counts; the value is data
            _check_number(value)
        _refuse_objects([*values, *kwargs.values()])
        if values and expands:
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
    bounded: nodes.Template = _Literals().visit(tree)
    return bounded


class _Literals(NodeTransformer):
    """Every list, tuple and dict literal the template builds goes through `sf_value` (its size is checked)."""

    def _wrap(self, expr: nodes.Expr) -> nodes.Node:
        node: nodes.Node = self.generic_visit(expr)
        if getattr(node, "ctx", "load") != "load":
            return node  # a target: `{% for a, b in ... %}`, `{% set a, b = ... %}`
        return nodes.Call(nodes.EnvironmentAttribute("sf_value"), [node], [], None, None, lineno=node.lineno)

    visit_List = visit_Tuple = visit_Dict = _wrap  # noqa: N815 (NodeTransformer's naming)


_OWN = (Sandbox.sf_iterate, Sandbox.sf_concat, Sandbox.sf_value)
