"""Executors: what drives the render loop for a plan; `local` (this process, in film order), `ray`, or torchrun ranks.

They sit above storyforge.render and call into it: the loop opens a film as a graph of work (keyframes, every
take; storyforge.plan.graph) and executors schedule its nodes (see the interface in storyforge.render's
docstring); nothing renders outside that graph. The loop imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.errors import RenderError, StoryforgeError

if TYPE_CHECKING:
    from storyforge.plan.model import Plan
    from storyforge.render import RenderProgress, Run, RunReport

EXECUTORS = ("local", "ray")


def render(plan: Plan, *, executor: str = "local", executor_options: dict[str, Any] | None = None,
           out: Path | None = None, backend: str = "auto", only: list[str] | None = None, use_cache: bool = True,
           cache_root: Path | None = None, progress: RenderProgress | None = None,
           backend_options: dict[str, Any] | None = None, keyframes_only: bool = False) -> RunReport:
    """Render `plan` (see storyforge.render.render) with the executor called `executor`.

    Under torchrun, rank 0 runs the ordinary render and every other rank follows it (storyforge.executors.
    torchrun). Ray is imported only when `ray` is chosen.
    """
    from storyforge.executors.ranks import ranks
    from storyforge.render import render as render_plan

    if executor not in EXECUTORS:
        raise StoryforgeError(f"unknown executor '{executor}'; choose one of: {', '.join(EXECUTORS)}")
    options = dict(executor_options or {})
    arguments: dict[str, Any] = {"out": out, "backend": backend, "only": only, "use_cache": use_cache,
                                 "cache_root": cache_root, "progress": progress, "backend_options": backend_options,
                                 "keyframes_only": keyframes_only}
    if executor == "ray":
        if ranks().parallel:  # every rank says so, not only rank 0
            raise StoryforgeError("the ray executor does not run under torchrun (a Ray task gets one GPU); use "
                                  "--executor ray for chains on many GPUs, or torchrun for one generation on several")
        from functools import partial

        from storyforge.executors.ray_executor import execute

        return render_plan(plan, executor=partial(execute, **options), **arguments)
    if options:
        raise StoryforgeError(f"the local executor takes no options (got {', '.join(sorted(options))})")
    if ranks().parallel:
        from storyforge.executors.torchrun import render_ranked

        return render_ranked(plan, **arguments)
    return render_plan(plan, **arguments)


def render_films(plans: Sequence[Plan], *, executor: str = "local", executor_options: dict[str, Any] | None = None,
                 outs: Sequence[Path | None] | None = None, backend: str = "auto", only: list[str] | None = None,
                 use_cache: bool = True, cache_root: Path | None = None,
                 progress: Sequence[RenderProgress | None] | None = None,
                 backend_options: dict[str, Any] | None = None) -> list[tuple[RunReport | None, RenderError | None]]:
    """Render several films in one go, each film's outputs and run.json as if it were rendered alone.

    `ray` gets every film's graph at once: one queue, longest first, and each film is cut as soon as its own
    nodes are in while the others go on. `local` renders the films one after another with one model holder:
    one model resident at a time, handed from one film to the next when they share it. A film that fails does
    not stop the others: its entry is (None, error).
    """
    import contextlib

    from storyforge.executors.ranks import ranks
    from storyforge.render import ModelHolder, choose_backend, default_out, opened, select

    if executor not in EXECUTORS:
        raise StoryforgeError(f"unknown executor '{executor}'; choose one of: {', '.join(EXECUTORS)}")
    options = dict(executor_options or {})
    if executor == "local" and options:
        raise StoryforgeError(f"the local executor takes no options (got {', '.join(sorted(options))})")
    outs = list(outs) if outs is not None else [None] * len(plans)
    tells = list(progress) if progress is not None else [None] * len(plans)
    folders: dict[Path, Path] = {}
    for plan, out in zip(plans, outs, strict=True):  # a wrong backend, --only or folder stops every film at once
        choose_backend(plan, backend)
        select(plan, only)
        folder = (Path(out) if out is not None else default_out(plan.story)).resolve()
        if folder in folders:
            from storyforge.errors import display_path

            if folders[folder] == plan.story.resolve():  # its output folder's lock would wait for itself
                raise StoryforgeError(f"{display_path(plan.story)} is given twice; give each story once")
            raise StoryforgeError(f"{display_path(folders[folder])} and {display_path(plan.story)} would both render "
                                  f"into {display_path(folder)}; rename one of them, or render them one at a time "
                                  "with --out")
        folders[folder] = plan.story.resolve()
    arguments: dict[str, Any] = {"backend": backend, "only": only, "use_cache": use_cache, "cache_root": cache_root,
                                 "backend_options": backend_options}
    if ranks().parallel:  # torchrun: every rank goes through the films in the same order, film by film
        ranked: list[tuple[RunReport | None, RenderError | None]] = []
        for plan, out, tell in zip(plans, outs, tells, strict=True):
            try:
                ranked.append((render(plan, executor=executor, executor_options=options, out=out, progress=tell,
                                      **arguments), None))
            except RenderError as error:
                ranked.append((None, error))
        return ranked
    results: dict[int, tuple[RunReport | None, RenderError | None]] = {}
    holder = ModelHolder()  # this process's one model, for every film

    def done(run: Run, error: RenderError | None, *, last: bool = True) -> None:
        if error is None:
            try:
                results[id(run)] = (run.complete(free=last), None)
            except RenderError as failure:
                error = failure
        if error is not None:
            results[id(run)] = (None, error)

    with contextlib.ExitStack() as held:  # every film's output folder held until all are done
        held.callback(holder.free)
        runs = [held.enter_context(opened(plan, out=out, progress=tell, holder=holder, **arguments))
                for plan, out, tell in zip(plans, outs, tells, strict=True)]
        if executor == "ray":
            from storyforge.executors.ray_executor import execute_films

            execute_films(runs, done, **options)
        else:
            _local_films(runs, done)
        return [results[id(run)] for run in runs]


def _local_films(runs: list[Run], on_done: Callable[..., None]) -> None:
    """Film after film, each film's graph in this process; the films share one model holder, so a model the
    next film uses stays loaded (and one it does not is freed before the next loads)."""
    from storyforge.render import local

    for position, run in enumerate(runs):
        error: RenderError | None = None
        try:
            local(run)
        except RenderError as failure:
            error = failure
        on_done(run, error, last=position + 1 == len(runs))
