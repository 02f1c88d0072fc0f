"""Everything printed is text, never markup (issue 20, item 7): paths, ids and prompts reach the terminal through
storyforge.console, with control, bidi and newline characters shown escaped, in every command."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from storyforge import console

PACKAGE = ROOT / "storyforge"
# A folder name for each way a name could take over the terminal: markup that crashes rich ([/x]), markup that
# becomes a hyperlink, an escape sequence, a newline that fakes a line, a bidi override that reverses the text.
HOSTILE = {
    "closing tag": "[/x]",
    "hyperlink": "[link=https:/evil.example]proj",
    "escape": "a\x1b[31mred\x1b]8;;https://evil.example\x07",
    "newline": "line\n✓ fake",
    "bidi": "bidi\u202egpj.exe",
}
STORY = """\
storyforge: 1
title: "Fox \\u202e[/x] \\e[2J"
render: {resolution: 64x48, fps: 16, base_frames: 17, overlap_frames: 5, takes: 2}
scenes:
  - id: one
    shots:
      - id: a
        prompt: "a red fox [bold]wakes[/bold] \\e]8;;https://evil.example\\a up"
        duration: 9f
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")  # rich's own styles (and links)


@pytest.fixture(autouse=True)
def _fresh_consoles():
    """The consoles these tests make (as a colour terminal) are not left behind for the next test."""
    yield
    for name in ("out", "err"):
        console.__dict__.pop(name, None)


def run(*arguments: str) -> tuple[int, str]:
    """`storyforge ARGUMENTS` in this process (conftest.run_cli), as a terminal that shows colour (FORCE_COLOR, so
    markup would show); its exit code and everything it printed."""
    done = run_cli(*arguments)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_every_command_prints_a_hostile_folder_as_text(kind: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal as far as rich goes: markup, links and styles would show
    monkeypatch.setenv("COLUMNS", "200")
    name = HOSTILE[kind]
    folder = tmp_path / name
    monkeypatch.chdir(tmp_path)
    code, printed = run("init", str(folder))
    assert code == 0, printed
    story = folder / "film.yaml"
    story.write_text(STORY, encoding="utf-8")
    outputs = {"init": printed}
    file = str(story)
    script = str(folder / "script.fountain")
    (folder / "script.fountain").write_text("INT. DEN - NIGHT\n\nA red fox sleeps.\n", encoding="utf-8")
    for command, expected in ((["validate", file], 0), (["plan", file], 0), (["plan", file, "--json"], 0),
                              (["plan", file, "-o", str(folder / "p.json")], 0), (["enhance", file], 0),
                              (["render", file, "--backend", "animatic"], 0), (["pick", file, "one/a", "2"], 0),
                              (["review", file, "--no-open"], 0), (["export", file, "--format", "otio"], 0),
                              (["import", script, "-o", str(folder / "imported.yaml")], 0),
                              (["schema"], 0), (["validate", str(folder / "missing.yaml")], 1),
                              (["pick", file, "one/zz", "1"], 1), (["init", str(folder), "extra\x1b[2J\u202e"], 2)):
        code, printed = run(*command)
        assert code == expected, (command, printed)
        outputs[" ".join(command[:1] + command[2:]) + (" (mistake)" if expected else "")] = printed
    for command, printed in outputs.items():
        plain = ANSI.sub("", printed)  # what is left once rich's own styles are taken out: the text itself
        assert "\x1b" not in plain, (command, printed)
        # (a carriage return is the progress bar's own, which no folder here holds)
        assert not re.search("[\u202a-\u202e\u2066-\u2069\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", plain), (command, printed)
        assert "\x1b]8;" not in printed, (command, printed)  # no hyperlink, from the folder or the prompt
        assert not any(line.startswith("✓ fake") for line in plain.splitlines()), (command, printed)
        if command not in ("plan", "plan --json", "schema") and not command.endswith("(mistake)"):
            assert console.safe(folder.name) in plain, (command, printed)  # the path is there, shown as text
    assert "[/x]" in ANSI.sub("", outputs["validate"])  # the title's markup shown as written, not read
    assert "\\u202e" in ANSI.sub("", outputs["validate"])


def test_json_output_escapes_what_a_terminal_would_act_on(tmp_path: Path, monkeypatch) -> None:
    import json

    folder = tmp_path / HOSTILE["escape"]
    folder.mkdir(parents=True)
    (folder / "film.yaml").write_text(STORY, encoding="utf-8")
    done = run_cli("plan", str(folder / "film.yaml"), "--json")
    code, printed, warned = done.returncode, done.stdout, done.stderr
    assert code == 0, warned
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e]", printed)
    assert json.loads(printed)["title"] == "Fox \u202e[/x] \x1b[2J"  # the exact text, read back


def test_the_console_template_fills_values_as_text(capsys) -> None:
    line = console.text("wrote {} ({:.1f}s) to {}", "[bold]x[/bold]", 1.25, Path("a\nb\x1b"))
    assert line.plain == "wrote [bold]x[/bold] (1.2s) to a\\nb\\x1b"
    assert line.spans == []  # nothing styled: no markup was read
    with pytest.raises(ValueError):
        console.text("{} and {}", "one")
    with pytest.raises(ValueError):
        console.text("{}", "one", "two")
    with pytest.raises(ValueError):
        console.text("{name}", "one")


