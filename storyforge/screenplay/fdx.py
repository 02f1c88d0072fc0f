"""Final Draft (.fdx) read into a Script with defusedxml: no DTD, no entities, no external references, bounded depth."""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET  # noqa: S405 - only the TreeBuilder and Element types; parsing is defusedxml's
from typing import Any

from storyforge.errors import MissingExtra
from storyforge.screenplay.fountain import is_transition
from storyforge.screenplay.script import (
    MAX_ELEMENTS,
    Deadline,
    Element,
    Script,
    check_text,
    refuse_nul,
    script_error,
)

MAX_XML_ELEMENTS = 2 * MAX_ELEMENTS  # Big Fish has 4,200 (Paragraph, Text, ...)
MAX_DEPTH = 32  # Final Draft nests 6 levels (FinalDraft > Content > Paragraph > DualDialogue > Paragraph > Text)
_EXTENSION = re.compile(r"\(([^()]*)\)")
_CONTINUED = re.compile(r"^(?:CONT['’]?D|CONT\.?|CONTINUED|MORE)$", re.IGNORECASE)
# Final Draft's paragraph types -> script elements; others (Cast List, General, Shot, ...) are action
# the XML declaration's encoding, read from the first bytes (ASCII in every encoding a declaration may be in but
# UTF-16, which is recognised by its BOM or its first two characters)
_DECLARED = re.compile(rb"^<\?xml[^>]{0,200}?encoding\s*=\s*[\"']([A-Za-z][A-Za-z0-9._-]{0,40})[\"']")
_UTF16 = ((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"), (b"<\x00?\x00", "utf-16-le"),
          (b"\x00<\x00?", "utf-16-be"))
_NOT_FILE_ENCODINGS = {"idna", "punycode", "utf-7"}  # real codecs, but for names and mail, not files
_KINDS = {"Scene Heading": "heading", "Action": "action", "Character": "cue", "Parenthetical": "parenthetical",
          "Dialogue": "dialogue", "Transition": "transition", "Lyrics": "lyric", "New Act": "section",
          "End of Act": "page_break", "Outline": "section", "Outline Body": "synopsis"}


class _Builder(ET.TreeBuilder):
    """Builds the tree, stamping each element with its line and refusing depth, size and time beyond bounds."""

    def __init__(self, file: str, deadline: Deadline):
        super().__init__()
        self.file, self.deadline = file, deadline
        self.expat: Any = None
        self.depth = self.count = 0

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:  # type: ignore[override]
        # names without their namespace: a tool that writes xmlns="..." still writes Final Draft's elements
        tag = _local(tag)
        attrs = {_local(name): value for name, value in attrs.items()}
        line = self.expat.CurrentLineNumber if self.expat is not None else 0
        self.depth += 1
        self.count += 1
        if self.depth > MAX_DEPTH:
            raise script_error(self.file, line, f"the XML nests more than {MAX_DEPTH} levels deep; a Final Draft "
                               "file nests about 6: is this a script?")
        if self.count > MAX_XML_ELEMENTS:
            raise script_error(self.file, line, f"the XML has more than {MAX_XML_ELEMENTS:,} elements; a feature "
                               "has a few thousand paragraphs: split it")
        self.deadline.check(line)
        element = super().start(tag, attrs)
        element.set("\0line", str(line))
        return element

    def end(self, tag: str) -> ET.Element:
        self.depth -= 1
        return super().end(_local(tag))


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _decoded(data: bytes, file: str) -> str:
    """The file's text, decoded as its BOM or XML declaration says (UTF-8 when neither does)."""
    encoding = next((name for mark, name in _UTF16 if data.startswith(mark)), None)
    declared = None
    if encoding is None:
        declared = _DECLARED.match(data.removeprefix(codecs.BOM_UTF8).lstrip())
        encoding = declared.group(1).decode("ascii") if declared else "utf-8-sig"
    try:
        codec = codecs.lookup(encoding).name
        if codec in _NOT_FILE_ENCODINGS or codec.endswith("escape"):
            raise LookupError(codec)
        text = data.decode("utf-8-sig" if codec == "utf-8" else codec)
    except LookupError:  # unknown, or not one a file is written in (rot13, base64, unicode_escape, ...)
        raise script_error(file, 1, f"the XML declares the encoding '{encoding}', which a script cannot be read "
                           "in; re-export the script as UTF-8") from None
    except UnicodeDecodeError as error:
        line = data[: error.start].decode(codec, errors="replace").count("\n") + 1
        named = codec.upper().removesuffix("-SIG")
        said = f"{encoding} text as its XML declaration says" if declared else f"{named} text"
        raise script_error(file, line, f"the file is not {said} (byte 0x{data[error.start]:02x}); re-export the "
                           "script from Final Draft") from None
    refuse_nul(text, file)
    return text.removeprefix("\ufeff")


def parse(data: bytes, file: str) -> Script:
    """A Final Draft file's title page and elements; StoryError (at the file's line) for what cannot be read."""
    try:
        from defusedxml import DefusedXmlException
        from defusedxml.ElementTree import DefusedXMLParser
    except ImportError:
        raise MissingExtra("defusedxml", "screenplay", "Importing Final Draft (.fdx) scripts") from None
    deadline = Deadline(file)
    builder = _Builder(file, deadline)
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    builder.expat = parser.parser
    text = _decoded(data, file)
    try:
        parser.feed(text)  # text, not bytes: expat then ignores the declared encoding, which was applied above
        root = parser.close()
    except DefusedXmlException as refused:
        line = builder.expat.CurrentLineNumber if builder.expat is not None else 0
        raise script_error(file, line, f"the XML declares {type(refused).__name__.removesuffix('Forbidden')} "
                           "(a DTD, entity or external reference), which a Final Draft file never needs; "
                           "refused") from None
    except ET.ParseError as error:
        line = error.position[0] if getattr(error, "position", None) else 0
        reason = str(error).split(":")[0]
        raise script_error(file, line, f"not well-formed XML ({reason}); re-export the script from Final Draft"
                           ) from None
    if root.tag != "FinalDraft":
        raise script_error(file, _line(root), f"the XML's root is <{root.tag}>, not <FinalDraft>; is this a "
                           "Final Draft file?")
    elements: list[Element] = []
    content = root.find("Content")
    if content is not None:
        for paragraph, dual in _paragraphs(content):
            element = _element(paragraph, dual, file)
            if element is not None:
                elements.append(element)
    return Script(file=file, format="fdx", title_page=_title_page(root, file), elements=tuple(elements))


def _paragraphs(content: ET.Element) -> list[tuple[ET.Element, bool]]:
    """Every paragraph in order, those inside <DualDialogue> marked (the second cue there is the dual one)."""
    found: list[tuple[ET.Element, bool]] = []
    for paragraph in content.findall("Paragraph"):
        dual = paragraph.find("DualDialogue")
        if dual is None:
            found.append((paragraph, False))
            continue
        cues = 0
        for inner in dual.findall("Paragraph"):
            cues += inner.get("Type") == "Character"
            found.append((inner, cues > 1 and inner.get("Type") == "Character"))
    return found


def _text(paragraph: ET.Element) -> str:
    return "".join("".join(text.itertext()) for text in paragraph.findall("Text"))


def _line(element: ET.Element) -> int:
    return int(element.get("\0line", "0"))


def _element(paragraph: ET.Element, dual: bool, file: str) -> Element | None:
    line = _line(paragraph)
    text = _text(paragraph)
    check_text(text.replace("\n", " "), file, line)
    text = " ".join(text.split()) if paragraph.get("Type") != "Action" else "\n".join(
        " ".join(part.split()) for part in text.splitlines() if part.strip())
    if not text:
        return None
    kind = _KINDS.get(paragraph.get("Type", ""), "action")
    if kind == "action" and is_transition(text):  # FADE IN: typed as action: what it says, not how it was typed
        kind = "transition"
    if kind == "heading":
        return Element("heading", text, line, number=paragraph.get("Number") or None)
    if kind == "cue":
        extensions = [part.strip() for part in _EXTENSION.findall(text)]
        name = " ".join(_EXTENSION.sub(" ", text).split())
        return Element("cue", name, line, dual=dual,
                       extension=", ".join(e for e in extensions if e and not _CONTINUED.match(e)))
    if kind == "section":
        return Element("section", text, line, level=1)
    if kind == "page_break":
        return Element("page_break", "", line)
    return Element(kind, text, line)


def _title_page(root: ET.Element, file: str) -> dict[str, str]:
    """Title (the first line of the title page) and author (the line after 'by' / 'written by'), when there."""
    lines = []
    for paragraph in root.findall("./TitlePage/Content/Paragraph"):
        text = _text(paragraph)
        check_text(text.replace("\n", " "), file, _line(paragraph))
        lines.append(" ".join(text.split()))
    lines = [line for line in lines if line]
    page: dict[str, str] = {}
    if lines:
        page["title"] = lines[0]
    for before, after in zip(lines, lines[1:], strict=False):
        if re.fullmatch(r"(?:(?:written|screenplay|story)\s+)?by", before, re.IGNORECASE):
            page["author"] = after
            break
    return page
