"""Importing a script in the current folder, for the tests of storyforge/screenplay/: the story it gives (which must
validate) or the one message it is refused with (before anything is written)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import within

from storyforge import api
from storyforge.errors import StoryforgeError


def story_of(tmp_path: Path, text: str | bytes, name: str = "s.fountain") -> dict:
    """Import `text` as the script `name`; the story's data (it must validate and plan)."""
    Path(name).write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    report = api.import_script(name, "film.yaml")
    assert report.problems == []
    api.check("film.yaml")
    return yaml.safe_load(Path("film.yaml").read_text("utf-8"))


def refused(tmp_path: Path, text: str | bytes, name: str = "s.fountain") -> str:
    """Import `text`, which must be refused before anything is written; the message."""
    Path(name).write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    with within(20), pytest.raises(StoryforgeError) as caught:
        api.import_script(name, "film.yaml")
    assert not Path("film.yaml").exists() and not Path("film.import.json").exists()
    return str(caught.value)
