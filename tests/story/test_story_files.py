"""Files a story names (start images, references, the soundtrack, a template, a model folder) are read only
inside the story root, only when they are regular files, and images only when they decode within their bounds;
a file outside is refused without saying whether it exists, at validate, plan and render."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from conftest import run_cli, story_errors, within
from surroundings import FILM, TOTAL

from storyforge import api
from storyforge.clipfile import count_frames
from storyforge.errors import StoryError
from storyforge.story.load import load
from storyforge.story.root import StoryRoot

SHOT = "      - id: a\n        prompt: a fox\n        duration: 2s\n"
HEAD = "storyforge: 1\ntitle: T\nscenes:\n  - id: s\n    shots:\n"
OUTSIDE = ("'{written}' is outside the story root {root} (the folder holding .git, else the story file's folder); "
           "move the file inside it, or allow its folder with --allow-path DIR (or STORYFORGE_ALLOW_PATH)")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, rows: int | None = None, noise: bool = False) -> bytes:
    """A grey (or noisy, so incompressible) PNG; `rows` < height gives a header that promises more pixels."""
    import random

    fill = random.Random(0).randbytes if noise else (lambda n: b"\x80" * n)
    raw = b"".join(b"\x00" + fill(width) for _ in range(height if rows is None else rows))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


# -- the story root ---------------------------------------------------------------------------------------------------

@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A story repository (it holds .git) with the story in stories/, and a secret beside the repository."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "stories" / "refs").mkdir(parents=True)
    png = _png(32, 32)
    (root / "stories" / "refs" / "ok.png").write_bytes(png)
    (root / "shared.png").write_bytes(png)  # in the repository, above the story's folder: allowed
    (tmp_path / "secret.png").write_bytes(png)  # outside the repository
    monkeypatch.chdir(root / "stories")
    monkeypatch.delenv("STORYFORGE_ALLOW_PATH", raising=False)
    return root


def story_with(folder: Path, key: str, value: str) -> Path:
    """A one-shot story naming `value` under the shot's `key` (image, end_image) or elsewhere."""
    shot = SHOT
    extra = ""
    if key in ("image", "end_image"):
        shot += f"        {key}: {json.dumps(value)}\n"
    elif key == "reference":
        extra = f"characters:\n  fox: {{description: a fox, reference: {json.dumps(value)}}}\n"
    elif key == "audio":
        extra = f"audio: {json.dumps(value)}\n"
    elif key == "template":
        extra = f"enhance: {{template: {json.dumps(value)}}}\n"
    path = folder / "film.yaml"
    path.write_text(HEAD.replace("scenes:\n", extra + "scenes:\n") + shot, encoding="utf-8")
    return path


LINE = {"image": 9, "end_image": 9, "reference": 4, "audio": 3, "template": 3}
WHERE = {"image": "s/a", "end_image": "s/a", "reference": "characters.fox", "audio": "audio",
         "template": "enhance.template"}


@pytest.mark.parametrize("key", ["image", "end_image", "reference", "audio", "template"])
@pytest.mark.parametrize("written", ["../../secret.png", "{tmp}/secret.png", "link.png", "/etc/hostname",
                                     "/proc/self/environ", "../../no-such-file.png", "dead-link.png"])
def test_a_path_outside_the_root_is_refused_without_saying_whether_it_exists(repo: Path, key: str,
                                                                               written: str) -> None:
    stories = repo / "stories"
    (stories / "link.png").symlink_to(repo.parent / "secret.png")  # a link inside pointing outside
    (stories / "dead-link.png").symlink_to(repo.parent / "nothing-here.png")
    written = written.format(tmp=repo.parent)
    if key == "template":
        written = written.replace(".png", ".j2") if written.endswith(".png") else written + ".j2"
        (repo.parent / "secret.j2").write_text("{{ shot.prompt }}", encoding="utf-8")
        for name in ("link.j2", "dead-link.j2"):
            (stories / name).symlink_to(repo.parent / name.replace("link", "secret").replace("dead-", ""))
    path = story_with(stories, key, written)
    assert story_errors(path) == [f"film.yaml:{LINE[key]}: {WHERE[key]}: {OUTSIDE.format(written=written, root=repo)}"]


def test_the_root_is_the_repository_so_shared_files_above_the_story_are_readable(repo: Path) -> None:
    path = story_with(repo / "stories", "image", "../shared.png")
    assert api.validate(path).root.root == repo


