"""LLM prompt expansion: the real from_pretrained + chat template + generate path on tiny offline Qwen2 models."""

from __future__ import annotations

import gc
import json
import sys
import weakref
from pathlib import Path

import pytest

from storyforge import api
from storyforge.enhance import lock, qwen
from storyforge.errors import MissingExtra, StoryforgeError

STORY = """\
storyforge: 1
title: Fox
style: soft light
characters:
  fox: a red fox
scenes:
  - id: s
    shots:
      - id: a
        prompt: "{{ characters.fox }} runs"
        duration: 4s
      - id: b
        prompt: the fox stops
        duration: 2s
        transition: continue
      - id: c
        prompt: the fox looks up
        image: first.png
        duration: 97f
"""
# What the parrot model says, whatever it is asked: a label, quotes and a line break for post-processing to remove.
ANSWER = 'Caption: "Wide shot, low angle; a small red fox runs through misty pines at dawn\rin soft golden light."'
CAPTION = "Wide shot, low angle; a small red fox runs through misty pines at dawn in soft golden light."


# -- post-processing (no model needed) -------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "clean"), [
    ("  A fox runs.  ", "A fox runs."),
    ("<think>the user wants a caption</think>\n\nA fox runs\nthrough the snow.", "A fox runs through the snow."),
    ('Caption: "A fox runs."', "A fox runs."),
    ("**Enhanced prompt:** A fox runs.", "A fox runs."),
    ("- A fox runs.\n- It is cold.", "A fox runs. It is cold."),
    ("A {{ fox }} runs {% here %}.", "A fox runs here ."),
    ("“A fox runs.”", "A fox runs."),
    ("\n\n\n", ""),
])
def test_postprocess_gives_one_clean_paragraph(raw: str, clean: str) -> None:
    assert qwen.postprocess(raw) == clean


def test_postprocess_limits_the_length_at_a_sentence_end() -> None:
    raw = "A fox runs through the snow. " * 100
    text = qwen.postprocess(raw, max_chars=100)
    assert text == "A fox runs through the snow. A fox runs through the snow. A fox runs through the snow."
    assert qwen.postprocess("word " * 100, max_chars=30) == "word word word word word word."


@pytest.mark.parametrize(("text", "reason"), [
    ("", "the model returned nothing"),
    ("A fox", "the model returned too little text ('A fox')"),
    ("一只红色的狐狸在雪地里奔跑，阳光明媚。", "the model did not answer in English"),
    ("shot shot shot shot shot shot shot shot shot", "the model repeated itself"),
    ("A red fox runs through the snow.", None),
])
def test_unusable_answers(text: str, reason: str | None) -> None:
    assert qwen.unusable(text) == reason


def test_the_user_message_says_when_a_shot_starts_from_an_image_or_continues() -> None:
    assert qwen.user_message(qwen.Request("s/a", "a fox runs")) == "Shot description: a fox runs\nWrite the caption."
    message = qwen.user_message(qwen.Request("s/c", "a fox", starts_from_image=True, continues=True))
    assert message == (f"Shot description: a fox\n{qwen.FIRST_FRAME_NOTE}\n{qwen.CONTINUE_NOTE}\nWrite the caption.")


