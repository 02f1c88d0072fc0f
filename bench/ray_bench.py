"""Local vs Ray executor wall time for a 6-chain animatic film (cold cache each run), and the cost model's bound;
then several films on one cluster: `render a.yaml b.yaml ... --executor ray` against the same films one after
another (each its own `render --executor ray` on the same warm cluster), and one after another locally.

Two workloads: the animatic as it is (CPU-bound: drawing and x264, which already uses every core in one
process), and the animatic plus a sleep per job standing in for a GPU-bound backend (the CPU idles while the
device works, so chains on separate workers overlap). Ray runs on a local cluster of os.cpu_count() CPUs, so on a
2-core machine at most 2 chains run at once; the cluster start-up is timed separately.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

CHAINS = 6


def story(width: int, height: int) -> str:
    """Six scenes, each one chain: a shot, a continued one, and a third in the longer chains (uneven on purpose)."""
    scenes = []
    for n in range(CHAINS):
        shots = [f"      - id: a\n        prompt: scene {n} opens on a quiet street\n        duration: 3s\n"
                 "        camera: slow push in\n",
                 f"      - id: b\n        prompt: scene {n} goes on as the rain starts\n        duration: 2s\n"
                 "        transition: continue\n"]
        if n < 2:
            shots.append(f"      - id: c\n        prompt: scene {n} ends under the lights\n        duration: 2s\n"
                         "        transition: continue\n")
        scenes.append(f"  - id: s{n}\n    shots:\n" + "".join(shots))
    return (f"storyforge: 1\ntitle: Six chains\nrender: {{resolution: {width}x{height}, fps: 24}}\nscenes:\n"
            + "".join(scenes))


def film(index: int, chains: int, width: int, height: int) -> str:
    """Film `index` of the many-films part: `chains` scenes, the first a three-shot take, the others one shot."""
    scenes = []
    for n in range(chains):
        shots = [f"      - id: a\n        prompt: film {index} scene {n} opens\n        duration: 2s\n"]
        if n == 0:
            shots += [f"      - id: {shot}\n        prompt: film {index} scene {n} goes on\n        duration: 2s\n"
                      "        transition: continue\n" for shot in ("b", "c")]
        scenes.append(f"  - id: s{n}\n    shots:\n" + "".join(shots))
    return (f"storyforge: 1\ntitle: Film {index}\nrender: {{resolution: {width}x{height}, fps: 24}}\nscenes:\n"
            + "".join(scenes))


def lpt_makespan(costs: list[int], workers: int) -> int:
    """Longest chains first, each to the least loaded worker: what the Ray executor's order gives."""
    loads = [0] * workers
    for cost in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += cost
    return max(loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="960x544", help="frame size, multiples of 16")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds per job of the GPU-bound stand-in")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs per measurement")
    parser.add_argument("--part", choices=("all", "film", "films"), default="all",
                        help="film: one film, local vs ray; films: several films together vs one after another")
    parser.add_argument("--films", default="1,2,3,1", help="chains of each film in the many-films part")
    args = parser.parse_args()
    if args.part in ("all", "film"):
        one_film(args)
    if args.part in ("all", "films"):
        many_films(args)