def test_allow_path_and_the_environment_widen_the_root(repo: Path) -> None:
    path = story_with(repo / "stories", "image", str(repo.parent / "secret.png"))
    done = run_cli("validate", "film.yaml", cwd=repo / "stories")
    assert done.returncode == 1 and "outside the story root" in done.stderr
    assert run_cli("validate", "film.yaml", "--allow-path", str(repo.parent), cwd=path.parent).returncode == 0
    assert run_cli("plan", "film.yaml", "--allow-path", str(repo.parent), cwd=path.parent).returncode == 0
    env = {"STORYFORGE_ALLOW_PATH": os.pathsep.join(["/nonexistent", str(repo.parent)])}
    assert run_cli("validate", "film.yaml", cwd=path.parent, env=env).returncode == 0
    assert StoryRoot.of(path, [repo.parent]).contains((repo.parent / "secret.png").resolve())


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: os.mkfifo(p), "'x.png' is not a regular file (a FIFO, device or socket); name a file"),
    (lambda p: p.mkdir(), "'x.png' is a folder; name a file"),
    (lambda p: p.symlink_to("/dev/zero"), OUTSIDE.format(written="x.png", root="{root}")),
    (lambda p: None, "no such file 'x.png' (paths are relative to the story file)"),
])
def test_only_regular_files_are_read_and_a_fifo_is_never_opened(repo: Path, make, message: str) -> None:
    stories = repo / "stories"
    make(stories / "x.png")
    path = story_with(stories, "image", "x.png")
    assert story_errors(path) == [f"film.yaml:9: s/a: {message.format(root=repo)}"]


def test_even_an_allowed_folder_never_opens_proc_or_devices(repo: Path) -> None:
    path = story_with(repo / "stories", "image", "/proc/self/environ")
    with within(), pytest.raises(StoryError) as caught:
        load(path, allow=("/",))
    assert "outside the story root" in str(caught.value)


# -- at render time ---------------------------------------------------------------------------------------------------



def test_nothing_outside_the_root_reaches_a_render_unless_allowed(story_dir: Path) -> None:
    inner = story_dir / "inner"
    inner.mkdir()
    (story_dir / "refs" / "swan.png").rename(story_dir / "secret.png")  # outside inner/, the story's root
    (inner / "link.png").symlink_to(story_dir / "secret.png")
    for written in ("../secret.png", "link.png"):
        (inner / "film.yaml").write_text(FILM.replace("refs/swan.png", written), encoding="utf-8")
        done = run_cli("render", "film.yaml", "--backend", "animatic", "--out", "out", cwd=inner)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert f"'{written}' is outside the story root {inner}" in done.stderr
        assert not (inner / "out").exists()  # no plan, no clip, no film: not a pixel of it
        done = run_cli("plan", "film.yaml", "--json", cwd=inner)
        assert (done.returncode, done.stdout) == (1, "")
    done = run_cli("render", "film.yaml", "--backend", "animatic", "--out", "out", "--allow-path", "..", cwd=inner)
    assert done.returncode == 0, done.stderr
    assert count_frames(inner / "out" / "film.mp4") == TOTAL


def test_a_model_folder_outside_the_root_is_refused(write_story, story_dir: Path) -> None:
    (story_dir.parent / "models-elsewhere").mkdir(exist_ok=True)
    write_story(FILM.replace("render: {", "render: {model: ../models-elsewhere, "))
    done = run_cli("plan", "film.yaml", cwd=story_dir)
    assert (done.returncode, done.stderr) == (1, "error: film.yaml:3: render.model: '../models-elsewhere' is outside "
                                                 f"the story root {story_dir.resolve()} (the folder holding .git, "
                                                 "else the story file's folder); move the file inside it, or allow its "
                                                 "folder with --allow-path DIR (or STORYFORGE_ALLOW_PATH)\n")


# -- images -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "message"), [
    (_png(7000, 7000, rows=1), "'x.png' is 7000x7000 pixels, more than the 40 million an image may have; scale it "
                               "down"),
    (_png(200_000, 200_000, rows=1), "'x.png' is not an image that can be decoded (DecompressionBombError); "
                                     "re-export it"),
    (_png(64, 64, noise=True)[:2000], "'x.png' is not an image that can be decoded (OSError); re-export it"),
    (_png(64, 64)[:60], "'x.png' is not an image that can be decoded (OSError); re-export it"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "'x.png' is not an image that can be decoded (UnidentifiedImageError); "
                                           "re-export it"),
])
def test_images_that_are_bombs_or_do_not_decode_fully_are_errors(story_dir: Path, data: bytes, message: str) -> None:
    (story_dir / "x.png").write_bytes(data)
    path = story_with(story_dir, "image", "x.png")
    assert story_errors(path) == [f"film.yaml:9: s/a: {message}"]


def test_a_valid_image_decodes_to_its_pixels(story_dir: Path) -> None:
    from PIL import Image

    (story_dir / "x.png").write_bytes(_png(48, 32))
    api.validate(story_with(story_dir, "image", "x.png"))
    with Image.open(io.BytesIO((story_dir / "x.png").read_bytes())) as image:
        assert image.size == (48, 32) and image.getpixel((47, 31)) == 128
