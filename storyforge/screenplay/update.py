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
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from storyforge.screenplay.to_story import Built, Ids, unique

_MISSING = object()
SIMILAR = 0.6  # an action paragraph with this share of its words kept, in order, is still the same shot
_WORD = re.compile(r"\w+")
MAX_COMPARISONS = 20_000  # rough text comparisons in one merge (a thousand-shot rewrite pairs place by place)
MAX_WORDS = 300  # words of a paragraph or a scene compared: a paragraph is at most 2,000 characters


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


class Words:
    """The words of a text (its first MAX_WORDS), counted: what two paragraphs or scenes are compared by."""

    __slots__ = ("counts", "words")

    def __init__(self, text: str):
        self.words = _WORD.findall(text.lower())[:MAX_WORDS]
        self.counts = Counter(self.words)

    def overlap(self, other: Words) -> float:
        """The share of words the two have in common, in any order (an upper bound of `similarity`)."""
        if not self.words or not other.words:
            return 0.0
        common = sum((self.counts & other.counts).values())
        return 2 * common / (len(self.words) + len(other.words))

    def similarity(self, other: Words) -> float:
        """The share of words the two have in common, in order (letters alone match by chance)."""
        if not self.words or not other.words:
            return 0.0
        return difflib.SequenceMatcher(None, self.words, other.words, autojunk=False).ratio()


class Budget:
    """Comparisons left for one merge: a script rewritten from end to end pairs place by place, not all with all."""

    def __init__(self, comparisons: int = MAX_COMPARISONS):
        self.left = comparisons

    def spend(self, comparisons: int) -> bool:
        if comparisons > self.left:
            return False
        self.left -= comparisons
        return True


def _pairs(old: list[str], new: list[str], rough: Callable[[int, int], float], exact: Callable[[int, int], float],
           budget: Budget, kept: Callable[[int], bool] = lambda i: True) -> dict[int, int]:
    """new index -> old index. Equal keys in order first; then equal keys anywhere (a scene or paragraph moved);
    then what is left pairs, likeliest first, when `exact(old index, new index)` reaches SIMILAR (a reworded
    paragraph, a renamed heading over the same action). `rough` is a cheap upper bound of `exact` that ranks the
    candidates; when the budget cannot pay for all with all, changed runs pair place by place. Of old items with
    equal keys, one the writer `kept` in the story is paired before one they deleted."""
    matched: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    opcodes = matcher.get_opcodes()
    for tag, i1, i2, j1, _ in opcodes:
        if tag == "equal":
            matched.update({j1 + k: i1 + k for k in range(i2 - i1)})
    taken = set(matched.values())
    waiting: dict[str, deque[int]] = {}
    for i, key in enumerate(old):
        if i not in taken:
            waiting.setdefault(key, deque()).append(i)
    for j, key in enumerate(new):
        if j not in matched and waiting.get(key):
            matched[j] = waiting[key].popleft()
            taken.add(matched[j])
    for j, i in list(matched.items()):  # two equal scenes, the writer deleted one: the script's is the other
        if not kept(i):
            swap = next((other for other in waiting.get(old[i], ()) if kept(other)), None)
            if swap is not None:
                waiting[old[i]].remove(swap)
                waiting[old[i]].append(i)
                matched[j] = swap
                taken.discard(i)
                taken.add(swap)
    free_old = [i for i in range(len(old)) if i not in taken]
    free_new = [j for j in range(len(new)) if j not in matched]
    if budget.spend(len(free_old) * len(free_new)):
        candidates = [(value, j, i) for j in free_new for i in free_old if (value := rough(i, j)) >= SIMILAR]
        candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
        for _, j, i in candidates:
            if j not in matched and i not in taken and budget.spend(1) and exact(i, j) >= SIMILAR:
                matched[j] = i
                taken.add(i)
        return matched
    for tag, i1, i2, j1, j2 in opcodes:  # a huge rewrite: place by place
        if tag == "replace":
            for k in range(min(i2 - i1, j2 - j1)):
                i, j = i1 + k, j1 + k
                if j not in matched and i not in taken and exact(i, j) >= SIMILAR:
                    matched[j] = i
                    taken.add(i)
    return matched


class _Merger:
    def __init__(self, base: dict[str, Any], base_origins: dict[str, dict[str, Any]], new: Built,
                 mine: dict[str, Any]):
        self.base, self.base_origins, self.new, self.mine = base, base_origins, new, mine
        self.result = Merge({}, {"scenes": {}, "shots": {}}, {})
        self.budget = Budget()

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
        old_headings = [self._heading(self.base_origins["scenes"].get(s.get("id"), {})) for s in base_scenes]
        new_headings = [self._heading(new_origins["scenes"][s["id"]]) for s in new_scenes]
        old_action = [self._action(self.base_origins, s) for s in base_scenes]
        new_action = [self._action(new_origins, s) for s in new_scenes]
        old_words, new_words = [Words(a) for a in old_action], [Words(a) for a in new_action]

        def score(likeness: Callable[[Words, Words], float]) -> Callable[[int, int], float]:
            """A scene is the same when its action mostly is (its heading renamed), or when its heading is (its
            action rewritten); both: the best match."""
            def of(i: int, j: int) -> float:
                same_heading = old_headings[i] == new_headings[j]
                action = likeness(old_words[i], new_words[j])
                return action + (1.0 if same_heading else 0.0) if same_heading or action >= SIMILAR else 0.0
            return of

        pairs = _pairs([f"{h}\0{a}" for h, a in zip(old_headings, old_action, strict=True)],
                       [f"{h}\0{a}" for h, a in zip(new_headings, new_action, strict=True)],
                       score(Words.overlap), score(Words.similarity), self.budget,
                       kept=lambda i: base_scenes[i].get("id") in mine_by_id)
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
            if not shots:  # the shots the writer kept went elsewhere in the script, the ones left they deleted
                shots = [dict(shot) for shot in shots_imported]
                self.result.kept.append(f"scene {scene_id}: the shots you kept are gone from the script; it has "
                                        "the script's shots again")
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
        old_words = [Words(key.split("\0")[0]) for key in old_keys]
        new_words = [Words(key.split("\0")[0]) for key in new_keys]
        old_parts = [key.split("\0")[1] for key in old_keys]
        new_parts = [key.split("\0")[1] for key in new_keys]

        def score(likeness: Callable[[Words, Words], float]) -> Callable[[int, int], float]:
            """Paragraphs alike in words; pieces of a paragraph the LLM split pair with the same piece only."""
            return lambda i, j: likeness(old_words[i], new_words[j]) if old_parts[i] == new_parts[j] else 0.0

        pairs = _pairs(old_keys, new_keys, score(Words.overlap), score(Words.similarity), self.budget,
                       kept=lambda i: base_shots[i].get("id") in mine_by_id)
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
    def _action(origins: dict[str, dict[str, Any]], scene: dict[str, Any]) -> str:
        """The script text of a scene's shots (what identifies it when its heading is renamed)."""
        return " ".join(str(origins["shots"].get(f"{scene.get('id')}/{shot.get('id')}", {}).get("text", ""))
                        for shot in scene.get("shots", []) if isinstance(shot, dict))

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
