"""Cast and keyframes in the plan: who is in each shot, which shots get a generated start frame, and its key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from storyforge import api
from storyforge.errors import StoryError

# The film: swan has a reference, fox has none; the city has a reference, the lake has none.
STORY = """\
storyforge: 1
title: Cast
render: {{model: tiny, resolution: 64x64, fps: 12, steps: 2, base_frames: 17, overlap_frames: 5}}
{keyframes}characters:
  swan: {{description: a white swan, reference: refs/swan.png}}
  fox: a red fox
locations:
  city: {{description: a city at night, reference: refs/city_night.png}}
  lake: a still lake
scenes:
  - id: night
    location: city
    shots:
      - id: glide
        prompt: "{{{{ characters.swan }}}} glides past {{{{ location }}}}"
        camera: wide shot
        duration: 17f
      - id: dip
        prompt: the swan dips its head
        duration: 8f
        transition: continue
      - id: sleep
        prompt: "{{{{ characters.fox }}}} sleeps"
        duration: 17f
        cast: [swan]
  - id: day
    location: lake
    shots:
      - id: fox
        prompt: "{{{{ characters.fox }}}} drinks"
        duration: 17f
      - id: word
        prompt: the swan floats
        duration: 17f
      - id: given
        prompt: "{{{{ characters.swan }}}} lands"
        image: refs/takeoff_start.png
        duration: 17f
      - id: named
        prompt: the swan flies off
        duration: 17f
        cast: [swan]
