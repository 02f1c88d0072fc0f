"""Fountain (fountain.io, syntax 1.1) read into a Script: every element at its line, in time linear in the text.

Rules as the specification gives them, with two leniencies real scripts need: a scene heading needs a blank line
before it but not after it (the next lines are action), and FADE IN:, FADE OUT. and the like are transitions
although they do not end in TO:. Notes [[...]] and the boneyard /* ... */ are removed first (a note with an empty
line inside is not a note, as the specification says); what stood around them joins on the opening line.
"""

from __future__ import annotations

import re

from storyforge.screenplay.script import (
    MAX_ELEMENTS,
    Deadline,
    Element,
    Script,
    check_text,
    plain,
    script_error,
)

_HEADING = re.compile(r"^(?:INT\.?/EXT|EXT\.?/INT|INT|EXT|EST|I/E|E/I)(?:\.|\s)", re.IGNORECASE)
_SCENE_NUMBER = re.compile(r"#([A-Za-z0-9.-]+)#$")  # on the stripped line: a leading \s* would be quadratic
_TRANSITION = re.compile(r"^[^a-z]*TO:$")
_FADES = re.compile(r"^(?:FADE (?:IN|OUT)|FADE TO BLACK|CUT TO BLACK|SMASH TO BLACK|FADE TO WHITE)[.:]?$")


def is_transition(text: str) -> bool:
    """Upper case and ending in TO:, or one of the fades (FADE IN:, FADE OUT., ...): a transition when it stands
    alone."""
    return bool(_TRANSITION.match(text) or _FADES.match(text))
_TITLE_KEY = re.compile(r"^([A-Za-z][A-Za-z ]{0,30}):(.*)$")
# a title page starts with one of the keys the specification lists (then any key may follow)
_TITLE_FIRST = {"title", "credit", "author", "authors", "source", "draft date", "date", "contact", "copyright",
                "notes", "revision", "format"}
_MARK = re.compile(r"/\*|\[\[")
_EXTENSION = re.compile(r"\(([^()]*)\)")
_CONTINUED = re.compile(r"^(?:CONT['’]?D|CONT\.?|CONTINUED|MORE)$", re.IGNORECASE)


def parse(text: str, file: str) -> Script:
    """A Fountain script's title page and elements; StoryError (at the script's line) for what cannot be read."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    check_text(text, file)
    deadline = Deadline(file)
    lines = _without_comments(text, file, deadline)
    title_page, start = _title_page(lines)
    return Script(file=file, format="fountain", title_page=title_page,
                  elements=tuple(_Reader(lines, start, file, deadline).read()))


def _without_comments(text: str, file: str, deadline: Deadline) -> list[tuple[int, str]]:
    """(line, text) of every line with notes and the boneyard taken out; each output line keeps the number of the
    line it starts on. One pass: each search starts where the last one ended, and the ends of notes are cached."""
    pieces: list[tuple[int, str]] = []  # (offset in text, text kept)
    pos = 0
    note_end = blank = -2  # the next ']]' and the next empty line after the last note opening looked at
    while True:
        found = _MARK.search(text, pos)
        if found is None:
            pieces.append((pos, text[pos:]))
            break
        start = found.start()
        deadline.check(0)  # the line is not counted here: that would make the pass quadratic
        if found.group() == "/*":
            end = text.find("*/", found.end())
            if end == -1:
                raise script_error(file, text.count("\n", 0, start) + 1,
                                   "the boneyard /* that opens here is never closed; add */ where it ends")
            pieces.append((pos, text[pos:start]))
            pos = end + 2
            continue
        if note_end != -1 and note_end < found.end():
            note_end = text.find("]]", found.end())
        if blank != -1 and blank < start:
            blank = text.find("\n\n", start)
        if note_end != -1 and (blank == -1 or blank > note_end):
            pieces.append((pos, text[pos:start]))
            pos = note_end + 2
            continue
        # no end, or an empty line first: not a note, the brackets are text; and no '[[' before that empty line
        # (or anywhere, when no ']]' is left) can open one, so only a boneyard is looked for up to there
        limit = len(text) if note_end == -1 else blank
        boneyard = text.find("/*", found.end(), limit)
        until = limit if boneyard == -1 else boneyard
        pieces.append((pos, text[pos:until]))
        pos = until
    lines: list[tuple[int, str]] = []
    current: list[str] = []
    current_line = 0
    line_at, last = 1, 0
    for offset, kept in pieces:
        line_at += text.count("\n", last, offset)
        last = offset
        for k, part in enumerate(kept.split("\n")):
            if k:
                lines.append((current_line, "".join(current)))
                current, current_line = [], 0
            if not current_line:
                current_line = line_at + k
            current.append(part)
    lines.append((current_line or line_at, "".join(current)))
    return lines


def _title_page(lines: list[tuple[int, str]]) -> tuple[dict[str, str], int]:
    """The title page's keys (lower-case) and values, and the index of the first line after it."""
    first = _TITLE_KEY.match(lines[0][1]) if lines else None
    if first is None or first.group(1).strip().lower() not in _TITLE_FIRST:
        return {}, 0
    page: dict[str, list[str]] = {}
    key = None
    index = 0
    for index, (_, raw) in enumerate(lines):  # noqa: B007 - the index after the loop is the page's end
        if not raw.strip():
            break
        match = _TITLE_KEY.match(raw)
        if match and not raw[:1].isspace():
            key = match.group(1).strip().lower()
            page[key] = [match.group(2).strip()] if match.group(2).strip() else []
        elif key is not None:
            page[key].append(raw.strip())
        else:
            return {}, 0
    else:
        index = len(lines)
    return {key: plain(" ".join(value)).strip() for key, value in page.items()}, index


