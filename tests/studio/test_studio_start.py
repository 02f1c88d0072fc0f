"""Starting the studio: the address line first, a story being written still opens (its problems on the page),
and mistakes on the command line are one clear message."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from running_studio import ROOT, running_studio

from storyforge.errors import StoryforgeError
from storyforge.studio.server import listen

BROKEN = """\
storyforge: 1
title: Half written
scenes:
  - id: s
    shots:
      - id: a
        prompt: a fox
        duration: soon
"""


def test_a_story_being_written_opens_with_its_problems_at_their_line(write_story) -> None:
    story = write_story(BROKEN)
    with running_studio(story) as studio:
        assert studio.stdout[0].startswith("storyforge studio: http://127.0.0.1:")  # the first line: the address
        request = urllib.request.Request(f"{studio.base}/api/film", headers={"Authorization": f"Bearer {studio.token}"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            film = json.loads(answer.read())
        assert film["shots"] == [] and [p["line"] for p in film["problems"]] == [8]
        assert film["problems"][0]["text"] == ("film.yaml:8: s/a.duration: 'soon' is not a duration; write seconds "
                                               "like '4s' or '4.5s', or frames like '97f'")
    assert "warning: the story does not validate yet; the page shows where:" in "".join(studio.stderr)
    # SIGTERM stops it within the helper's wait, without killing; uvicorn re-raises the signal once shut down
    assert studio.process.returncode == -signal.SIGTERM


def test_a_missing_story_is_one_message(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "storyforge", "studio", "nowhere.yaml", "--no-open"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", "error: nowhere.yaml: no such story file; name a story file (like film.yaml), or make one with "
               "`storyforge init`\n")


def test_a_port_in_use_is_one_message() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(StoryforgeError) as error:
            listen("127.0.0.1", port)
        assert str(error.value) == (f"cannot listen on 127.0.0.1:{port} (Address already in use); choose another "
                                    "port with --port")
        free = listen("127.0.0.1", None)  # without --port: the first free port from 8765
        assert 8765 <= free.getsockname()[1] < 8785
        free.close()
    finally:
        taken.close()


def test_allow_path_holds_for_the_page_and_the_renders(tmp_path: Path) -> None:
    import shutil

    from conftest import EXAMPLES

    shutil.copytree(EXAMPLES / "refs", tmp_path / "refs")
    (tmp_path / "film").mkdir()
    story = tmp_path / "film" / "film.yaml"  # its root is its own folder: the image is outside without the flag
    story.write_text("""\
storyforge: 1
title: Outside
render: {resolution: 256x144, fps: 24}
scenes:
  - id: s
    shots:
      - {id: a, prompt: a swan, image: ../refs/swan.png, duration: 9f}
""", encoding="utf-8")
    with running_studio(story, "--allow-path", str(tmp_path / "refs"), "--backend", "animatic") as studio:
        def call(path: str, body: dict | None = None) -> dict:
            request = urllib.request.Request(f"{studio.base}{path}", data=None if body is None else json.dumps(
                body).encode(), headers={"Authorization": f"Bearer {studio.token}",
                                         "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read())

        film = call("/api/film")
        assert film["problems"] == [] and [shot["id"] for shot in film["shots"]] == ["s/a"]
        task = call("/api/render", {})["task"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = [t for t in call("/api/work")["tasks"] if t["id"] == task and t["state"] in ("done", "failed")]
            if done:
                break
            time.sleep(0.2)
        assert done and done[0]["state"] == "done", done
        assert call("/api/film")["stale"] is False
