"""Re-import: a three-way merge of what storyforge imported last time, what the script says now, and the story as
the writer has edited it since.

The rule for every field of every scene, shot, character and location: when the story still holds what was
imported, the script's new value is taken; when the writer changed it, the writer's value stays (and a conflict is
reported when the script changed it too). Scenes and shots are matched by their source (heading, action text),
in order, so their ids survive edits to the script above them and a reworded action line stays the same shot.
Scenes and shots the script dropped are removed only when the writer never touched them; anything the writer
added by hand stays where it was.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from storyforge.screenplay.to_story import Built, Ids, unique

_MISSING = object()
SIMILAR = 0.6  # an action paragraph with this share of its words kept, in order, is still the same shot
_WORD = re.compile(r"\w+")
MAX_COMPARISONS = 10_000  # text comparisons within one changed run of scenes or shots


@dataclass
class Merge:
    """The merged story data, its origins (the new import record), and what happened."""

    data: dict[str, Any]
    origins: dict[str, dict[str, Any]]
    imported: dict[str, Any]  # the script's story data under the merged ids: the next merge's base
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # edited by hand, gone from the script: kept
    conflicts: list[str] = field(default_factory=list)  # changed in both: the writer's value kept


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _pairs(old: list[str], new: list[str], similar: Callable[[str, str], bool]) -> dict[int, int]:
    """new index -> old index: equal runs in order, then changed runs paired place by place when similar."""
    matched: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            matched.update({j1 + k: i1 + k for k in range(i2 - i1)})
        elif tag == "replace" and (i2 - i1) * (j2 - j1) > MAX_COMPARISONS:
            for k in range(min(i2 - i1, j2 - j1)):  # a huge rewrite: place by place
                if similar(old[i1 + k], new[j1 + k]):
                    matched[j1 + k] = i1 + k
        elif tag == "replace":  # in order, each new item to the first old one it resembles
            at = i1
            for j in range(j1, j2):
                found = next((i for i in range(at, i2) if similar(old[i], new[j])), None)
                if found is not None:
                    matched[j] = found
                    at = found + 1
    return matched


def _similar_text(a: str, b: str) -> bool:
    """Whether two action paragraphs share most of their words, in order (letters alone match by chance)."""
    matcher = difflib.SequenceMatcher(None, _WORD.findall(a.lower()), _WORD.findall(b.lower()), autojunk=False)
    return matcher.quick_ratio() >= SIMILAR and matcher.ratio() >= SIMILAR


class _Merger:
    def __init__(self, base: dict[str, Any], base_origins: dict[str, dict[str, Any]], new: Built,
                 mine: dict[str, Any]):
        self.base, self.base_origins, self.new, self.mine = base, base_origins, new, mine
        self.result = Merge({}, {"scenes": {}, "shots": {}}, {})

    def fields(self, base: dict[str, Any] | None, new: dict[str, Any], mine: dict[str, Any], label: str,
               skip: tuple[str, ...] = ()) -> dict[str, Any]:
        """One record, field by field: the script's value unless the writer changed the field."""
        base = base or {}
        out: dict[str, Any] = {}
        for key in [*new, *(k for k in mine if k not in new), *(k for k in base if k not in new and k not in mine)]:
            if key in skip or key in out:
                continue
            was, now, theirs = base.get(key, _MISSING), new.get(key, _MISSING), mine.get(key, _MISSING)
            if _same(theirs, was):
                value = now
            else:
                value = theirs
                if not _same(now, was):
                    self.result.conflicts.append(f"{label}.{key}: kept your edit; the script now gives "
                                                 f"{_short(now)}")
            if value is not _MISSING:
                out[key] = value
        return out

    def run(self) -> Merge:
        base, new, mine = self.base, self.new.data, self.mine
        top = self.fields(base, new, mine, "(top)", skip=("characters", "locations", "scenes"))
        scenes = self.scenes()
        characters = self.names("characters", scenes)
        locations = self.names("locations", scenes)
        data = {key: value for key, value in top.items()}
        if characters:
            data["characters"] = characters
        if locations:
            data["locations"] = locations
        data["scenes"] = scenes
        self.result.data = data
        return self.result

    # -- scenes and shots ----------------------------------------------------------------------------------------
    def scenes(self) -> list[dict[str, Any]]:
        base_scenes = [s for s in self.base.get("scenes", []) if isinstance(s, dict)]
        mine_scenes = [s for s in self.mine.get("scenes", []) if isinstance(s, dict)]
        mine_by_id = {s.get("id"): s for s in mine_scenes}
        base_by_id = {s.get("id"): s for s in base_scenes}
        new_scenes = self.new.data["scenes"]
        new_origins = self.new.origins
        old_keys = [self._heading(self.base_origins["scenes"].get(s.get("id"), {})) for s in base_scenes]
        new_keys = [self._heading(new_origins["scenes"][s["id"]]) for s in new_scenes]
        pairs = _pairs(old_keys, new_keys, lambda a, b: True)
        used = Ids({s.get("id") for s in mine_scenes} | set(base_by_id))
        out: list[dict[str, Any]] = []
        imported: list[dict[str, Any]] = []
        for j, fresh in enumerate(new_scenes):
            origin = new_origins["scenes"][fresh["id"]]
            if j in pairs:
                scene_id = base_scenes[pairs[j]]["id"]
            else:
                scene_id = unique(fresh["id"], used)
                self.result.added.append(f"scene {scene_id} (script line {origin['line']})")
            self.result.origins["scenes"][scene_id] = origin
            shots, shots_imported = self.shots(scene_id, fresh, base_by_id.get(scene_id) if j in pairs else None,
                                               mine_by_id.get(scene_id) if j in pairs else None)
            imported.append({**fresh, "id": scene_id, "shots": shots_imported})
            if j in pairs and scene_id not in mine_by_id:
                self.result.kept.append(f"scene {scene_id}: you deleted it from the story; not added back")
                continue
            mine = mine_by_id.get(scene_id, {}) if j in pairs else {}
            merged = self.fields(base_by_id.get(scene_id) if j in pairs else None, {**fresh, "id": scene_id},
                                 mine, scene_id, skip=("shots",))
            merged["shots"] = shots
            out.append(merged)
        self.result.imported = {**self.new.data, "scenes": imported}
        paired_old = {base_scenes[i]["id"] for i in pairs.values()}
        for gone in base_scenes:  # the edited ones are kept by _with_kept
            if gone["id"] not in paired_old and gone["id"] in mine_by_id and _same(mine_by_id[gone["id"]], gone):
                self.result.removed.append(f"scene {gone['id']}: the script no longer has it")
        return self._with_kept(out, mine_scenes, base_by_id, paired_old, "scene")

    def shots(self, scene_id: str, fresh: dict[str, Any], base: dict[str, Any] | None,
              mine: dict[str, Any] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The scene's merged shots and the script's shots under the merged ids."""
        base_shots = [s for s in (base or {}).get("shots", []) if isinstance(s, dict)]
        mine_shots = [s for s in (mine or {}).get("shots", []) if isinstance(s, dict)]
        mine_by_id = {s.get("id"): s for s in mine_shots}
        base_by_id = {s.get("id"): s for s in base_shots}
        old_keys = [self._text(self.base_origins["shots"].get(f"{scene_id}/{s.get('id')}", {})) for s in base_shots]
        new_keys = [self._text(self.new.origins["shots"][f"{fresh['id']}/{s['id']}"]) for s in fresh["shots"]]
        pairs = _pairs(old_keys, new_keys, _similar_text)
        used = Ids(set(mine_by_id) | set(base_by_id))
        out: list[dict[str, Any]] = []
        imported: list[dict[str, Any]] = []
        for j, shot in enumerate(fresh["shots"]):
            origin = self.new.origins["shots"][f"{fresh['id']}/{shot['id']}"]
            if j in pairs:
                shot_id = base_shots[pairs[j]]["id"]
            else:
                shot_id = unique(shot["id"], used)
                if base is not None:
                    self.result.added.append(f"shot {scene_id}/{shot_id} (script line {origin['line']})")
            self.result.origins["shots"][f"{scene_id}/{shot_id}"] = origin
            shot = {**shot, "id": shot_id}
            imported.append(shot)
            if j in pairs and shot_id not in mine_by_id:
                if mine is not None:
                    self.result.kept.append(f"shot {scene_id}/{shot_id}: you deleted it from the story; not "
                                            "added back")
                continue
            out.append(self.fields(base_by_id.get(shot_id) if j in pairs else None, shot,
                                   mine_by_id.get(shot_id, {}) if j in pairs else {}, f"{scene_id}/{shot_id}"))
        paired_old = {base_shots[i]["id"] for i in pairs.values()}
        for gone in base_shots:
            if gone["id"] not in paired_old and gone["id"] in mine_by_id and _same(mine_by_id[gone["id"]], gone):
                self.result.removed.append(f"shot {scene_id}/{gone['id']}: the script no longer has it")
        return self._with_kept(out, mine_shots, base_by_id, paired_old, f"shot {scene_id}/"), imported

    def _with_kept(self, out: list[dict[str, Any]], mine: list[dict[str, Any]], base_by_id: dict[Any, Any],
                   paired_old: set[Any], label: str) -> list[dict[str, Any]]:
        """`out` with the writer's own records and the edited ones the script dropped, each after the record it
        followed in the story."""
        placed = {record.get("id") for record in out}
        previous: Any = None
        for record in mine:
            rid = record.get("id")
            if rid in placed:
                previous = rid
                continue
            own = rid not in base_by_id
            edited = not own and rid not in paired_old and not _same(record, base_by_id[rid])
            if not (own or edited):  # imported, untouched, and gone from the script (or still in it): dropped
                continue
            if edited:
                prefix = label if label.endswith("/") else label + " "
                self.result.kept.append(f"{prefix}{rid}: the script no longer has it, but you edited it; kept")
            at = next((k + 1 for k, r in enumerate(out) if r.get("id") == previous), 0) if previous is not None else 0
            out.insert(at, record)
            placed.add(rid)
            previous = rid
        return out

    # -- characters and locations --------------------------------------------------------------------------------
    def names(self, kind: str, scenes: list[dict[str, Any]]) -> dict[str, Any]:
        base = self.base.get(kind) or {}
        new = self.new.data.get(kind) or {}
        mine = self.mine.get(kind) or {}
        if not isinstance(mine, dict):
            return mine
        used = _used(kind, scenes)
        out: dict[str, Any] = {}
        for key in [*new, *(k for k in mine if k not in new)]:
            was, now, theirs = base.get(key, _MISSING), new.get(key, _MISSING), mine.get(key, _MISSING)
            if theirs is _MISSING:
                if was is _MISSING or key in used:
                    out[key] = now  # new in the script, or needed again
                continue
            if now is _MISSING and _same(theirs, was) and key not in used:
                continue  # gone from the script, never edited, no longer used
            if _same(theirs, was):
                out[key] = now if now is not _MISSING else theirs
            else:
                out[key] = theirs
                if now is not _MISSING and not _same(now, was):
                    self.result.conflicts.append(f"{kind}.{key}: kept your edit; the script now gives {_short(now)}")
        return out

    @staticmethod
    def _heading(origin: dict[str, Any]) -> str:
        return " ".join(str(origin.get("heading", "")).upper().split())

    @staticmethod
    def _text(origin: dict[str, Any]) -> str:
        return f"{origin.get('text', '')}\0{origin.get('part', 0)}"


def _used(kind: str, scenes: list[dict[str, Any]]) -> set[str]:
    """Characters (cast and speakers) or locations the scenes name."""
    names: set[str] = set()
    for scene in scenes:
        if kind == "locations" and isinstance(scene.get("location"), str):
            names.add(scene["location"])
        for shot in scene.get("shots", []) if isinstance(scene.get("shots"), list) else []:
            if kind == "characters" and isinstance(shot, dict):
                names.update(c for c in shot.get("cast", []) or [] if isinstance(c, str))
                names.update(d.get("character") for d in shot.get("dialogue", []) or [] if isinstance(d, dict))
    return names


def _short(value: Any) -> str:
    if value is _MISSING:
        return "nothing (removed)"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:59] + "…"


def merge(base: dict[str, Any], base_origins: dict[str, dict[str, Any]], new: Built, mine: dict[str, Any]) -> Merge:
    """The story after re-import; see the module docstring for the rules."""
    return _Merger(base, base_origins, new, mine).run()