class _Reader:
    """Classifies the lines, paragraph by paragraph."""

    def __init__(self, lines: list[tuple[int, str]], start: int, file: str, deadline: Deadline):
        self.lines, self.index, self.file, self.deadline = lines, start, file, deadline
        self.out: list[Element] = []

    def add(self, element: Element) -> None:
        self.out.append(element)
        if len(self.out) > MAX_ELEMENTS:
            raise script_error(self.file, element.line, f"the script has more than {MAX_ELEMENTS:,} elements; a "
                               "feature has a few thousand: split it")

    def blank(self, index: int) -> bool:
        return index < 0 or index >= len(self.lines) or not self.lines[index][1].strip()

    def read(self) -> list[Element]:
        while self.index < len(self.lines):
            line, raw = self.lines[self.index]
            text = raw.strip()
            if not text:
                self.index += 1
                continue
            self.deadline.check(line)
            before, after = self.blank(self.index - 1), self.blank(self.index + 1)
            if text.startswith("!"):  # forced action, whatever it looks like (a cue, a heading, a transition)
                self._action()
                continue
            if not self._single(line, text, before, after):
                if before and not after and _is_cue(text):
                    self._dialogue(line, text)
                    continue
                self._action()
                continue
            self.index += 1
        return self.out

    def _single(self, line: int, text: str, before: bool, after: bool) -> bool:
        """A one-line element (added, True), or False."""
        if len(text) >= 3 and set(text) == {"="}:
            self.add(Element("page_break", "", line))
        elif text.startswith("#"):
            level = len(text) - len(text.lstrip("#"))
            self.add(Element("section", plain(text[level:]).strip(), line, level=level))
        elif text.startswith("="):
            self.add(Element("synopsis", plain(text[1:]).strip(), line))
        elif text.startswith(">") and text.endswith("<") and len(text) > 1:
            self.add(Element("centered", plain(text[1:-1]).strip(), line))
        elif text.startswith("~"):
            self.add(Element("lyric", plain(text[1:]).strip(), line, forced=True))
        elif before and text.startswith(".") and len(text) > 1 and text[1] != ".":
            self._heading(line, text[1:], forced=True)
        elif before and _HEADING.match(text):
            self._heading(line, text, forced=False)
        elif text.startswith(">"):
            self.add(Element("transition", plain(text[1:]).strip(), line, forced=True))
        elif before and after and is_transition(text):
            self.add(Element("transition", plain(text), line))
        else:
            return False
        return True

    def _heading(self, line: int, text: str, *, forced: bool) -> None:
        text = text.rstrip()
        number = _SCENE_NUMBER.search(text)
        if number:
            text = text[: number.start()]
        self.add(Element("heading", plain(text).strip(), line, forced=forced,
                         number=number.group(1) if number else None))

    def _dialogue(self, line: int, text: str) -> None:
        forced = text.startswith("@")
        name = text[1:] if forced else text
        dual = name.rstrip().endswith("^")
        name = name.rstrip().removesuffix("^")
        extensions = [part.strip() for part in _EXTENSION.findall(name)]
        name = _EXTENSION.sub(" ", name)
        self.add(Element("cue", " ".join(plain(name).split()), line, forced=forced, dual=dual,
                         extension=", ".join(e for e in extensions if e and not _CONTINUED.match(e))))
        self.index += 1
        while self.index < len(self.lines):
            number, raw = self.lines[self.index]
            spoken = raw.strip()
            if not spoken:
                if len(raw) >= 2:  # two spaces: an empty line inside the speech
                    self.index += 1
                    continue
                break
            self.deadline.check(number)
            if spoken.startswith("(") and spoken.endswith(")"):
                self.add(Element("parenthetical", plain(spoken).strip(), number))
            elif spoken.startswith("~"):
                self.add(Element("lyric", plain(spoken[1:]).strip(), number, forced=True))
            else:
                self.add(Element("dialogue", plain(spoken).strip(), number))
            self.index += 1

    def _action(self) -> None:
        """An action paragraph: lines up to an empty line or a line that stands alone (section, synopsis, ...)."""
        first, parts = self.lines[self.index][0], []
        forced = self.lines[self.index][1].strip().startswith("!")
        while self.index < len(self.lines):
            number, raw = self.lines[self.index]
            text = raw.strip()
            if not text or (parts and (_line_element(text))):
                break
            self.deadline.check(number)
            parts.append(plain(text[1:] if text.startswith("!") else text).strip())
            self.index += 1
        text = "\n".join(part for part in parts if part)
        if text:  # a paragraph of emphasis marks alone says nothing
            self.add(Element("action", text, first, forced=forced))


def _line_element(text: str) -> bool:
    """Lines that are an element of their own wherever they stand."""
    return (text.startswith(("#", "=", "~")) or (text.startswith(">") and text.endswith("<")))


def _is_cue(text: str) -> bool:
    """A character cue: forced with @, or upper case (extensions aside) with at least one letter."""
    name = _EXTENSION.sub("", text.removeprefix("@")).rstrip().removesuffix("^")
    if text.startswith("@"):  # forced: any name, but a name (not only extensions, a caret or punctuation)
        return any(c.isalnum() for c in name)
    return any(c.isalpha() for c in name) and name == name.upper() and not name.rstrip().endswith(":")