def test_a_model_folder_is_hashed_and_a_hub_id_is_kept(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    (tmp_path / "m" / ".cache").mkdir()
    (tmp_path / "m" / ".cache" / "x").write_text("ignored")
    ref = qwen.locate("m", tmp_path)
    assert (ref.name, ref.folder, ref.sha256) == ("m", (tmp_path / "m").resolve(), qwen.folder_sha256(tmp_path / "m"))
    (tmp_path / "m" / ".cache" / "x").write_text("still ignored")
    assert qwen.folder_sha256(tmp_path / "m") == ref.sha256
    (tmp_path / "m" / "config.json").write_text('{"changed": 1}')
    assert qwen.folder_sha256(tmp_path / "m") != ref.sha256
    assert qwen.locate("Qwen/Qwen2.5-7B-Instruct", tmp_path) == qwen.ModelRef("Qwen/Qwen2.5-7B-Instruct", None, None)


# -- the real path, on tiny models built offline ----------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Qwen2: it answers with line breaks, so every shot falls back to its template prompt."""
    return qwen.build_tiny(tmp_path_factory.mktemp("llm") / "tiny")


@pytest.fixture(scope="session")
def parrot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2 whose weights make greedy decoding say ANSWER and stop, whatever it is asked (tests/parrot.py)."""
    from parrot import build_parrot

    return build_parrot(tmp_path_factory.mktemp("llm") / "parrot", ANSWER, qwen.messages(qwen.Request("x", "y")))


@pytest.fixture
def story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (960, 544), (200, 120, 40)).save(tmp_path / "first.png")
    path = tmp_path / "film.yaml"
    path.write_text(STORY, "utf-8")
    return path


@pytest.mark.torch
def test_enhance_with_an_llm_locks_its_captions_and_plan_uses_them(story: Path, parrot: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    progress: list[tuple[int, int]] = []
    report = api.enhance(story, llm=str(parrot), on_progress=lambda done, total: progress.append((done, total)))
    assert (report.updated, report.fallbacks, report.llm, report.warnings) == (("s/a", "s/b", "s/c"), (),
                                                                               str(parrot), ())
    assert progress == [(0, 3), (3, 3)]
    shots = json.loads(lock.lock_path(story).read_text("utf-8"))["shots"]
    unlocked = api.plan(story, use_lock=False)
    for job in unlocked.jobs:
        assert shots[job.id] == {
            "kind": job.kind, "prompt": CAPTION, "source": "llm", "template_prompt": job.template_prompt,
            "template": {"name": "plain", "sha256": shots[job.id]["template"]["sha256"]},
            "llm": {"model": str(parrot), "sha256": qwen.folder_sha256(parrot), "seed": 0, "max_new_tokens": 256,
                    "instructions_sha256": qwen.INSTRUCTIONS_SHA256},
        }
    first = api.plan(story)
    assert [job.prompt for job in first.jobs] == [CAPTION] * 3 and first.warnings == ()
    assert api.plan(story).dumps() == first.dumps()  # byte-identical

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing changed: the model must not be loaded")

    monkeypatch.setattr(qwen.Expander, "load", no_load)
    again = api.enhance(story, llm=str(parrot))
    assert (again.updated, again.changed) == ((), False)


@pytest.mark.torch
def test_the_story_can_name_a_model_folder_beside_it(story: Path, parrot: Path) -> None:
    (story.parent / "models").mkdir()
    (story.parent / "models" / "parrot").symlink_to(parrot, target_is_directory=True)
    story.write_text(STORY.replace("storyforge: 1\n", "storyforge: 1\nenhance:\n  llm: models/parrot\n"), "utf-8")
    assert api.enhance(story).llm == "models/parrot"
    plan = api.plan(story)
    assert ([job.prompt for job in plan.jobs], plan.warnings) == ([CAPTION] * 3, ())


@pytest.mark.torch
def test_the_chat_template_is_applied_and_image_shots_describe_the_first_frame(parrot: Path) -> None:
    requests = [qwen.Request("s/a", "a fox runs"), qwen.Request("s/c", "a fox looks up", starts_from_image=True)]
    with qwen.Expander.load(qwen.locate(str(parrot), Path.cwd())) as expander:
        results = expander.expand(requests, seed=0, max_new_tokens=64, batch_size=2)
    assert [r.chat for r in results] == [
        f"<|im_start|>system\n{qwen.SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{qwen.user_message(request)}"
        "<|im_end|>\n<|im_start|>assistant\n" for request in requests]
    assert qwen.FIRST_FRAME_NOTE in results[1].chat and qwen.FIRST_FRAME_NOTE not in results[0].chat
    assert [(r.raw, r.prompt, r.reason) for r in results] == [(ANSWER, CAPTION, None)] * 2


@pytest.mark.torch
def test_a_model_that_says_nothing_usable_falls_back_to_the_template(story: Path, tiny: Path) -> None:
    story.write_text(STORY.replace("storyforge: 1\n", "storyforge: 1\nenhance:\n  max_new_tokens: 12\n"), "utf-8")
    report = api.enhance(story, llm=str(tiny))
    assert report.fallbacks == ("s/a", "s/b", "s/c")
    assert [str(w) for w in report.warnings] == [
        f"film.yaml:{line}: {shot}: the LLM gave nothing usable (the model returned nothing); locked the template "
        "prompt instead" for line, shot in ((11, "s/a"), (14, "s/b"), (18, "s/c"))]
    shots = json.loads(lock.lock_path(story).read_text("utf-8"))["shots"]
    for entry in shots.values():
        assert entry["source"] == "fallback" and entry["prompt"] == entry["template_prompt"]
        assert entry["note"] == "the model returned nothing; the template prompt is locked"
    plan = api.plan(story)
    assert [job.prompt for job in plan.jobs] == [job.template_prompt for job in plan.jobs] and plan.warnings == ()


@pytest.mark.torch
def test_generation_is_bounded_and_deterministic(tiny: Path) -> None:
    requests = [qwen.Request(f"s/{i}", f"a fox number {i} runs") for i in range(5)]
    with qwen.Expander.load(qwen.locate(str(tiny), Path.cwd())) as expander:
        first = expander.expand(requests, seed=3, max_new_tokens=12, batch_size=2)
        second = expander.expand(requests, seed=3, max_new_tokens=12, batch_size=2)
    assert all(0 < r.new_tokens <= 12 for r in first)
    assert first == second


@pytest.mark.torch
def test_remote_code_is_never_trusted(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    seen: list[dict[str, object]] = []
    for auto in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        original = auto.from_pretrained.__func__

        def spy(cls: type, *args: object, _original=original, **kwargs: object) -> object:
            seen.append(kwargs)
            return _original(cls, *args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", classmethod(spy))
    qwen.Expander.load(qwen.locate(str(tiny), Path.cwd())).close()
    assert len(seen) == 2 and all(kwargs["trust_remote_code"] is False for kwargs in seen)


@pytest.mark.torch
def test_the_model_is_freed_when_the_expander_closes(tiny: Path) -> None:
    with qwen.Expander.load(qwen.locate(str(tiny), Path.cwd())) as expander:
        model = weakref.ref(expander.model)
        expander.expand([qwen.Request("s/a", "a fox")], seed=0, max_new_tokens=2)
    gc.collect()
    assert model() is None and expander.model is None


@pytest.mark.torch
def test_a_model_without_a_chat_template_is_refused(tiny: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "base"
    shutil.copytree(tiny, folder)
    (folder / "chat_template.jinja").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(StoryforgeError) as caught:
        qwen.Expander.load(qwen.locate(str(folder), Path.cwd()))
    assert str(caught.value) == (f"the model '{folder}' has no chat template; use an instruct model such as "
                                 "Qwen/Qwen2.5-7B-Instruct")


@pytest.mark.torch
def test_without_transformers_the_error_says_how_to_install_it(story: Path, tiny: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(MissingExtra) as caught:
        api.enhance(story, llm=str(tiny))
    assert str(caught.value) == ("Prompt expansion with an LLM (enhance.llm / --llm) needs the Python package "
                                 "'transformers', which is not installed. Install it with: pip install "
                                 "'storyforge[llm]'")
    assert not lock.lock_path(story).exists()