def one_film(args: argparse.Namespace) -> None:
    import ray

    from storyforge import api
    from storyforge.backends.animatic import DELAY_VARIABLE

    width, height = (int(v) for v in args.size.split("x"))
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "film.yaml").write_text(story(width, height))
        plan = api.plan(root / "film.yaml")
        costs = [sum(job.transformer_calls for job in chain) for chain in plan.chains()]
        print(f"{len(plan.chains())} chains, {len(plan.jobs)} jobs, {plan.total_frames} frames at {args.size}; "
              f"{cpus} CPUs; chain costs (transformer calls) {costs}")
        for workers in (1, 2, 3, 6):
            makespan = lpt_makespan(costs, workers)
            print(f"  cost model, {workers} GPU(s): longest-first makespan {makespan} calls, "
                  f"speed-up {sum(costs) / makespan:.2f} (bound min(N, chains, total/longest) = "
                  f"{min(workers, len(costs), sum(costs) / max(costs)):.2f})")

        def timed(executor: str) -> float:
            best = float("inf")
            for _ in range(args.repeats):
                out, cache = root / "out", root / "cache"
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(cache, ignore_errors=True)
                started = time.perf_counter()
                report = api.render(plan, out=out, backend="animatic", cache_root=cache, executor=executor)
                best = min(best, time.perf_counter() - started)
                assert report.rendered == len(plan.jobs)
            return best

        print(f"{'workload':<34} {'local s':>8} {'ray s':>8} {'ratio':>6} {'ray cold s':>11} {'ratio':>6}")
        for name, delay in (("animatic (CPU-bound)", 0.0), (f"animatic + {args.delay:g}s/job (GPU stand-in)",
                                                            args.delay)):
            os.environ[DELAY_VARIABLE] = str(delay)
            local = timed("local")
            cold = timed("ray")  # no cluster yet: the executor starts one for the render and stops it after
            _start_cluster(ray, cpus)
            timed("ray")  # the first tasks start the worker processes: warm them, as a long render would
            warm = timed("ray")
            ray.shutdown()
            print(f"{name:<34} {local:>8.2f} {warm:>8.2f} {local / warm:>6.2f} {cold:>11.2f} {local / cold:>6.2f}")
        os.environ.pop(DELAY_VARIABLE, None)
        print("ratio = local / ray wall time (> 1: Ray is faster); 'ray' reuses a running cluster with warm "
              "workers, 'ray cold' is `--executor ray` starting its own cluster")


def many_films(args: argparse.Namespace) -> None:
    """Makespan of several films rendered together on one cluster vs one after another, side by side."""
    import ray

    from storyforge import api
    from storyforge.backends.animatic import DELAY_VARIABLE

    width, height = (int(v) for v in args.size.split("x"))
    cpus = os.cpu_count() or 1
    shape = [int(n) for n in args.films.split(",")]
    os.environ[DELAY_VARIABLE] = str(args.delay)  # the GPU-bound stand-in: a worker waits as on a device
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        plans = []
        for index, chains in enumerate(shape):
            (root / f"film{index}.yaml").write_text(film(index, chains, width, height))
            plans.append(api.plan(root / f"film{index}.yaml"))
        costs = [[sum(job.transformer_calls for job in chain) for chain in plan.chains()] for plan in plans]
        flat = [cost for film_costs in costs for cost in film_costs]
        print(f"\n{len(plans)} films, chain costs (transformer calls) {costs}; {args.delay:g}s per job; "
              f"{cpus} CPUs in the cluster")
        sequential_model = sum(lpt_makespan(film_costs, cpus) for film_costs in costs)
        print(f"  cost model: one after another {sequential_model} calls, together {lpt_makespan(flat, cpus)} "
              f"calls, ratio {sequential_model / lpt_makespan(flat, cpus):.2f}")

        def timed(how: str) -> float:
            best = float("inf")
            for _ in range(args.repeats):
                shutil.rmtree(root / "out", ignore_errors=True)
                shutil.rmtree(root / "cache", ignore_errors=True)
                started = time.perf_counter()
                if how == "together":
                    results = api.render_films(plans, out=root / "out", backend="animatic",
                                               cache_root=root / "cache", executor="ray")
                    assert all(error is None for _, error in results)
                else:
                    for plan in plans:
                        api.render(plan, out=root / "out" / plan.story.stem, backend="animatic",
                                   cache_root=root / "cache", executor="local" if how == "local" else "ray")
                best = min(best, time.perf_counter() - started)
            return best

        local = timed("local")
        _start_cluster(ray, cpus)
        timed("together")  # start the worker processes, as a long render would have them
        one_by_one = timed("one after another")
        together = timed("together")
        ray.shutdown()
        print(f"{'makespan':<44} {'s':>8} {'vs together':>12}")
        for name, seconds in (("local, one film after another", local),
                              ("ray, one `render` per film, one after another", one_by_one),
                              ("ray, `render a.yaml b.yaml ...` together", together)):
            print(f"{name:<44} {seconds:>8.2f} {seconds / together:>12.2f}")
    os.environ.pop(DELAY_VARIABLE, None)


def _start_cluster(ray: object, cpus: int) -> None:
    from storyforge.executors.ray_cluster import start_local

    start_local(ray, num_cpus=cpus, object_store_memory=256 << 20)  # as the executor starts one: on loopback


if __name__ == "__main__":
    main()
