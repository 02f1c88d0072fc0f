"""Story files from strangers, class by class: paths, story files, YAML, numbers, templates and images.

Each class has several variants; every one ends in exit 0 or 1 with one exact message at file:line, quickly,
and never reads (or reveals) a file outside the story root.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from conftest import run_cli, within

from storyforge import api
from storyforge.errors import StoryError
from storyforge.plan.frames import denoising_rows
from storyforge.story.load import load
from storyforge.story.root import StoryRoot

SHOT = "      - id: a\n        prompt: a fox\n        duration: 2s\n"
HEAD = "storyforge: 1\ntitle: T\nscenes:\n  - id: s\n    shots:\n"
OUTSIDE = ("'{written}' is outside the story root {root} (the folder holding .git, else the story file's folder); "
           "move the file inside it, or allow its folder with --allow-path DIR (or STORYFORGE_ALLOW_PATH)")


def errors(path: Path) -> list[str]:
    with within(), pytest.raises(StoryError) as caught:
        api.validate(path)
    return [str(problem) for problem in caught.value.problems]


def cli(*args: str, cwd: Path, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    """`storyforge ARGS` in this process (tests/conftest.run_cli)."""
    return run_cli(*args, cwd=cwd, env=env)


# -- files a story may read -----------------------------------------------------------------------------------


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
    assert errors(path) == [f"film.yaml:{LINE[key]}: {WHERE[key]}: {OUTSIDE.format(written=written, root=repo)}"]


def test_the_root_is_the_repository_so_shared_files_above_the_story_are_readable(repo: Path) -> None:
    path = story_with(repo / "stories", "image", "../shared.png")
    assert api.validate(path).root.root == repo


def test_allow_path_and_the_environment_widen_the_root(repo: Path) -> None:
    path = story_with(repo / "stories", "image", str(repo.parent / "secret.png"))
    done = cli("validate", "film.yaml", cwd=repo / "stories")
    assert done.returncode == 1 and "outside the story root" in done.stderr
    assert cli("validate", "film.yaml", "--allow-path", str(repo.parent), cwd=path.parent).returncode == 0
    assert cli("plan", "film.yaml", "--allow-path", str(repo.parent), cwd=path.parent).returncode == 0
    env = {"STORYFORGE_ALLOW_PATH": os.pathsep.join(["/nonexistent", str(repo.parent)])}
    assert cli("validate", "film.yaml", cwd=path.parent, env=env).returncode == 0
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
    assert errors(path) == [f"film.yaml:9: s/a: {message.format(root=repo)}"]


def test_even_an_allowed_folder_never_opens_proc_or_devices(repo: Path) -> None:
    path = story_with(repo / "stories", "image", "/proc/self/environ")
    with within(), pytest.raises(StoryError) as caught:
        load(path, allow=("/",))
    assert "outside the story root" in str(caught.value)


# -- the story file itself -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: os.mkfifo(p), "the story file is not a regular file (a FIFO, device or socket); name a file"),
    (lambda p: p.symlink_to("/dev/zero"), "the story file is not a regular file (a FIFO, device or socket); name a "
                                          "file"),
    (lambda p: p.write_bytes(b"# x\n" * 600_000), "the story file is larger than 500 KB"),
    (lambda p: p.symlink_to(p.parent / "loop.yaml") or (p.parent / "loop.yaml").symlink_to(p),
     "the story file cannot be read (Too many levels of symbolic links); check the path and its permissions"),
])
def test_the_story_file_is_sized_before_it_is_read(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "film.yaml"
    make(path)
    done = subprocess.run([sys.executable, "-m", "storyforge", "validate", str(path)], capture_output=True,
                          text=True, timeout=20, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {path}: {message}"


# -- YAML ------------------------------------------------------------------------------------------------------

CYCLE = ("an alias (*name) refers to the value that contains it; a value cannot contain itself: copy the parts you "
         "need instead")
MERGE = "a merge key (<<) refers to the mapping that contains it; a value cannot contain itself"
NESTED = "the values are nested too deeply; a story needs at most 64 levels: flatten them"


@pytest.mark.parametrize(("text", "expected"), [
    ("storyforge: 1\ntitle: T\nscenes: &x [*x]\n", [f"film.yaml:3: scenes[0]: {CYCLE}"]),
    ("storyforge: 1\ntitle: T\nstyle: &x {a: *x}\nscenes: []\n", [f"film.yaml:3: style.a: {CYCLE}"]),
    ("storyforge: 1\ntitle: T\nx: &x {<<: *x}\nscenes: []\n", [f"film.yaml:3: x: {MERGE}"]),
    ("storyforge: 1\ntitle: T\nx: &x [[[[*x]]]]\nscenes: []\n", [f"film.yaml:3: x[0][0][0][0]: {CYCLE}"]),
    ("storyforge: 1\ntitle: T\nx: " + "[" * 100_000 + "]" * 100_000 + "\n", [f"film.yaml:3: {NESTED}"]),
    ("storyforge: 1\ntitle: T\nx:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 80)) + "scenes: []\n",
     ["film.yaml:68: x.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.k11.k12.k13.k14.k15.k16.k17.k18.k19.k20.k21.k22.k23.k24.k25."
      "k26.k27.k28.k29.k30.k31.k32.k33.k34.k35.k36.k37.k38.k39.k40.k41.k42.k43.k44.k45.k46.k47.k48.k49.k50.k51.k52."
      "k53.k54.k55.k56.k57.k58.k59.k60.k61.k62.k63.k64: the values are nested more than 64 levels deep; a story "
      "needs far fewer: flatten it"]),
    ("storyforge: 1\ntitle: T\nrender: {seed: " + "9" * 5000 + "}\nscenes: []\n",
     ["film.yaml:3: render.seed: the number 9999999999999999999999999999999999999999… is too large; numbers in a "
      "story have at most 30 digits"]),
    ("storyforge: 1\ntitle: T\nrender:\n  fps: .nan\n  steps: -.Inf\n  guidance: 1.0e+400\nscenes: []\n",
     ["film.yaml:4: render.fps: .nan is not a finite number; write an ordinary number",
      "film.yaml:5: render.steps: -.Inf is not a finite number; write an ordinary number",
      "film.yaml:6: render.guidance: 1.0e+400 is not a finite number; write an ordinary number"]),
    ('storyforge: 1\ntitle: "a \\ud800 b"\nscenes: []\n',
     ["film.yaml:2: title: the text holds an invalid character (a lone UTF-16 surrogate written as an escape like "
      "\\ud800); remove it"]),
    ('storyforge: 1\ntitle: T\n"\\udfff": 1\nscenes: []\n',
     ["film.yaml:3: (top): the text holds an invalid character (a lone UTF-16 surrogate written as an escape like "
      "\\ud800); remove it"]),
    ("storyforge: 1\ntitle: 'unclosed\nscenes: []\n\n\n\n",
     ["film.yaml:2: YAML syntax error: the quoted text that starts on this line is never closed; add the closing "
      "quote"]),
    ('storyforge: 1\ntitle: T\nstyle: "a\n  b\n  c\nscenes: []\n',
     ["film.yaml:3: YAML syntax error: the quoted text that starts on this line is never closed; add the closing "
      "quote"]),
    ("storyforge: 1\ntitle: T\nstyle: \x1b[31mred\x07\nscenes: []\n",
     ["film.yaml:3: character '\\x1b' (U+001B) is not allowed in a YAML file; remove it or write it as an escape "
      'inside double quotes, e.g. "\\x1b"']),
    ("storyforge: 1\ntitle: T\n\nscenes: [] # \x7f\n",
     ["film.yaml:4: character '\\x7f' (U+007F) is not allowed in a YAML file; remove it or write it as an escape "
      'inside double quotes, e.g. "\\x1b"']),
])
def test_yaml_that_would_hang_or_crash_is_one_error_at_its_line(write_story, text: str, expected: list[str]) -> None:
    assert errors(write_story(text)) == expected


TRUE = "expected a number, got True (YAML reads true/false, yes/no and on/off as True/False)"
FALSE = "expected a number, got False (YAML reads true/false, yes/no and on/off as True/False)"


@pytest.mark.parametrize(("setting", "line", "where", "message"), [
    ("fps: true", 9, "s/a.render.fps", TRUE),
    ("steps: yes", 9, "s/a.render.steps", TRUE),
    ("guidance: false", 9, "s/a.render.guidance", FALSE),
    ("seed: true", 9, "s/a.render.seed", TRUE),
    ("base_frames: 1001", 9, "s/a.render.base_frames", "must be at most 257, got 1001"),
    ("resolution: 8192x8192", 9, "s/a.render.resolution",
     "resolution 8192x8192 is larger than 4096x4096 pixels; use 540p, 720p or WIDTHxHEIGHT up to 4096 a side"),
    ("resolution: 99999999999999999999x16", 9, "s/a.render.resolution",
     "resolution 99999999999999999999… is larger than 4096x4096; use 540p or 720p"),
    ("steps: 100000", 9, "s/a.render.steps", "must be at most 1000, got 100000"),
])
def test_numbers_are_numbers_and_bounded(write_story, setting: str, line: int, where: str, message: str) -> None:
    text = HEAD + SHOT + f"        render: {{{setting}}}\n"
    assert errors(write_story(text)) == [f"film.yaml:{line}: {where}: {message}"]


@pytest.mark.parametrize(("duration", "message"), [
    ("601s", "'601s' is longer than a shot may last: at most 600s (10 minutes); split it into shots"),
    ("1e300", "'1e300' is not a duration; write seconds like '4s' or '4.5s', or frames like '97f'"),
    ("100000000.5", "100000000.5s is longer than a shot may last: at most 600s (10 minutes); split it into shots"),
    ("72001f", "'72001f' is longer than a shot may last: at most 72000f (10 minutes at 120 fps); split it into shots"),
    ("99999999999999999999999f", "'99999999999999999999999f' is longer than a shot may last: at most 72000f "
                                 "(10 minutes at 120 fps); split it into shots"),
    ("false", FALSE),
])
def test_durations_are_bounded_with_the_bound_in_the_message(write_story, duration: str, message: str) -> None:
    text = HEAD + SHOT.replace("duration: 2s", f"duration: {duration}")
    assert errors(write_story(text)) == [f"film.yaml:8: s/a.duration: {message}"]


def _replayed_rows(blocks: int, ready: int, steps: int, ar_step: int) -> int:
    """The row-by-row replay of diffusers' generate_timestep_matrix that denoising_rows' closed form stands for."""
    done = steps + 1
    row = [done if i < ready else 0 for i in range(blocks)]
    count = 0
    while not all(value >= steps for value in row):
        new = [0] * blocks
        for i in range(blocks):
            new[i] = row[i] + 1 if i == 0 or row[i - 1] >= steps else new[i - 1] - ar_step
        row = [min(max(value, 0), done) for value in new]
        count += 1
    return count


def test_the_df_arithmetic_is_constant_time_and_equals_the_replay() -> None:
    for blocks in range(0, 12):
        for ready in range(0, blocks + 2):
            for steps in range(1, 20):
                for ar_step in range(0, 24):
                    assert denoising_rows(blocks, ready, steps, ar_step) == _replayed_rows(blocks, ready, steps,
                                                                                           ar_step)
    with within():
        assert denoising_rows(10**9, 0, 1000, 1000) == 1000 + (10**9 - 1) * 1000


LARGEST = ("storyforge: 1\ntitle: T\nrender: {steps: 1000, ar_step: 1000, causal_block_size: 1, fps: 24, "
           "base_frames: 257, overlap_frames: 253}\nscenes:\n  - id: s\n    shots:\n")


def test_the_largest_settings_still_plan_in_seconds(write_story) -> None:
    text = LARGEST + "      - {id: a, prompt: p, duration: 71997f}\n"
    with within():
        plan = api.plan(write_story(text))
    assert [job.frames for job in plan.jobs] == [71_997]
    assert len(plan.jobs[0].segments) == 17_936


def test_a_film_needing_too_many_windows_is_one_error_at_the_shot(write_story) -> None:
    text = LARGEST + "".join(f"      - {{id: a{i}, prompt: p, duration: 71997f}}\n" for i in range(5))
    assert errors(write_story(text)) == [
        "film.yaml:8: s/a1: the film needs more than 20,000 generation windows by this shot (windows of 257 frames "
        "overlapping by 253); real films need far fewer: shorten the shots, or overlap the windows less"]


def test_too_many_shots_is_one_error_before_anything_is_built(write_story) -> None:
    text = "storyforge: 1\ntitle: T\nscenes:\n" + "".join(
        f"  - id: s{s}\n    shots:\n" + "".join(f"      - {{id: a{i}, prompt: p, duration: 1s}}\n" for i in range(700))
        for s in range(3))
    assert errors(write_story(text)) == [
        "film.yaml:1008: the film has more than 1,000 shots; split it into several story files"]


# -- templates -------------------------------------------------------------------------------------------------

GROWS = "refused: a value in the template grows past 100,000 characters and items in all; prompts are short"


@pytest.mark.parametrize("prompt", [
    "{% set ns = namespace(a=[1]) %}{% for i in range(64) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"
    "{{ ns.a|tojson|length }}",
    "{% set ns = namespace(a=['xx']) %}{% for i in range(64) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"
    "{{ ns.a|string|length }}",
    "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(64) %}{% set ns.a = [ns.a, ns.a] %}"
    "{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}",
    "{% set ns = namespace(a={'k': 1}) %}{% for i in range(64) %}{% set ns.a = {'x': ns.a, 'y': ns.a} %}{% endfor %}"
    "{{ ns.a|tojson|length }}",
    "{% set ns = namespace(a=(1,)) %}{% for i in range(64) %}{% set ns.a = (ns.a, ns.a) %}{% endfor %}"
    "{{ ns.a|length }}",
])
def test_template_values_are_bounded_by_size_not_only_by_loops(write_story, prompt: str) -> None:
    text = HEAD + SHOT.replace("prompt: a fox", f"prompt: {json.dumps(prompt)}")
    assert errors(write_story(text)) == [f"film.yaml:7: s/a: {GROWS}"]


def test_template_nesting_is_bounded(write_story) -> None:
    prompt = ("{% set ns = namespace(a=1) %}{% for i in range(500) %}{% set ns.a = [ns.a] %}{% endfor %}"
              "{{ ns.a == ns.a }}")
    text = HEAD + SHOT.replace("prompt: a fox", f"prompt: {json.dumps(prompt)}")
    assert errors(write_story(text)) == [
        "film.yaml:7: s/a: refused: lists in the template are nested more than 100 deep"]


# -- images ----------------------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, rows: int | None = None, noise: bool = False) -> bytes:
    """A grey (or noisy, so incompressible) PNG; `rows` < height gives a header that promises more pixels."""
    import random

    fill = random.Random(0).randbytes if noise else (lambda n: b"\x80" * n)
    raw = b"".join(b"\x00" + fill(width) for _ in range(height if rows is None else rows))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


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
    assert errors(path) == [f"film.yaml:9: s/a: {message}"]


def test_a_valid_image_decodes_to_its_pixels(story_dir: Path) -> None:
    from PIL import Image

    (story_dir / "x.png").write_bytes(_png(48, 32))
    api.validate(story_with(story_dir, "image", "x.png"))
    with Image.open(io.BytesIO((story_dir / "x.png").read_bytes())) as image:
        assert image.size == (48, 32) and image.getpixel((47, 31)) == 128


# -- all problems at once (issue 16) ---------------------------------------------------------------------------


def test_format_errors_and_file_errors_come_together(write_story) -> None:
    text = HEAD + SHOT.replace("duration: 2s", "duraton: 2s") + "        image: refs/nope.png\n"
    assert errors(write_story(text)) == [
        "film.yaml:8: s/a: unknown key 'duraton'; did you mean 'duration'?",
        "film.yaml:9: s/a: no such file 'refs/nope.png' (paths are relative to the story file)",
    ]


# -- terminal safety -------------------------------------------------------------------------------------------


def test_control_characters_from_a_story_are_printed_escaped(story_dir: Path) -> None:
    (story_dir / "film.yaml").write_text(
        'storyforge: 1\ntitle: "\\e[2J\\e]0;pwned\\a"\nscenes:\n  - id: s\n    shots:\n'
        '      - {id: a, prompt: p, duration: 1s, image: "\\e[31mred\\u202e.png"}\n', encoding="utf-8")
    done = cli("validate", "film.yaml", cwd=story_dir)
    assert done.returncode == 1
    assert "\x1b" not in done.stderr and "\u202e" not in done.stderr
    assert done.stderr == ("error: film.yaml:6: s/a: no such file '\\x1b[31mred\\u202e.png' (paths are relative to "
                           "the story file)\n")
    (story_dir / "film.yaml").write_text(
        'storyforge: 1\ntitle: "\\e[2J[bold]x[/bold]\\a"\nscenes:\n  - id: s\n    shots:\n'
        '      - {id: a, prompt: p, duration: 1s}\n', encoding="utf-8")
    done = cli("validate", "film.yaml", cwd=story_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "✓ film.yaml — '\\x1b[2J[bold]x[/bold]\\x07', 1 scene, 1 shot\n"


def test_plan_output_escapes_what_json_leaves_raw(story_dir: Path) -> None:
    (story_dir / "film.yaml").write_text(
        'storyforge: 1\ntitle: "T\\x9b\\e[2J"\nscenes:\n  - id: s\n    shots:\n'
        '      - {id: a, prompt: "p\\e]0;x\\a\\u202e\\x7f", duration: 1s}\n', encoding="utf-8")
    done = cli("plan", "film.yaml", "--json", cwd=story_dir)
    assert done.returncode == 0, done.stderr
    assert not any(char in done.stdout for char in "\x1b\x9b\u202e\x7f\x07")
    assert json.loads(done.stdout)["title"] == "T\x9b\x1b[2J"  # the same data, escaped the JSON way
    table = cli("plan", "film.yaml", cwd=story_dir)
    assert table.returncode == 0 and "\x1b" not in table.stdout and "\x9b" not in table.stdout
    assert table.stdout.startswith("T\\x9b\\x1b[2J — 960x544 @ 24 fps")
