"""`storyforge import --update` keeps the story as it was under .storyforge/imports/, reached through the folder
door from the story's folder: a `.storyforge` or `imports` that is a link (or a file) is refused before the story
changes, and nothing outside is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_cli
from surroundings import outside, snapshot

SCRIPT = "INT. DEN - NIGHT\n\nA red fox sleeps.\n\nEXT. FIELD - DAY\n\nThe fox runs.\n"
REFUSAL = ("error: refusing to use {path}: it is {what}, and storyforge follows no links and uses only its own regular "
           "files and folders in its output folder, cache and lock; move it away (or choose another folder) and run "
           "again")


def storyforge(*arguments: str) -> tuple[int, str, str]:
    done = run_cli(*arguments)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("where", [".storyforge", ".storyforge/imports", "file"])
def test_a_linked_backup_folder_is_refused_and_the_story_stays(where: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.fountain").write_text(SCRIPT, encoding="utf-8")
    assert storyforge("import", "s.fountain")[0] == 0
    story = (tmp_path / "s.yaml").read_bytes()
    target = outside(tmp_path)
    before = snapshot(target)
    if where == "file":
        (tmp_path / ".storyforge").mkdir()
        (tmp_path / ".storyforge" / "imports").write_text("mine", encoding="utf-8")
        link, what = tmp_path / ".storyforge" / "imports", "a regular file"
    else:
        link, what = tmp_path / where, "a symbolic link"
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(target, target_is_directory=True)
    code, out, err = storyforge("import", "s.fountain", "--update")
    assert (code, out, err.splitlines()) == (1, "", [REFUSAL.format(path=link, what=what)])
    assert snapshot(target) == before and (tmp_path / "s.yaml").read_bytes() == story
    if where == "file":
        assert (tmp_path / ".storyforge" / "imports").read_text(encoding="utf-8") == "mine"
        os.unlink(link)
    else:
        link.unlink()
    code, out, err = storyforge("import", "s.fountain", "--update")
    assert code == 0, err
    (backup,) = (tmp_path / ".storyforge" / "imports").iterdir()
    assert backup.read_bytes() == story and f"the story as it was: .storyforge/imports/{backup.name}" in out


def test_two_updates_in_one_second_keep_both_backups(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("time.strftime", lambda *_: "20260101-000000")
    (tmp_path / "s.fountain").write_text(SCRIPT, encoding="utf-8")
    assert storyforge("import", "s.fountain")[0] == 0
    assert storyforge("import", "s.fountain", "--update")[0] == 0
    assert storyforge("import", "s.fountain", "--update")[0] == 0
    assert sorted(p.name for p in (tmp_path / ".storyforge" / "imports").iterdir()) == [
        "s.20260101-000000-2.yaml", "s.20260101-000000.yaml"]
