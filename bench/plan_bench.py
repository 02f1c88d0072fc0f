"""Benchmark: validate and plan a 1,000-shot story (in-process, and as the CLI a CI job would run).

--story templated plans the story of issue 26 instead: every prompt its own template text ("{{ characters.hero }}
walks past {{ locations.market }}, moment 7"), a described character that includes another, a templated style,
the cinematic prompt template, a third of the shots `continue`, some crossfades. Goal there: at most 4x.

The CLI runs side by side with a bare `python -c "import pydantic, yaml, jinja2, rich"` (the libraries any
story tool of this kind loads), in turn, so a busy machine slows both alike; the ratio is quoted on CPU
seconds (user + system, which waiting for a core does not inflate) and on wall seconds. Goal: at most 5x.

Python runs as an installed package runs: from bytecode compiled once (pip compiles on install). Where the
environment sets PYTHONDONTWRITEBYTECODE, every run would compile storyforge's source again (about 0.03 s that
no user pays), so both commands get a private PYTHONPYCACHEPREFIX, warmed by one run each; --source keeps the
environment as it is. --compare DIR also runs the CLI of another checkout (e.g. main, before a change) in the
same rounds, so before and after are measured side by side.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def story_text(shots: int) -> str:
    lines = ["storyforge: 1", "title: A Thousand Shots", "render: {seed: 1}", "style: cinematic",
             "characters:", "  fox: {description: a red fox}", "locations:", "  wood: a pine wood", "scenes:"]
    per_scene = 20
    for scene in range(shots // per_scene):
        lines += [f"  - id: scene-{scene}", "    location: wood", "    shots:"]
        for shot in range(per_scene):
            kinds = ["cut", "continue", "{type: crossfade, duration: 0.5s}", "{type: fade, duration: 1s}"]
            transition = kinds[shot % 4]
            if scene == 0 and shot == 0:
                transition = "cut"
            lines.append(f"      - {{id: shot-{shot}, prompt: '{{{{ characters.fox }}}} in {{{{ location }}}}, "
                         f"take {shot}', duration: {2 + shot % 5}s, transition: {transition}}}")
    return "\n".join(lines) + "\n"


def templated_text(shots: int) -> str:
    """Issue 26's story: prompts that are templates, each with its own words (so each its own template text)."""
    places = ["market", "harbour", "bridge", "tower", "garden"]
    verbs = ["walks past", "runs through", "stops at", "looks back at", "waits by", "climbs over", "turns toward"]
    lines = ["storyforge: 1", "title: A Thousand Templated Shots", "render: {seed: 1}",
             "style: '{{ film.title }}, cinematic, 35mm film grain'", "enhance: {template: cinematic}",
             "characters:", "  hero: {description: a tall woman in a red coat}", "  friend: a small boy with a kite",
             "  dog: '{{ characters.friend }}''s scruffy dog'", "locations:"]
    lines += [f"  {place}: the old {place} at dusk" for place in places]
    lines.append("scenes:")
    per_scene = 20
    for scene in range(shots // per_scene):
        lines += [f"  - id: scene-{scene}", f"    location: {places[scene % len(places)]}",
                  f"    description: 'scene {scene} of the chase'", "    shots:"]
        for shot in range(per_scene):
            n = scene * per_scene + shot
            transition = "cut" if shot == 0 else ["continue", "cut", "{type: crossfade, duration: 0.5s}"][n % 3]
            who = ["hero", "friend", "dog"][n % 3]
            prompt = f"{{{{ characters.{who} }}}} {verbs[n % 7]} {{{{ locations.{places[n % 5]} }}}}, moment {n}"
            camera = ["wide shot, slow push in", "medium shot", "close-up, pan left"][n % 3]
            lines.append(f"      - {{id: shot-{shot}, prompt: '{prompt}', camera: '{camera}', "
                         f"duration: {2 + n % 4}s, transition: {transition}}}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compare", type=Path, metavar="DIR", help="another checkout's root, run side by side")
    parser.add_argument("--source", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as the environment has it")
    parser.add_argument("--story", choices=("thousand", "templated"), default="thousand",
                        help="templated: issue 26's story, every prompt its own template text (goal 4x)")
    args = parser.parse_args()
    goal = 4 if args.story == "templated" else 5
    from storyforge import api
    from storyforge.story.load import load

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.yaml"
        path.write_text((templated_text if args.story == "templated" else story_text)(args.shots), encoding="utf-8")
        load_times, plan_times = [], []
        here = Path(__file__).resolve().parent.parent
        trees = {"cli": here, **({"compare": args.compare.resolve()} if args.compare else {})}
        commands = {name: ([sys.executable, "-m", "storyforge", "plan", str(path), "--json"], tree)
                    for name, tree in trees.items()}
        commands["bare"] = ([sys.executable, "-c", "import pydantic, yaml, jinja2, rich"], here)
        env = child_env(Path(folder) / "pycache", bytecode=not args.source)
        # run in the story's folder: `python -m` puts the current folder first on sys.path, before PYTHONPATH
        for command, tree in commands.values():  # warm the bytecode (and the page cache) once, not counted
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**env, "PYTHONPATH": str(tree)}, cwd=folder)
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        wall: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            start = time.perf_counter()
            story = load(path)
            middle = time.perf_counter()
            plan = api.compile_story(story)
            end = time.perf_counter()
            load_times.append(middle - start)
            plan_times.append(end - middle)
            for name, (command, tree) in commands.items():
                used, start = _children_cpu(), time.perf_counter()
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**env, "PYTHONPATH": str(tree)}, cwd=folder)
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(_children_cpu() - used)
        print(f"{len(plan.jobs)} shots, {plan.total_frames} frames, {plan.transformer_calls:,} transformer calls, "
              f"{len(plan.warnings)} warnings ({len({re.sub(r'[0-9.]+', '#', w.message) for w in plan.warnings})} "
              "kinds, numbers aside)")
        print(f"load + validate (median of {args.rounds}): {statistics.median(load_times) * 1000:.0f} ms")
        print(f"compile (plan, templates, keys):     {statistics.median(plan_times) * 1000:.0f} ms")
        print(f"`storyforge plan --json` end to end:  {statistics.median(wall['cli']) * 1000:.0f} ms wall "
              f"(process included; {'source compiled every run' if args.source else 'from bytecode'})")
        for name in trees:
            label = "this checkout" if name == "cli" else f"{args.compare}"
            ratios = {kind: statistics.median(a / b for a, b in zip(times[name], times["bare"], strict=True))
                      for kind, times in (("cpu", cpu), ("wall", wall))}
            bare = statistics.median(cpu["bare"])
            print(f"{label}: side by side with a bare import of pydantic, yaml, jinja2 and rich (median of "
                  f"{args.rounds} pairs): CPU {statistics.median(cpu[name]):.3f}s vs {bare:.3f}s"
                  f" = {ratios['cpu']:.2f}x, wall {ratios['wall']:.2f}x (goal <= {goal}x)")


def child_env(pycache: Path, *, bytecode: bool) -> dict[str, str]:
    """The environment for the timed processes: bytecode written once into `pycache` (see the docstring)."""
    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
