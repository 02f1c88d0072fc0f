"""`storyforge import`: read a script, build its story, merge it into the writer's edits on --update, write both
the story and its import record (FILE.import.json beside it) atomically."""

from __future__ import annotations

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
from storyforge.story.load import MAX_BYTES, MAX_NODES, MAX_SHOTS
from storyforge.story.root import PathRefused, read_bytes

RECORD_VERSION = 1
# the record holds the script's story (at most a story file's size) and the text of each shot again
MAX_RECORD_BYTES = 8 * MAX_BYTES  # written as ASCII: a CJK character takes 6 bytes
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
    """The script at `path`, parsed by its format (from the suffix; a file that opens as XML is Final Draft)."""
    data, shown, kind = read_script(path, FORMATS.get(path.suffix.lower()))
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
    exists = _story_exists(story)
    if exists and not update:
        raise StoryforgeError(f"{display_path(story)} already exists; re-import with --update to keep your edits, "
                              "or write another file with -o")
    if exists and not os.path.lexists(record):
        raise StoryforgeError(f"{display_path(story)} has no import record ({display_path(record)}); --update merges "
                              "only into a story storyforge imported: import into a new file with -o")
    if not exists and os.path.lexists(record):
        _record_in_the_way(record)
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
        data, origins, imported = _merged(story, record, built, report, script_path)
        if not data["scenes"]:
            raise StoryforgeError(f"{display_path(story)}: you deleted every scene the script still has, so the "
                                  "merged story would have none; the story is unchanged: import into a new "
                                  "file with -o")
    header = _header(script, script_path, story)
    text = story_text(data, header)
    _fits(text, data, script)
    write_text(story, text)
    write_text(record, json.dumps({
        "storyforge_import": RECORD_VERSION,
        "script": os.path.relpath(script_path.resolve(), story.resolve().parent),
        "script_sha256": script.sha256,
        "format": script.format,
        "imported": imported,
        "origins": origins,
    }, indent=1) + "\n")  # ASCII: a script's file name need not be UTF-8 (its bytes come back as they were)
    characters = data.get("characters") or {}
    report.placeholders = [key for key in report.placeholders
                           if isinstance(characters.get(key), dict) and characters[key] == imported.get(
                               "characters", {}).get(key)]
    report.scenes = len(data["scenes"])
    report.shots = sum(len(scene.get("shots", [])) for scene in data["scenes"] if isinstance(scene, dict))
    report.characters, report.locations = len(characters), len(data.get("locations") or {})
    report.seconds = time.perf_counter() - started
    return report


def _story_exists(story: Path) -> bool:
    """Whether a story is there to update; a folder, a FIFO or device, or a link to nothing is refused (storyforge
    writes only regular files, and never over what it did not write)."""
    if not os.path.lexists(story):
        return False
    shown = str(Path(display_path(story.parent)) / story.name)  # the name as given, not where a link points
    if story.is_dir():
        raise StoryforgeError(f"{shown} is a folder; name the story file to write, e.g. -o {shown}/film.yaml")
    if not story.exists():
        raise StoryforgeError(f"{shown} is a symbolic link to nothing; remove it, or write another file with -o")
    if not story.is_file():
        raise StoryforgeError(f"{shown} is not a regular file (a FIFO, device or socket); write another file with -o")
    return True


def _read_record(record: Path) -> dict[str, Any]:
    """The import record, whole and of the shape storyforge writes, or a StoryError saying what to do."""
    from pydantic import ValidationError

    from storyforge.story.models import Film

    shown = display_path(record)
    damaged = StoryError([Problem(shown, 0, "", "the import record cannot be read (edited or damaged?); import "
                                  "into a new file with -o and carry your edits over by hand")])
    try:
        raw = read_bytes(record, MAX_RECORD_BYTES, shown="the import record")
    except PathRefused as refused:
        what = str(refused).removesuffix("; name a file")
        raise StoryError([Problem(shown, 0, "", f"{what}; it should be the JSON file storyforge wrote beside the "
                                  "story: import into a new file with -o")]) from None
    try:
        saved = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise damaged from None
    if not isinstance(saved, dict) or saved.get("storyforge_import") != RECORD_VERSION:
        raise damaged
    scenes = saved["imported"].get("scenes") if isinstance(saved.get("imported"), dict) else None
    if isinstance(scenes, list) and len(scenes) + sum(len(scene["shots"]) for scene in scenes if isinstance(
            scene, dict) and isinstance(scene.get("shots"), list)) > 2 * MAX_SHOTS:
        raise damaged  # counted before the model checks each one: a record of 50,000 scenes takes a second
    try:
        Film.model_validate(saved.get("imported"))
    except ValidationError:
        raise damaged from None
    if not (_unique_ids(saved["imported"]) and _origins_shaped(saved.get("origins"))
            and isinstance(saved.get("script"), str) and "\0" not in saved["script"]
            and len(saved["script"]) <= 4096):
        raise damaged
    return saved


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)  # NaN and Infinity: JSON has no such numbers, and storyforge never writes them


