"""A screenplay as a list of elements with their lines, whatever format it was written in; reading one, bounded."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from storyforge.errors import Problem, StoryError, display_path
from storyforge.story.root import PathRefused, read_bytes

# A 120-page feature is about 150 KB of Fountain (Big Fish: 146 KB) and 350 KB of Final Draft XML; the bounds
# leave room for the longest scripts and keep reading a hostile file under a second.
MAX_SCRIPT_BYTES = {"fountain": 1_000_000, "fdx": 2_000_000}
MAX_LINE_CHARS = 20_000  # a paragraph on one line runs to 2,000; longer is not a screenplay
MAX_ELEMENTS = 20_000  # Big Fish has about 2,800
TIME_LIMIT_S = 1.0  # reading is linear (Big Fish: 0.1 s): a script that takes longer is hostile, not long
# Controls a text file never holds: C0 except tab, newline, carriage return and form feed (a page break in
# old exports); DEL; C1.
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")

# what Final Draft's XML opens with, in its first bytes without NULs (UTF-16 has one in every character)
_XML = re.compile(rb"^(?:\xef\xbb\xbf|\xff\xfe|\xfe\xff)?\s*<")
_FINAL_DRAFT = re.compile(rb"^(?:\xef\xbb\xbf|\xff\xfe|\xfe\xff)?\s*<(?:\?xml|FinalDraft)")
KINDS = ("heading", "action", "cue", "parenthetical", "dialogue", "lyric", "transition", "section", "synopsis",
         "centered", "page_break")


@dataclass(frozen=True)
class Element:
    """One element of a screenplay at its line: a scene heading, an action paragraph, a character cue, ..."""

    kind: str  # one of KINDS
    text: str  # markup removed: no emphasis marks, notes, boneyard, forcing characters or cue extensions
    line: int  # 1-based line of the script where it starts
    forced: bool = False  # written with a forcing character (. ! @ > ~)
    number: str | None = None  # a heading's scene number (#12#)
    extension: str = ""  # a cue's extensions without parentheses and CONT'D, e.g. "V.O."
    dual: bool = False  # a cue marked ^ (dual dialogue)
    level: int = 0  # a section's depth (# = 1)


@dataclass(frozen=True)
class Script:
    """A parsed screenplay: its title page and its elements in order."""

    file: str  # the script as shown in messages
    format: str  # fountain | fdx
    title_page: dict[str, str] = field(default_factory=dict)  # keys lower-case: title, author, credit, ...
    elements: tuple[Element, ...] = ()
    sha256: str = ""  # of the bytes read (the import record keeps it)


class Deadline:
    """Reading a script stops with an error once it has taken TIME_LIMIT_S (checked every few hundred steps)."""

    def __init__(self, file: str, seconds: float = TIME_LIMIT_S):
        self.file, self.seconds = file, seconds
        self.end = time.monotonic() + seconds
        self.steps = 0

    def check(self, line: int) -> None:
        self.steps += 1
        if self.steps % 256 == 0 and time.monotonic() > self.end:
            raise script_error(self.file, line, f"reading the script took longer than {self.seconds:g}s and "
                               "was stopped; a screenplay reads in well under a second: is this a script?")


def script_error(file: str, line: int, message: str) -> StoryError:
    return StoryError([Problem(file, line, "", message)])


def read_script(path: Path, kind: str | None) -> tuple[bytes, str, str]:
    """The script's bytes, its name for messages and its format (`kind` from the suffix, else what the bytes
    look like); refuses a missing, special, huge or binary file. The file is opened once, as a regular file: a
    FIFO named `script` must not be opened to peek at it (that waits for a writer forever)."""
    shown = readable(display_path(path))
    if path.is_dir():
        raise script_error(shown, 0, "this is a folder; name a .fountain or .fdx script")
    try:
        data = read_bytes(path, max(MAX_SCRIPT_BYTES.values()), shown="the script")
    except PathRefused as refused:
        message = str(refused)
        if message.startswith("no such file"):  # read_bytes names the file inside its message
            message = "no such file; check the path"
        elif "larger than" in message and kind is not None:  # the bound of the format it claims to be
            message = f"the script is larger than {MAX_SCRIPT_BYTES[kind] // 1_000_000} MB"
        raise script_error(shown, 0, _larger(message)) from None
    head = data[:400].replace(b"\x00", b"")
    if kind is None or (kind == "fountain" and _FINAL_DRAFT.match(head)):  # Final Draft XML whatever its name
        kind = "fdx" if _XML.match(head) else "fountain"
    if len(data) > MAX_SCRIPT_BYTES[kind]:
        raise script_error(shown, 0, _larger(f"the script is larger than {MAX_SCRIPT_BYTES[kind] // 1_000_000} MB"))
    if kind == "fountain":  # Final Draft may be UTF-16, whose text is full of NUL bytes: fdx checks once decoded
        refuse_nul(data.decode("latin-1"), shown)
    return data, shown, kind


def _larger(message: str) -> str:
    if "larger than" in message:
        message += "; a feature-length screenplay is a few hundred KB: split it or check the file"
    return message


def refuse_nul(text: str, file: str) -> None:
    """A NUL in a script's text means the file is binary (an image, a word processor's file), not a screenplay."""
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise script_error(file, line, "the file holds binary data (a NUL byte), not a screenplay; export the "
                           "script as Fountain (.fountain) or Final Draft (.fdx)")


def readable(text: str) -> str:
    """`text` with the bytes of a file name that is not UTF-8 (kept by Python as lone surrogates, which no file
    or terminal can take) shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def check_text(text: str, file: str, first_line: int = 1) -> None:
    """Refuse control characters and overlong lines, naming the first line that has one."""
    found = _CONTROL.search(text)
    if found:
        line = text.count("\n", 0, found.start()) + first_line
        code = ord(found.group())
        raise script_error(file, line, f"control character U+{code:04X} in the script; a screenplay is plain text: "
                           "remove it")
    start = 0
    line = first_line
    while start <= len(text):
        end = text.find("\n", start)
        end = len(text) if end == -1 else end
        if end - start > MAX_LINE_CHARS:
            raise script_error(file, line, f"the line is longer than {MAX_LINE_CHARS:,} characters; a screenplay's "
                               "paragraphs are far shorter: is this a script?")
        start, line = end + 1, line + 1


_EMPHASIS = re.compile(r"\\([*_])|[*_]")


def plain(text: str) -> str:
    """Text without Fountain's emphasis marks (* ** *** _), escaped \\* and \\_ kept as the characters."""
    return _EMPHASIS.sub(lambda match: match.group(1) or "", text)