"""
KEYFRAMES = "keyframes: {model: tiny, steps: 2, guidance: 1.0, seed: 3}\n"


def story(keyframes: str = KEYFRAMES) -> str:
    return STORY.format(keyframes=keyframes)


def jobs(path: Path) -> dict[str, dict]:
    return {job["id"]: job for job in json.loads(api.plan(path).dumps())["jobs"]}


def test_starts_of_takes_with_references_get_keyframes(write_story) -> None:
    planned = jobs(write_story(story()))
    with_keyframes = {job_id for job_id, job in planned.items() if "keyframe" in job}
    # glide: the swan (named in its prompt) and the city; sleep: the swan by `cast:` and the city;
    # named: the swan by `cast:` at the lake (no reference). Not dip (it continues), not fox (no references),
    # not word (the swan is a word of the prompt, not `characters.swan`), not given (it has its own image).
    assert with_keyframes == {"night/glide", "night/sleep", "day/named"}
    assert {job_id: planned[job_id]["kind"] for job_id in planned} == {
        "night/glide": "i2v", "night/dip": "extend", "night/sleep": "i2v", "day/fox": "t2v", "day/word": "t2v",
        "day/given": "i2v", "day/named": "i2v"}
    glide, sleep, named = (planned[i]["keyframe"] for i in ("night/glide", "night/sleep", "day/named"))
    assert glide["references"] == ["refs/swan.png", "refs/city_night.png"]  # characters first, then the place
    assert (glide["cast"], glide["location"]) == (["swan"], "city")
    assert (sleep["cast"], sleep["references"]) == (["swan", "fox"], ["refs/swan.png", "refs/city_night.png"])
    assert (named["references"], named["location"]) == (["refs/swan.png"], None)
    assert planned["day/given"]["image"]["path"] == "refs/takeoff_start.png"


def test_the_edit_instruction_names_the_pictures_then_the_final_prompt(write_story) -> None:
    glide = jobs(write_story(story()))["night/glide"]
    assert glide["keyframe"]["prompt"] == (
        "The first frame of a film shot with the swan from picture 1 and the city from picture 2. "
        + glide["prompt"][0].upper() + glide["prompt"][1:].rstrip(".") + ".")
    assert "wide shot" in glide["prompt"]  # the prompt template added the camera; the instruction does not repeat it


def test_a_keyframe_template_writes_the_instruction(write_story) -> None:
    template = ("keyframes:\n  model: tiny\n  template: \"{{ cast | join(' & ') }} at {{ location }}; "
                "{{ pictures | length }} pictures; {{ camera }}\"\n")
    planned = jobs(write_story(story(keyframes=template)))
    assert planned["night/glide"]["keyframe"]["prompt"] == "swan at city; 2 pictures; wide shot"
    assert planned["day/named"]["keyframe"]["prompt"] == "swan at ; 1 pictures;"


def test_without_keyframes_the_plan_is_what_it_was(write_story, story_dir: Path) -> None:
    # the same film written the 0.1 way: locations as text, no references, no cast
    old = story(keyframes="").replace("{description: a city at night, reference: refs/city_night.png}",
                                      "a city at night")
    old = old.replace("        cast: [swan]\n", "")
    before = jobs(write_story(old, "old.yaml"))
    after = jobs(write_story(story(keyframes=""), "new.yaml"))
    assert all("keyframe" not in job for job in after.values())
    assert {i: (j["kind"], j["key"]) for i, j in after.items()} == {i: (j["kind"], j["key"]) for i, j in before.items()}


def _key_of(write_story, text: str, shot: str = "night/glide") -> tuple[str, str]:
    job = jobs(write_story(text))[shot]
    return job["keyframe"]["key"], job["key"]


def test_keys_change_exactly_when_a_keyframe_input_changes(write_story, story_dir: Path) -> None:
    base = _key_of(write_story, story())
    assert _key_of(write_story, story()) == base  # stable
    assert _key_of(write_story, story().replace("title: Cast", "title: Renamed")) == base  # the title is not an input
    # a different instruction template that writes the same text: same key
    same = "keyframes:\n  model: tiny\n  steps: 2\n  guidance: 1.0\n  seed: 3\n  template: \"{{ 'The first' }}" \
           " frame of a film shot with {{ pictures | join(' and ') }}. {{ prompt[0] | upper }}{{ prompt[1:] }}\"\n"
    assert _key_of(write_story, story(keyframes=same))[0] == base[0]
    changed = {
        "steps": story(keyframes=KEYFRAMES.replace("steps: 2", "steps: 3")),
        "guidance": story(keyframes=KEYFRAMES.replace("guidance: 1.0", "guidance: 2.0")),
        "seed": story(keyframes=KEYFRAMES.replace("seed: 3", "seed: 4")),
        "model": story(keyframes=KEYFRAMES.replace("model: tiny", "model: qwen-image-edit")),
        "prompt": story().replace("glides past", "swims past"),
        "size": story().replace("resolution: 64x64", "resolution: 96x64"),
    }
    for what, text in changed.items():
        keyframe_key, job_key = _key_of(write_story, text)
        assert keyframe_key != base[0], what
        assert job_key != base[1], what  # the video job's key includes its keyframe's
    # the bytes of a reference: the same path, other pixels
    (story_dir / "refs" / "city_night.png").write_bytes((story_dir / "refs" / "swan.png").read_bytes())
    assert _key_of(write_story, story())[0] != base[0]
    # a reference of a shot's cast that another shot does not use leaves that shot alone
    fox_before = jobs(write_story(story()))["day/fox"]["key"]
    shutil.copy(story_dir / "refs" / "takeoff_end.png", story_dir / "refs" / "swan.png")
    assert jobs(write_story(story()))["day/fox"]["key"] == fox_before


def test_a_continued_shot_is_keyed_after_its_keyframed_head(write_story) -> None:
    base = jobs(write_story(story()))["night/dip"]["key"]
    changed = jobs(write_story(story(keyframes=KEYFRAMES.replace("seed: 3", "seed: 9"))))["night/dip"]["key"]
    assert changed != base


CASES = {
    "unknown cast member": (
        ("        cast: [swan]\n  - id: day", "        cast: [swann]\n  - id: day"),
        ["film.yaml:26: night/sleep: unknown character 'swann' in the cast; did you mean 'swan'? "
         "known characters: swan, fox"],
    ),
    "cast member twice": (
        ("        cast: [swan]\n  - id: day", "        cast: [swan, swan]\n  - id: day"),
        ["film.yaml:26: night/sleep: 'swan' is already in the cast; list each character once"],
    ),
    "missing location reference": (
        ("refs/city_night.png", "refs/nope.png"),
        ["film.yaml:9: locations.city: no such file 'refs/nope.png' (paths are relative to the story file)"],
    ),
    "unknown key in a location": (
        ("reference: refs/city_night.png", "referance: refs/city_night.png"),
        ["film.yaml:9: locations.city: unknown key 'referance'; did you mean 'reference'?"],
    ),
    "unknown key in keyframes": (
        ("steps: 2, guidance", "step: 2, guidance"),
        ["film.yaml:4: keyframes: unknown key 'step'; did you mean 'steps'?"],
    ),
    "unknown name in the keyframe template": (
        ("seed: 3}", "seed: 3, template: '{{ promt }}'}"),
        ["film.yaml:4: keyframes.template: unknown name 'promt'; names in scope: camera, cast, location, pictures, "
         "prompt"],
    ),
    "unknown keyframe model": (
        ("model: tiny, steps", "model: qwen-image-edt, steps"),
        ["film.yaml:4: keyframes.model: unknown keyframe model 'qwen-image-edt'; did you mean 'qwen-image-edit'? "
         "use qwen-image-edit, tiny, a hub id (owner/name) or a local folder"],
    ),
    "keyframe template syntax": (
        ("seed: 3}", "seed: 3, template: '{{ prompt '}"),
        ["film.yaml:4: keyframes.template: template syntax error: unexpected end of template, expected 'end of "
         "print statement'."],
    ),
    "empty keyframe instruction": (
        ("seed: 3}", "seed: 3, template: '{{ camera }}'}"),
        ["film.yaml:4: keyframes.template: the edit instruction renders to empty text; use {{ prompt }} in it"],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_user_mistakes_are_one_exact_message(name: str, write_story) -> None:
    (old, new), expected = CASES[name]
    text = story()
    assert old in text
    path = write_story(text.replace(old, new, 1))
    with pytest.raises(StoryError) as caught:
        api.plan(path)
    assert [str(problem) for problem in caught.value.problems] == expected


def test_plan_with_keyframes_imports_nothing_heavy(write_story) -> None:
    path = write_story(story())
    code = (
        "import sys\n"
        "from storyforge import api\n"
        f"api.validate({str(path)!r})\n"
        f"api.plan({str(path)!r}).dumps()\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'diffusers', 'transformers', 'moviepy'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_schema_knows_cast_locations_and_keyframes() -> None:
    schema = api.schema()
    definitions = schema["$defs"]
    assert set(definitions["Keyframes"]["properties"]) == {"model", "steps", "guidance", "seed", "takes", "template"}
    assert "cast" in definitions["Shot"]["properties"]
    location = definitions["Location"]["anyOf"]
    assert location[0]["type"] == "string" and set(location[1]["properties"]) == {"description", "reference"}


def test_more_than_three_references_for_qwen_is_a_warning(write_story) -> None:
    text = story(keyframes="keyframes: {}\n")
    text = text.replace("  fox: a red fox\n", "  fox: {description: a red fox, reference: refs/takeoff_start.png}\n"
                        "  owl: {description: an owl, reference: refs/takeoff_end.png}\n")
    text = text.replace("        cast: [swan]\n  - id: day", "        cast: [swan, owl]\n  - id: day")
    plan = api.plan(write_story(text))
    assert [str(w) for w in plan.warnings] == [
        "film.yaml:24: night/sleep: its keyframe composes 4 reference images, but Qwen-Image-Edit-2509 is made "
        "for 1 to 3; keep the cast of this shot smaller"]


def test_a_locked_prompt_is_what_the_keyframe_is_composed_from(write_story) -> None:
    path = write_story(story())
    api.enhance(path)  # no LLM: the lock holds the template prompts
    lock = path.with_name("film.lock.json")
    data = json.loads(lock.read_text())
    data["shots"]["night/glide"]["prompt"] = "a swan, locked by hand"
    lock.write_text(json.dumps(data))
    glide = jobs(path)["night/glide"]
    assert glide["prompt"] == "a swan, locked by hand"
    assert glide["keyframe"]["prompt"] == ("The first frame of a film shot with the swan from picture 1 and the city "
                                           "from picture 2. A swan, locked by hand. Wide shot.")


def test_a_keyframed_shot_gets_image_to_video_defaults_unless_set(write_story) -> None:
    planned = jobs(write_story(story()))
    assert [(planned[i]["settings"]["guidance"], planned[i]["settings"]["shift"])
            for i in ("night/glide", "day/fox")] == [(5.0, 5.0), (6.0, 8.0)]
    text = story().replace("overlap_frames: 5}", "overlap_frames: 5, guidance: 7.0}")
    assert jobs(write_story(text))["night/glide"]["settings"]["guidance"] == 7.0


def test_a_damaged_keyframe_in_the_cache_is_made_again(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    from storyforge.keyframes import KeyframeStore

    store = KeyframeStore(tmp_path)
    path = store.put("ab" + "0" * 62, np.zeros((16, 16, 3), np.uint8))
    assert store.get("ab" + "0" * 62) == path
    path.write_bytes(path.read_bytes()[:20])  # cut short
    assert store.get("ab" + "0" * 62) is None and not path.exists()


def test_the_schema_accepts_what_the_loader_accepts_for_cast_and_keyframes(write_story) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    validator = jsonschema.Draft202012Validator(api.schema())
    text = story().replace("  lake: a still lake\n", "  lake: a still lake\n  dock: {description: a dock}\n")
    assert api.validate(write_story(text))
    assert [e.message for e in validator.iter_errors(yaml.safe_load(text))] == []
    wrong = yaml.safe_load(story(keyframes="keyframes: {model: tiny, steps: 0}\n"))
    assert [list(e.absolute_path) for e in validator.iter_errors(wrong)] == [["keyframes"]]
    with pytest.raises(StoryError):
        api.validate(write_story(story(keyframes="keyframes: {model: tiny, steps: 0}\n")))


OUTSIDE = ("'{written}' is outside the story root {root} (the folder holding .git, else the story file's folder); "
           "move the file inside it, or allow its folder with --allow-path DIR (or STORYFORGE_ALLOW_PATH)")


@pytest.mark.parametrize("key", ["location reference", "keyframe model folder"])
def test_paths_of_cast_and_keyframes_stay_inside_the_story_root(key: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "stories").mkdir()
    shutil.copy(Path(__file__).parents[2] / "examples" / "stories" / "refs" / "swan.png", tmp_path / "secret.png")
    (tmp_path / "weights").mkdir()
    monkeypatch.chdir(root / "stories")
    monkeypatch.delenv("STORYFORGE_ALLOW_PATH", raising=False)
    if key == "location reference":
        extra, written, line, where = "locations:\n  lake: {description: a lake, reference: ../../secret.png}\n", \
            "../../secret.png", 4, "locations.lake"
    else:
        extra, written, line, where = "keyframes: {model: ../../weights}\n", "../../weights", 3, "keyframes.model"
    path = root / "stories" / "film.yaml"
    path.write_text("storyforge: 1\ntitle: T\n" + extra + "scenes:\n  - id: s\n    location: lake\n    shots:\n"
                    "      - {id: a, prompt: a lake, duration: 2s}\n", encoding="utf-8")
    with pytest.raises(StoryError) as caught:
        api.plan(path)
    assert [str(p) for p in caught.value.problems] == [
        f"film.yaml:{line}: {where}: {OUTSIDE.format(written=written, root=root)}"]
