"""Every user mistake gives one exact, actionable message at file:line (asserted word for word)."""

from __future__ import annotations

import pytest
from conftest import run_cli, story_errors

from storyforge import api
from storyforge.errors import StoryError

HEAD = "storyforge: 1\ntitle: T\nscenes:\n  - id: s\n    shots:\n"
SHOT = "      - id: a\n        prompt: p\n        duration: 4s\n"
ASYNC = "storyforge: 1\ntitle: T\nrender:\n  ar_step: 5\n  causal_block_size: 5\nscenes:\n  - id: s\n    shots:\n"

CASES = {
    "unknown key": (
        HEAD + "      - id: a\n        prompt: p\n        duraton: 4s\n",
        ["film.yaml:8: s/a: unknown key 'duraton'; did you mean 'duration'?"],
    ),
    "missing prompt": (
        HEAD + "      - id: a\n        duration: 4s\n",
        ["film.yaml:6: s/a: missing required key 'prompt'; add it"],
    ),
    "bad duration": (
        HEAD + "      - id: a\n        prompt: p\n        duration: soon\n",
        ["film.yaml:8: s/a.duration: 'soon' is not a duration; write seconds like '4s' or '4.5s', "
         "or frames like '97f'"],
    ),
    "bad id": (
        HEAD + "      - id: Bad Id\n        prompt: p\n        duration: 4s\n",
        ["film.yaml:6: s/Bad Id.id: 'Bad Id' is not a valid id: use lower-case letters, digits, '-' and '_', "
         "starting with a letter or digit"],
    ),
    "duplicate id": (
        HEAD + SHOT + SHOT,
        ["film.yaml:9: s/a: shot id 'a' is already used at line 6 in scene 's'; ids must be unique within a scene"],
    ),
    "continue first": (
        HEAD + SHOT + "        transition: continue\n",
        ["film.yaml:9: s/a: the first shot of the film has nothing to continue; use cut or fade"],
    ),
    "crossfade first": (
        HEAD + SHOT + "        transition: crossfade\n",
        ["film.yaml:9: s/a: the first shot of the film has nothing to crossfade from; use fade to fade in from black"],
    ),
    "continue with image": (
        HEAD + SHOT + "      - id: b\n        prompt: q\n        duration: 2s\n        image: refs/swan.png\n"
        "        transition: continue\n",
        ["film.yaml:12: s/b: a continued shot starts from the previous shot's last frames, so it cannot also have "
         "a start image; remove 'image' or use another transition"],
    ),
    "missing image": (
        HEAD + SHOT + "        image: refs/nope.png\n",
        ["film.yaml:9: s/a: no such file 'refs/nope.png' (paths are relative to the story file)"],
    ),
    "undecodable image": (
        HEAD + SHOT + "        image: refs/bad.png\n",
        ["film.yaml:9: s/a: 'refs/bad.png' is not an image that can be decoded (UnidentifiedImageError); "
         "re-export it"],
    ),
    "resolution": (
        "storyforge: 1\ntitle: T\nrender:\n  resolution: 1000x500\nscenes:\n  - id: s\n    shots:\n" + SHOT,
        ["film.yaml:4: render.resolution: resolution 1000x500 is not a multiple of 16 in both sides; "
         "use 992x496, 540p or 720p"],
    ),
    "version": (
        "storyforge: 2\ntitle: T\nscenes: []\n",
        ["film.yaml:1: storyforge: format version 2 is not supported by this storyforge (it reads version 1); "
         "upgrade storyforge or write `storyforge: 1`"],
    ),
    "no version": (
        "title: T\nscenes:\n  - id: s\n    shots:\n" + SHOT,
        ["film.yaml:1: (top): missing required key 'storyforge' (the format version); add `storyforge: 1` at the top"],
    ),
    "empty": ("# nothing here\n", ["film.yaml: the file is empty; run `storyforge init` for an example"]),
    "syntax": (
        "storyforge: 1\ntitle: [unclosed\nscenes: x\n",
        ["film.yaml:3: YAML syntax error: while parsing a flow sequence expected ',' or ']', but got ':'; "
         "fix the indentation or quoting"],
    ),
    "python tag": (
        "storyforge: 1\ntitle: !!python/object/apply:os.system ['touch pwned']\nscenes: []\n",
        ["film.yaml:2: title: the tag !!python/object/apply:os.system is not allowed in a story file; remove it"],
    ),
    "transition type": (
        HEAD + SHOT + "      - id: b\n        prompt: p\n        duration: 4s\n        transition: wipe\n",
        ["film.yaml:12: s/b.transition: 'wipe' is not one of: 'cut', 'continue', 'crossfade', 'fade', 'bridge'"],
    ),
    "cut with a length": (
        HEAD + SHOT + "      - id: b\n        prompt: p\n        duration: 4s\n"
        "        transition: {type: cut, duration: 1s}\n",
        ["film.yaml:12: s/b.transition: a 'cut' has no length; remove 'duration' or use crossfade or fade"],
    ),
    "fps not a number": (
        "storyforge: 1\ntitle: T\nrender:\n  fps: fast\nscenes:\n  - id: s\n    shots:\n" + SHOT,
        ["film.yaml:4: render.fps: 'fast' is not a whole number"],
    ),
    "duplicate key": (
        HEAD + "      - id: a\n        prompt: p\n        prompt: q\n        duration: 4s\n",
        ["film.yaml:8: scenes[0]/shots[0]: key 'prompt' appears twice; keep one"],
    ),
    "not a mapping": (
        "- just\n- a list\n",
        ["film.yaml:1: a story file is a mapping of keys (storyforge, title, scenes, ...); "
         "run `storyforge init` for an example"],
    ),
    "alias bomb": (
        "storyforge: 1\na: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
        ["film.yaml:2: the file expands to more than 100,000 values (YAML aliases?); a story needs far fewer"],
    ),
    "fps differs": (
        HEAD + SHOT + "      - id: b\n        prompt: p\n        duration: 4s\n        render: {fps: 30}\n",
        ["film.yaml:12: s/b: fps 30 differs from the film's 24 (shot s/a); every shot of a film shares one fps: "
         "set it once under the film's `render:`"],
    ),
    # -- planning rules ---------------------------------------------------------------------------
    "async 289 frames": (
        ASYNC + "      - id: a\n        prompt: p\n        duration: 289f\n",
        ["film.yaml:11: s/a: 289 frames in asynchronous mode with causal_block_size 5: the last window would have "
         "13 latents, not divisible by causal_block_size 5, so its last 3 latents would stay pure noise; "
         "use 277f or 297f, or set causal_block_size: 1"],
    ),
    "720p base 121 with c 5": (
        "storyforge: 1\ntitle: T\nrender:\n  resolution: 720p\n  base_frames: 121\n  ar_step: 5\n"
        "  causal_block_size: 5\nscenes:\n  - id: s\n    shots:\n      - id: a\n        prompt: p\n"
        "        duration: 257f\n",
        ["film.yaml:13: s/a: 257 frames in asynchronous mode with causal_block_size 5: its full windows of "
         "base_frames 121 (31 latents) are never divisible by causal_block_size 5; use 117f, or set "
         "base_frames: 117 or causal_block_size: 1"],
    ),
    "start image with c 5": (
        ASYNC + "      - id: a\n        prompt: p\n        duration: 97f\n        image: refs/swan.png\n",
        ["film.yaml:5: s/a: a start image is one latent that causal_block_size 5 would overwrite (the image would "
         "be lost); set causal_block_size: 1 for this shot"],
    ),
    "overlap not below base": (
        "storyforge: 1\ntitle: T\nrender:\n  base_frames: 17\n  overlap_frames: 21\nscenes:\n  - id: s\n"
        "    shots:\n" + SHOT,
        ["film.yaml:5: s/a: overlap_frames 21 must be smaller than base_frames 17 (each window must add new "
         "frames); use overlap_frames 9 or 13"],
    ),
    "base not 4k+1": (
        "storyforge: 1\ntitle: T\nrender:\n  base_frames: 96\nscenes:\n  - id: s\n    shots:\n" + SHOT,
        ["film.yaml:4: s/a: base_frames 96 is not 4k+1, so its latents would not line up with pixel frames; "
         "use base_frames 93 or 97"],
    ),
    "snaps to zero": (
        HEAD + "      - id: a\n        prompt: p\n        duration: 0.01s\n",
        ["film.yaml:8: s/a: 0.01s is 0 frames at 24 fps; the shortest this shot can be is 1 frame (0.042s): write 1f"],
    ),
    "crossfade too long": (
        HEAD + "      - id: a\n        prompt: p\n        duration: 1s\n      - id: b\n        prompt: p\n"
        "        duration: 4s\n        transition: {type: crossfade, duration: 2s}\n",
        ["film.yaml:12: s/b: a crossfade of 48 frames is longer than the previous shot (25 frames); "
         "use at most 25f (1.04s)"],
    ),
    "frames not 4k+1": (
        HEAD + "      - id: a\n        prompt: p\n        duration: 96f\n",
        ["film.yaml:8: s/a: 96 frames: a generation is 4k+1 frames long (the VAE turns 4 frames into one latent, "
         "plus the first); use 93f or 97f"],
    ),
    "one-frame image shot": (
        HEAD + "      - id: a\n        prompt: p\n        duration: 1f\n        image: refs/swan.png\n",
        ["film.yaml:8: s/a: 1 frame: the start image is the shot's first latent, so it needs at least one more "
         "latent (4 frames) to generate; use 5f"],
    ),
    "one-frame image shot in seconds": (
        HEAD + "      - id: a\n        prompt: p\n        duration: 0.04s\n        image: refs/swan.png\n"
        "        end_image: refs/swan.png\n",
        ["film.yaml:8: s/a: 0.04s is 1 frame at 24 fps; the shortest this shot can be is 5 frames (0.208s): write 5f"],
    ),
    "end image without start": (
        HEAD + SHOT + "        end_image: refs/swan.png\n",
        ["film.yaml:9: s/a: an end frame needs a start frame: add `image:` (the image-to-video pipeline starts "
         "from it), or `transition: continue` to go on from the previous shot towards the end frame"],
    ),
    "extension not a multiple of 4": (
        HEAD + SHOT + "      - id: b\n        prompt: q\n        duration: 50f\n        transition: continue\n",
        ["film.yaml:11: s/b: 50 new frames: an extension adds frames in steps of 4 (each latent is 4 frames); "
         "use 48f or 52f"],
    ),
    "chain too short to continue": (
        HEAD + "      - id: a\n        prompt: p\n        duration: 9f\n      - id: b\n        prompt: q\n"
        "        duration: 8f\n        transition: continue\n",
        ["film.yaml:12: s/b: continuing needs the last 17 frames (overlap_frames) of what came before, but the "
         "chain so far has 9; make the previous shot longer"],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_user_error_message(name: str, write_story, story_dir) -> None:
    (story_dir / "refs" / "bad.png").write_bytes(b"not an image")
    text, expected = CASES[name]
    path = write_story(text)
    with pytest.raises(StoryError) as caught:
        api.validate(path)
    assert [str(problem) for problem in caught.value.problems] == expected


def test_every_error_of_a_file_is_reported_sorted_by_line(write_story) -> None:
    path = write_story(HEAD + "      - id: a\n        prompt: p\n        duration: soon\n"
                       "      - id: B\n        prompt: p\n        duration: 4s\n        colour: red\n")
    with pytest.raises(StoryError) as caught:
        api.validate(path)
    lines = [problem.line for problem in caught.value.problems]
    assert lines == sorted(lines) and len(lines) == 3


def test_non_utf8_file(story_dir) -> None:
    path = story_dir / "film.yaml"
    path.write_bytes(b"storyforge: 1\ntitle: caf\xe9\n")
    with pytest.raises(StoryError) as caught:
        api.validate(path)
    assert str(caught.value) == "film.yaml:2: the file is not UTF-8 text (byte 0xe9); save it as UTF-8"


def test_missing_file(story_dir) -> None:
    with pytest.raises(StoryError) as caught:
        api.validate(story_dir / "nope.yaml")
    assert str(caught.value) == "nope.yaml: no such file; check the path"


def test_python_tags_are_never_constructed(write_story, story_dir) -> None:
    marker = story_dir / "pwned"
    path = write_story(f"storyforge: 1\ntitle: !!python/object/apply:os.system ['touch {marker}']\n"
                       "scenes: !!python/object/new:list [[]]\n")
    with pytest.raises(StoryError):
        api.validate(path)
    assert not marker.exists()


def test_cli_prints_one_line_per_problem_and_exits_1(write_story) -> None:
    path = write_story(HEAD + "      - id: a\n        prompt: p\n        duraton: 4s\n")
    result = run_cli("validate", str(path), cwd=path.parent)
    assert result.returncode == 1
    assert result.stderr == "error: film.yaml:8: s/a: unknown key 'duraton'; did you mean 'duration'?\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_usage_error_exits_2() -> None:
    result = run_cli("plan", "--bogus")
    assert result.returncode == 2
    assert "No such option: --bogus" in result.stderr
    assert "Traceback" not in result.stderr


def test_overlap_shorter_than_a_block_is_refused_for_an_extension(write_story) -> None:
    path = write_story("storyforge: 1\ntitle: T\nrender: {base_frames: 17, overlap_frames: 5, causal_block_size: 5, "
                       "ar_step: 2}\nscenes:\n  - id: s\n    shots:\n      - {id: a, prompt: p, duration: 17f}\n"
                       "      - {id: b, prompt: q, duration: 12f, transition: continue}\n")
    with pytest.raises(StoryError) as caught:
        api.validate(path)
    assert [str(p) for p in caught.value.problems] == [
        "film.yaml:8: s/b: 12 new frames in asynchronous mode with causal_block_size 5: overlap_frames 5 (2 latents) "
        "is less than one block of causal_block_size 5: the pipeline would drop the whole overlap and continue from "
        "nothing; set causal_block_size: 1"]


def _wav(path, seconds: float) -> None:
    import wave

    with wave.open(str(path), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(16000)
        sound.writeframes(b"\x00\x10" * int(16000 * seconds))


@pytest.mark.parametrize("content, expected", [
    (None, "film.yaml:9: audio: no such file 'music/theme.wav' (paths are relative to the story file)"),
    (b"definitely not audio", "film.yaml:9: audio: 'music/theme.wav' is not audio that can be decoded "
                              "(InvalidDataError); re-export it"),
])
def test_a_missing_or_undecodable_soundtrack(write_story, story_dir, content, expected) -> None:
    if content is not None:
        (story_dir / "music").mkdir()
        (story_dir / "music" / "theme.wav").write_bytes(content)
    path = write_story(HEAD + SHOT + "audio: music/theme.wav\n")
    with pytest.raises(StoryError) as caught:
        api.validate(path)
    assert [str(p) for p in caught.value.problems] == [expected]


def test_a_soundtrack_that_decodes_is_accepted(write_story, story_dir) -> None:
    (story_dir / "music").mkdir()
    _wav(story_dir / "music" / "theme.wav", 1.0)
    plan = api.plan(write_story(HEAD + SHOT + "audio: music/theme.wav\n"))
    assert plan.audio is not None and plan.audio.relative == "music/theme.wav"



# -- all problems at once (issue 16) ----------------------------------------------------------------------------------

FOX = "      - id: a\n        prompt: a fox\n        duration: 2s\n"  # a shot a test misspells a key of


def test_format_errors_and_file_errors_come_together(write_story) -> None:
    text = HEAD + FOX.replace("duration: 2s", "duraton: 2s") + "        image: refs/nope.png\n"
    assert story_errors(write_story(text)) == [
        "film.yaml:8: s/a: unknown key 'duraton'; did you mean 'duration'?",
        "film.yaml:9: s/a: no such file 'refs/nope.png' (paths are relative to the story file)",
    ]
