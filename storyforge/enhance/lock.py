"""The lock file beside a story (film.yaml -> film.lock.json): final prompts pinned, with what produced them,
and the take picked for each shot that has several."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from storyforge.plan.model import Job
from storyforge.story.models import Enhance

LOCK_FORMAT = 1
MAX_LOCK_BYTES = 50_000_000
MAX_PROMPT_CHARS = 20_000
_SYNTAX = ("{{", "{%", "{#")


def lock_path(story: Path) -> Path:
    """film.yaml -> film.lock.json, beside the story."""
    return story.with_name(story.stem + ".lock.json")


# -- the file ------------------------------------------------------------------------------------------------


def dumps(story: Path, shots: dict[str, dict[str, Any]], picks: dict[str, int] | None = None) -> str:
    """The lock's text: sorted keys, two-space indent, a trailing newline, so it diffs well in review.
    `picks` appear only when there are some: a lock without picks reads as it always did."""
    data: dict[str, Any] = {"storyforge_lock": LOCK_FORMAT, "story": story.name, "shots": shots}
    if picks:
        data["picks"] = picks
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def read_lock(story: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the entries by shot id, None), (None, why the file is unusable), or (None, None) when there is none."""
    path = lock_path(story)
    if not path.is_file():
        return None, None
    from storyforge.story.root import StoryRoot

    if not StoryRoot.of(story).contains(path.resolve()):  # a link out of the story's repository
        return None, "it is a link to a file outside the story root"
    if path.stat().st_size > MAX_LOCK_BYTES:
        return None, f"it is larger than {MAX_LOCK_BYTES // 1_000_000} MB"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"it is not JSON ({error})"
    except RecursionError:
        return None, "it is not JSON a lock can hold (nested too deeply)"
    if not isinstance(data, dict) or data.get("storyforge_lock") != LOCK_FORMAT:
        return None, f"it is not a storyforge lock of format {LOCK_FORMAT}"
    shots = data.get("shots")
    if not isinstance(shots, dict):
        return None, "it has no 'shots'"
    return shots, None


def read_picks(story: Path) -> dict[str, int]:
    """The picked take of each shot (shot id -> take number) in the lock; {} when there is none or no lock."""
    path = lock_path(story)
    shots, problem = read_lock(story)
    if shots is None:
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    picks = data.get("picks")
    if not isinstance(picks, dict):
        return {}
    return {shot: take for shot, take in picks.items()
            if isinstance(shot, str) and isinstance(take, int) and not isinstance(take, bool) and take >= 1}


def write_lock(story: Path, shots: dict[str, dict[str, Any]], picks: dict[str, int] | None = None) -> bool:
    """Write the lock beside the story, atomically (a temporary file renamed over it); False when unchanged.
    `picks=None` keeps the picks the lock holds now (enhance rewrites prompts, never choices)."""
    path = lock_path(story)
    text = dumps(story, shots, read_picks(story) if picks is None else picks)
    if path.is_file() and path.read_text(encoding="utf-8", errors="replace") == text:
        return False
    from storyforge.atomic import check_replaceable

    check_replaceable(path)  # a FIFO, a device or a folder named film.lock.json stays as it is
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


# -- matching ----------------------------------------------------------------------------------------------


def llm_record(name: str, sha256: str | None, enhance: Enhance) -> dict[str, Any]:
    """What produced an LLM prompt, as stored in an entry; equal records give equal prompts."""
    from storyforge.enhance.qwen import INSTRUCTIONS_SHA256

    return {"model": name, "sha256": sha256, "seed": enhance.seed, "max_new_tokens": enhance.max_new_tokens,
            "instructions_sha256": INSTRUCTIONS_SHA256}


def entry_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "its entry is not a mapping"
    prompt = entry.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        return "its locked prompt is empty or not text"
    if any(mark in prompt for mark in _SYNTAX):
        return "its locked prompt contains template syntax"
    if not isinstance(entry.get("template_prompt"), str) or not isinstance(entry.get("llm"), (dict, type(None))):
        return "its entry is incomplete"
    return None


def stale_reason(entry: Any, job: Job, enhance: Enhance) -> str | None:
    """Why a lock entry no longer fits a job (as planned from the story), or None when it does.

    The story's `enhance.llm`, when set, must be the model that wrote the entry; when it is not set, the lock
    decides (`storyforge enhance --llm M` writes prompts a plan then uses). A model folder's hash is checked by
    `enhance`, not here: planning never reads model files."""
    from storyforge.enhance.qwen import INSTRUCTIONS_SHA256

    problem = entry_problem(entry)
    if problem:
        return problem
    if entry["template_prompt"] != job.template_prompt:
        return "the shot's prompt changed since the lock was written"
    if entry.get("kind") != job.kind:
        return f"the shot changed from {entry.get('kind')} to {job.kind}"
    llm = entry["llm"]
    if enhance.llm and (llm is None or llm.get("model") != enhance.llm):
        written = f"with {llm.get('model')}" if llm else "without an LLM"
        return f"the story asks for {enhance.llm} but the lock was written {written}"
    if llm is not None:
        if (llm.get("seed"), llm.get("max_new_tokens")) != (enhance.seed, enhance.max_new_tokens):
            return "enhance.seed or enhance.max_new_tokens changed"
        if llm.get("instructions_sha256") != INSTRUCTIONS_SHA256:
            return "storyforge's instructions to the LLM changed"
    return None


