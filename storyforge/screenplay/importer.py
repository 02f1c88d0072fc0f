"""`storyforge import`: read a script, build its story, merge it into the writer's edits on --update, write both
the story and its import record (FILE.import.json beside it) atomically."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyforge.atomic import write_text
from storyforge.errors import Problem, StoryError, StoryforgeError, display_path
from storyforge.screenplay import fdx, fountain
from storyforge.screenplay.emit import story_text
from storyforge.screenplay.script import Script, read_script, script_error
from storyforge.screenplay.to_story import Built, build
from storyforge.screenplay.update import merge

RECORD_VERSION = 1
FORMATS = {".fountain": "fountain", ".spmd": "fountain", ".txt": "fountain", ".fdx": "fdx"}


@dataclass
class ImportReport:
    """What an import wrote and what the writer should know."""

    story: Path
    record: Path
    script: str
    format: str
    scenes: int
    shots: int
    characters: int
    locations: int
    placeholders: list[str]  # characters whose description the writer must fill in
    warnings: list[str]
    left_out: dict[str, int]
    seconds: float
    updated: bool = False
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    backup: Path | None = None
    llm: str | None = None
    problems: list[Problem] = field(default_factory=list)  # why the written story does not validate or plan


def record_path(story: Path) -> Path:
    """The import record beside a story: film.yaml -> film.import.json."""
    return story.with_name(f"{story.stem}.import.json")


def read(path: Path) -> Script:
    """The script at `path`, parsed by its format (from the suffix; a file that opens with '<' is Final Draft)."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:  # a script without a known suffix: Final Draft when it opens with '<'
        with contextlib.suppress(OSError), path.open("rb") as head:
            kind = "fdx" if head.read(64).lstrip()[:1] == b"<" else None
    data, shown = read_script(path, kind or "fountain")
    digest = hashlib.sha256(data).hexdigest()
    if kind == "fdx":
        return dataclasses.replace(fdx.parse(data, shown), sha256=digest)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise script_error(shown, line, f"the script is not UTF-8 text (byte 0x{data[error.start]:02x}); save it "
                           "as UTF-8") from None
    return dataclasses.replace(fountain.parse(text, shown), sha256=digest)


def import_script(script_path: Path | str, output: Path | str | None = None, *, update: bool = False,
                  llm: str | None = None, on_progress: Any = None) -> ImportReport:
    """Import `script_path` into `output` (default: the script's name with .yaml, beside it)."""
    started = time.perf_counter()
    script_path = Path(script_path)
    story = Path(output) if output is not None else script_path.with_suffix(".yaml")
    record = record_path(story)
    if story.resolve() == script_path.resolve():
        raise StoryforgeError(f"{display_path(story)}: the story would overwrite the script; choose another file "
                              "with -o")
    exists = story.exists()
    if exists and not update:
        raise StoryforgeError(f"{display_path(story)} already exists; re-import with --update to keep your edits, "
                              "or write another file with -o")
    if exists and not record.is_file():
        raise StoryforgeError(f"{display_path(story)} has no import record ({display_path(record)}); --update merges "
                              "only into a story storyforge imported: import into a new file with -o")
    script = read(script_path)
    built = build(script)
    if llm is not None:
        from storyforge.screenplay.breakdown import break_down

        built = break_down(built, script, llm, base=Path.cwd(), on_progress=on_progress)
    report = ImportReport(story=story, record=record, script=script.file, format=script.format, scenes=0, shots=0,
                          characters=0, locations=0, placeholders=list(built.placeholders),
                          warnings=list(built.warnings), left_out=dict(built.left_out), seconds=0.0, llm=llm)
    data, origins, imported = built.data, built.origins, built.data
    if exists:
        data, origins, imported = _merged(story, record, built, report)
    header = _header(script, script_path, story)
    write_text(story, story_text(data, header))
    write_text(record, json.dumps({
        "storyforge_import": RECORD_VERSION,
        "script": os.path.relpath(script_path.resolve(), story.resolve().parent),
        "script_sha256": script.sha256,
        "format": script.format,
        "imported": imported,
        "origins": origins,
    }, indent=1, ensure_ascii=False) + "\n")
    characters = data.get("characters") or {}
    report.placeholders = [key for key in report.placeholders
                           if isinstance(characters.get(key), dict) and characters[key] == imported.get(
                               "characters", {}).get(key)]
    report.scenes = len(data["scenes"])
    report.shots = sum(len(scene.get("shots", [])) for scene in data["scenes"] if isinstance(scene, dict))
    report.characters, report.locations = len(characters), len(data.get("locations") or {})
    report.seconds = time.perf_counter() - started
    return report


def _merged(story: Path, record: Path, built: Built, report: ImportReport) -> tuple[dict, dict, dict]:
    from storyforge.story.load import parse_yaml, read_text

    shown = display_path(record)
    try:
        saved = json.loads(record.read_text("utf-8"))
        base, base_origins = saved["imported"], saved["origins"]
        if saved.get("storyforge_import") != RECORD_VERSION or not isinstance(base, dict):
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        raise StoryError([Problem(shown, 0, "", "the import record cannot be read (edited or damaged?); import "
                                  "into a new file with -o and carry your edits over by hand")]) from None
    text = read_text(story)
    mine, _ = parse_yaml(text, display_path(story))
    backup = story.parent / ".storyforge" / "imports" / f"{story.stem}.{time.strftime('%Y%m%d-%H%M%S')}.yaml"
    write_text(backup, text)  # the story as the writer left it: comments they added are not carried over
    result = merge(base, base_origins, built, mine)
    report.updated, report.backup = True, backup
    report.added, report.removed, report.kept, report.conflicts = (result.added, result.removed, result.kept,
                                                                   result.conflicts)
    return result.data, result.origins, result.imported


def _header(script: Script, script_path: Path, story: Path) -> list[str]:
    author = script.title_page.get("author") or script.title_page.get("authors")
    credit = script.title_page.get("credit") or "by"
    lines = [f"Imported from {os.path.relpath(script_path.resolve(), story.resolve().parent)} by `storyforge "
             "import`; re-import with --update to keep your edits (the record is in "
             f"{record_path(story).name})."]
    if author:
        lines.insert(0, f"{script.title_page.get('title') or ''} {credit} {author}".strip())
    lines.append("Fill in: every character's description (they start with TODO) and, if you like, each location's "
                 "look.")
    return lines