def _unique_ids(story: dict[str, Any]) -> bool:
    """Ids unique, and no more shots than a story file may hold (the merge's work grows with them)."""
    scenes = [scene["id"] for scene in story["scenes"]]
    if sum(len(scene["shots"]) for scene in story["scenes"]) > MAX_SHOTS:
        return False
    return len(set(scenes)) == len(scenes) and all(
        len({shot["id"] for shot in scene["shots"]}) == len(scene["shots"]) for scene in story["scenes"])


def _origins_shaped(origins: Any) -> bool:
    """{"scenes": {id: {"heading": str, "line": int}}, "shots": {"scene/shot": {"text": str, "line": int,
    "part": int}}}, as to_story.build makes it."""
    def shaped(table: Any, text: str, numbers: tuple[str, ...]) -> bool:
        return isinstance(table, dict) and all(
            isinstance(entry, dict) and isinstance(entry.get(text), str)
            and all(type(entry.get(number, 0)) is int for number in numbers) for entry in table.values())
    return (isinstance(origins, dict) and shaped(origins.get("scenes"), "heading", ("line",))
            and shaped(origins.get("shots"), "text", ("line", "part")))


def _record_in_the_way(record: Path) -> None:
    """A file where a fresh import writes its record: replaced only if it is one (of a story since deleted)."""
    try:
        raw = read_bytes(record, MAX_RECORD_BYTES, shown="it")
        ours = b'"storyforge_import"' in raw[:200]
    except PathRefused:
        ours = False
    if not ours:
        raise StoryforgeError(f"{display_path(record)} is in the way: the import record goes there, and storyforge "
                              "did not write this file; move it, or write the story elsewhere with -o")


def _fits(text: str, data: dict[str, Any], script: Script) -> None:
    """Refuse a story the loader would refuse (too large, too many values) before it is written."""
    size = len(text.encode("utf-8"))
    if size > MAX_BYTES:
        raise script_error(script.file, 0, f"the story would be {size // 1000:,} KB, more than the "
                           f"{MAX_BYTES // 1000:,} KB a story file may hold; split the script into parts and "
                           "import each")
    values, stack = 0, [data]
    while stack:
        value = stack.pop()
        values += 1
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    if values > MAX_NODES:
        raise script_error(script.file, 0, f"the story would hold {values:,} values, more than the {MAX_NODES:,} "
                           "a story file may hold; split the script into parts and import each")


def _write_backup(story: Path, text: str) -> Path:
    """`text` in a new file under .storyforge/imports/ (two updates in a second keep both), reached through the
    folder door from the story's folder: a `.storyforge` or `imports` that is a link to elsewhere is refused."""
    from storyforge.confined import Folder

    home = Path(os.path.abspath(story)).parent
    base = f"{story.stem}.{time.strftime('%Y%m%d-%H%M%S')}"
    with Folder.open(home / ".storyforge" / "imports", create=True, below=home) as folder:
        name, n = f"{base}.yaml", 1
        while folder.stat(name) is not None:
            n += 1
            name = f"{base}-{n}.yaml"
        folder.write_text(name, text)
    return story.parent / ".storyforge" / "imports" / name


def _merged(story: Path, record: Path, built: Built, report: ImportReport,
            script_path: Path) -> tuple[dict, dict, dict]:
    from storyforge.story.load import load, parse_yaml, read_text

    saved = _read_record(record)
    base, base_origins = saved["imported"], saved["origins"]
    was = saved["script"]
    try:
        same = (story.parent / was).resolve() == script_path.resolve()
    except (OSError, ValueError):  # a path this system cannot resolve is another script
        same = False
    if not same:
        report.warnings.append(f"{display_path(story)}: it was imported from {was}; merging "
                               f"{display_path(script_path)} into it as a new version of that script")
    try:
        load(story)  # the merge reads the story's scenes, shots and names: they must be what a story holds
    except StoryError as error:
        raise StoryError([*error.problems, Problem(display_path(story), 0, "", "--update merges the script into "
                                                   "this story, which does not load (the lines below); fix them and "
                                                   "re-import, or import into a new file with -o")]) from None
    text = read_text(story)
    mine, _ = parse_yaml(text, display_path(story))
    backup = _write_backup(story, text)  # the story as the writer left it: comments they added are not carried over
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