def test_an_error_message_with_a_newline_in_a_path_stays_one_line(capsys, monkeypatch) -> None:
    from storyforge.errors import StoryforgeError

    monkeypatch.delitem(console.__dict__, "err", raising=False)
    console.show_error(StoryforgeError("cannot read /tmp/a\n✓ done\x1b[2J"))
    console.show_error(StoryforgeError.several(["first", "second \u202e"]))
    assert capsys.readouterr().err.splitlines() == ["error: cannot read /tmp/a\\n✓ done\\x1b[2J", "error: first",
                                                    "error: second \\u202e"]


# -- the choke point: nothing else in the package writes to the terminal ----------------------------------------

PRINTING = {"print", "log", "rule", "echo", "secho"}  # rich Console / click / typer ways to write text
ALLOWED = {("cli.py", "_version", "echo")}  # `storyforge --version`: our own words only


def _calls() -> list[tuple[str, str, ast.Call, set[str]]]:
    """Every call inside a function of the package (but the console), with the names its module imports from
    storyforge.console."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "console.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and node.module == "storyforge.console" for alias in node.names}
        for function in [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for node in ast.walk(function):
                if isinstance(node, ast.Call):
                    found.append((str(path.relative_to(PACKAGE)), function.name, node, imported))
    return found


def test_only_the_console_writes_to_the_terminal() -> None:
    offenders = []
    for path, function, call, _ in _calls():
        target = call.func
        name = target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else ""
        if name in PRINTING and (path, function, name) not in ALLOWED:
            offenders.append(f"{path}:{call.lineno} {function}: {name}()")
        if isinstance(target, ast.Attribute) and target.attr == "write" and isinstance(target.value, ast.Attribute) \
                and target.value.attr in ("stdout", "stderr"):
            offenders.append(f"{path}:{call.lineno} {function}: sys.{target.value.attr}.write()")
    assert offenders == []


def test_console_templates_are_our_words_and_values_come_apart() -> None:
    """done/say/tell/text take a literal template: a value formatted into it (an f-string) would skip `safe`."""
    offenders = []
    for path, function, call, imported in _calls():
        target = call.func
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "console":
            name = target.attr
        else:
            name = target.id if isinstance(target, ast.Name) and target.id in imported else ""
        if name in ("done", "say", "tell", "text") and call.args and not (
                isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
            offenders.append(f"{path}:{call.lineno} {function}: {name}({ast.unparse(call.args[0])[:40]}, ...)")
    assert offenders == []



# -- what a story holds, printed by validate and plan -----------------------------------------------------------------

def test_control_characters_from_a_story_are_printed_escaped(story_dir: Path) -> None:
    (story_dir / "film.yaml").write_text(
        'storyforge: 1\ntitle: "\\e[2J\\e]0;pwned\\a"\nscenes:\n  - id: s\n    shots:\n'
        '      - {id: a, prompt: p, duration: 1s, image: "\\e[31mred\\u202e.png"}\n', encoding="utf-8")
    done = run_cli("validate", "film.yaml", cwd=story_dir)
    assert done.returncode == 1
    assert "\x1b" not in done.stderr and "\u202e" not in done.stderr
    assert done.stderr == ("error: film.yaml:6: s/a: no such file '\\x1b[31mred\\u202e.png' (paths are relative to "
                           "the story file)\n")
    (story_dir / "film.yaml").write_text(
        'storyforge: 1\ntitle: "\\e[2J[bold]x[/bold]\\a"\nscenes:\n  - id: s\n    shots:\n'
        '      - {id: a, prompt: p, duration: 1s}\n', encoding="utf-8")
    done = run_cli("validate", "film.yaml", cwd=story_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "✓ film.yaml — '\\x1b[2J[bold]x[/bold]\\x07', 1 scene, 1 shot\n"


def test_plan_output_escapes_what_json_leaves_raw(story_dir: Path) -> None:
    (story_dir / "film.yaml").write_text(
        'storyforge: 1\ntitle: "T\\x9b\\e[2J"\nscenes:\n  - id: s\n    shots:\n'
        '      - {id: a, prompt: "p\\e]0;x\\a\\u202e\\x7f", duration: 1s}\n', encoding="utf-8")
    done = run_cli("plan", "film.yaml", "--json", cwd=story_dir)
    assert done.returncode == 0, done.stderr
    assert not any(char in done.stdout for char in "\x1b\x9b\u202e\x7f\x07")
    assert json.loads(done.stdout)["title"] == "T\x9b\x1b[2J"  # the same data, escaped the JSON way
    table = run_cli("plan", "film.yaml", cwd=story_dir)
    assert table.returncode == 0 and "\x1b" not in table.stdout and "\x9b" not in table.stdout
    assert table.stdout.startswith("T\\x9b\\x1b[2J — 960x544 @ 24 fps")
