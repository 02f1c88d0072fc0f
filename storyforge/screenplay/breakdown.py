"""`import --llm`: long action paragraphs broken into shots with camera notes by a local instruct model.

The model is loaded as `enhance` loads it (storyforge.enhance.qwen: a local folder or a hub id already downloaded
first, never remote code) and freed afterwards. An answer that is not a usable list of shots leaves the paragraph
as one shot, with a warning: the import never depends on what a model happens to say.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storyforge.screenplay.script import Script
from storyforge.screenplay.to_story import Built, Geometry, Ids, duration_frames, safe_text, shot_id_for, unique

LONG_WORDS = 25  # about 8 seconds of action: longer paragraphs are broken down
MAX_SHOTS = 6
MAX_NEW_TOKENS = 256
SYSTEM_PROMPT = (
    "You are a film director breaking one action paragraph of a screenplay into shots. Reply with 2 to 4 lines, "
    "one line per shot, each written as: camera: what we see. The camera part names the type of shot and any "
    "camera movement (for example 'wide shot, slow push in' or 'close-up'); the second part is one plain sentence "
    "of what happens, using only what the paragraph says. No numbers, headings or other text."
)
_SPLIT = re.compile(r"\s*(?::|\||—|–| - )\s*")
_LIST_MARK = re.compile(r"^\s*(?:[-*•]+|\d+[.)]|shot\s*\d+\s*[:.)-])\s*", re.IGNORECASE)


def conversation(heading: str, action: str) -> list[dict[str, str]]:
    scene = f"Scene: {heading}\n" if heading else ""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"{scene}Action: {action}\nWrite the shots."}]


def parse_shots(answer: str) -> list[tuple[str, str]] | None:
    """(camera, action) per line of the model's answer, or None when it is not a list of 2 or more shots."""
    shots = []
    for raw in answer.splitlines():
        line = _LIST_MARK.sub("", raw.replace("**", "")).strip()
        if not line:
            continue
        parts = _SPLIT.split(line, maxsplit=1)
        if len(parts) != 2:
            return None
        camera, action = (safe_text(part).strip(" .\"'") for part in parts)
        if not camera or len(camera.split()) > 8 or len(action.split()) < 2 or not re.search("[A-Za-z]", action):
            return None
        shots.append((camera, action.rstrip(".") + "."))
    return shots if 2 <= len(shots) <= MAX_SHOTS else None


def break_down(built: Built, script: Script, model: str, *, base: Path,
               on_progress: Callable[[int, int], None] | None = None, geometry: Geometry | None = None) -> Built:
    """`built` with each long action paragraph split into the shots the model proposes."""
    from storyforge.enhance import qwen

    geometry = geometry or Geometry.default()
    long: list[tuple[int, int]] = []  # (scene index, shot index)
    for s, scene in enumerate(built.data["scenes"]):
        for k, shot in enumerate(scene["shots"]):
            origin = built.origins["shots"][f"{scene['id']}/{shot['id']}"]
            if shot["prompt"] == origin["text"] and len(shot["prompt"].split()) > LONG_WORDS:
                long.append((s, k))
    if not long:
        return built
    conversations = []
    for s, k in long:
        scene = built.data["scenes"][s]
        heading = built.origins["scenes"][scene["id"]]["heading"]
        conversations.append(conversation(heading, scene["shots"][k]["prompt"]))
    with qwen.Expander.load(qwen.locate(model, base)) as expander:
        answers = expander.complete(conversations, seed=0, max_new_tokens=MAX_NEW_TOKENS, on_progress=on_progress)
    plans = {(s, k): parse_shots(raw) for (s, k), (raw, _, _) in zip(long, answers, strict=True)}
    for (s, k), shots in plans.items():
        if shots is None:
            scene = built.data["scenes"][s]
            origin = built.origins["shots"][f"{scene['id']}/{scene['shots'][k]['id']}"]
            built.warnings.append(f"{script.file}:{origin['line']}: the LLM gave no usable shot list for this "
                                  "paragraph; it stays one shot")
    for s, scene in enumerate(built.data["scenes"]):
        if not any(plans.get((s, k)) for k in range(len(scene["shots"]))):
            continue
        used: set[str] = Ids()
        shots: list[dict[str, Any]] = []
        for k, shot in enumerate(scene["shots"]):
            key = f"{scene['id']}/{shot['id']}"
            origin = built.origins["shots"].pop(key)
            parts = plans.get((s, k))
            if not parts:
                shot = {**shot, "id": unique(shot["id"], used)}
                built.origins["shots"][f"{scene['id']}/{shot['id']}"] = origin
                shots.append(shot)
                continue
            for part, (camera, action) in enumerate(parts):
                piece = _piece(shot, camera, action, first=part == 0, last=part == len(parts) - 1,
                               geometry=geometry, used=used)
                built.origins["shots"][f"{scene['id']}/{piece['id']}"] = {**origin, "part": part}
                shots.append(piece)
        scene["shots"] = shots
    return built


def _piece(shot: dict[str, Any], camera: str, action: str, *, first: bool, last: bool, geometry: Geometry,
           used: set[str]) -> dict[str, Any]:
    """One shot of a broken-down paragraph: the transition stays on the first, the dialogue goes to the last."""
    dialogue = shot.get("dialogue", []) if last else []
    piece: dict[str, Any] = {"id": unique(shot_id_for(action), used), "prompt": action, "camera": camera,
                             "duration": f"{duration_frames(action, [d['line'] for d in dialogue], geometry)}f"}
    if first and "transition" in shot:
        piece["transition"] = shot["transition"]
    if last and shot.get("cast"):
        piece["cast"] = shot["cast"]
    if dialogue:
        piece["dialogue"] = dialogue
    return piece
