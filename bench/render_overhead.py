"""Overhead of SkyReelsDF.render over calling the same diffusers pipelines directly (tiny model, CPU).

Usage: python bench/render_overhead.py [--rounds 7] [--steps 4]

Both sides share one loaded model; the direct side gets its inputs (images, previous frames as PIL,
schedulers) prepared outside the timing, so the ratio charges the backend for all of its own work:
image loading, scheduler choice, the step callback, slicing and the uint8 conversion. Rounds alternate
which side runs first. Goal: ratio <= 1.1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZE = 64


def write_story(folder: Path, steps: int) -> Path:
    import numpy as np
    import yaml
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)).save(folder / "start.png")
    story = {
        "storyforge": 1, "title": "overhead",
        "render": {"model": "tiny", "resolution": f"{SIZE}x{SIZE}", "steps": steps, "base_frames": 17,
                   "overlap_frames": 5},
        "scenes": [{"id": "s", "shots": [
            {"id": "short", "prompt": "a red fox wakes up", "duration": "17f"},
            {"id": "more", "prompt": "the fox stretches", "duration": "12f", "transition": "continue"},
            {"id": "long", "prompt": "the fox runs through the forest", "duration": "41f"},
            {"id": "still", "prompt": "the fox looks at the camera", "duration": "17f", "image": "start.png"},
        ]}],
    }
    path = folder / "overhead.yaml"
    path.write_text(yaml.safe_dump(story, sort_keys=False), encoding="utf-8")
    return path


def plan_jobs(path: Path):
    from storyforge.plan.compiler import compile_plan
    from storyforge.story.load import load
    from storyforge.story.resolve import resolve
    from storyforge.story.texts import ShotText

    def texts(film):
        return {s.id: ShotText(prompt=s.shot.prompt, camera=s.shot.camera) for s in film.shots}

    return compile_plan(resolve(load(path)), texts).jobs


def direct_call(backend: Any, job: Any, arguments: dict[str, Any], scheduler: Any) -> Any:
    """What a user of diffusers would write: the pipeline, its scheduler, the seeds, one call."""
    import torch

    pipe = backend.pipeline(job.settings.model, job.kind)
    pipe.scheduler = scheduler
    generator = torch.Generator(device="cpu").manual_seed(job.seed)
    torch.manual_seed(job.seed)
    return pipe(**arguments, generator=generator).frames[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=4)
    options = parser.parse_args()

    import torch
    from diffusers import UniPCMultistepScheduler

    from storyforge.backends.base import RenderInputs
    from storyforge.backends.skyreels_df import SkyReelsDF

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as temporary:
        jobs = plan_jobs(write_story(Path(temporary), options.steps))
        backend = SkyReelsDF()
        # the chain's frames for the extension, and the direct side's prepared arguments
        inputs: dict[str, RenderInputs] = {}
        previous = None
        for job in jobs:
            overlap = job.settings.overlap_frames
            inputs[job.id] = RenderInputs(previous_frames=previous[-overlap:] if job.kind == "extend" else None,
                                          on_step=lambda step, total: None)
            previous = backend.render(job, inputs[job.id])  # also the warm-up
        prepared = []
        for job in jobs:
            arguments = backend.call_arguments(job, inputs[job.id])
            scheduler = UniPCMultistepScheduler.from_config(
                backend.pipeline(job.settings.model, job.kind).scheduler.config, flow_shift=job.settings.shift)
            prepared.append((job, arguments, scheduler))
            direct_call(backend, job, arguments, scheduler)  # warm-up

        # per job, alternating which side goes first; CPU time of this process (one thread) is the main figure
        # because wall time on a shared 2-core machine mostly measures the neighbours
        ours: dict[str, list[tuple[float, float]]] = {job.id: [] for job in jobs}
        theirs: dict[str, list[tuple[float, float]]] = {job.id: [] for job in jobs}
        for round_index in range(options.rounds):
            for index, (job, arguments, scheduler) in enumerate(prepared):
                sides = [(ours, lambda j=job: backend.render(j, inputs[j.id])),
                         (theirs, lambda j=job, a=arguments, s=scheduler: direct_call(backend, j, a, s))]
                if (round_index + index) % 2:
                    sides.reverse()
                for record, call in sides:
                    wall, cpu = time.perf_counter(), time.process_time()
                    call()
                    record[job.id].append((time.perf_counter() - wall, time.process_time() - cpu))
        backend.close()

    rows = sum(job.rows for job in jobs)
    frames = sum(job.frames for job in jobs)
    print(f"jobs: {len(jobs)} ({', '.join(f'{j.kind} {j.frames}f' for j in jobs)}), {rows} denoising rows, "
          f"{frames} frames at {SIZE}x{SIZE}, steps {options.steps}, {options.rounds} rounds, torch threads 1")
    for label, which in (("cpu", 1), ("wall", 0)):
        mine = sum(statistics.median(t[which] for t in ours[job.id]) for job in jobs)
        plain = sum(statistics.median(t[which] for t in theirs[job.id]) for job in jobs)
        print(f"{label:4}  SkyReelsDF.render {mine:.3f}s  direct pipelines {plain:.3f}s  ratio {mine / plain:.3f}x "
              f"(sum over jobs of per-job medians; goal <= 1.1x)")
    for job in jobs:
        mine = statistics.median(t[1] for t in ours[job.id])
        plain = statistics.median(t[1] for t in theirs[job.id])
        print(f"  {job.id:8} {job.kind:6} cpu {mine:.3f}s vs {plain:.3f}s  ratio {mine / plain:.3f}x")


if __name__ == "__main__":
    main()
