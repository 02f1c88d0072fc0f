"""Executors: what drives the render loop for a plan; `local` (this process, in film order), `ray`, or torchrun ranks.

They sit above storyforge.render and call into it: the loop exposes the unit of work (a chain of jobs, see
render.render_chain) and takes the executor it is given; it imports none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storyforge.errors import StoryforgeError

if TYPE_CHECKING:
    from pathlib import Path

    from storyforge.plan.model import Plan
    from storyforge.render import RenderProgress, RunReport

EXECUTORS = ("local", "ray")


def render(plan: Plan, *, executor: str = "local", executor_options: dict[str, Any] | None = None,
           out: Path | None = None, backend: str = "auto", only: list[str] | None = None, use_cache: bool = True,
           cache_root: Path | None = None, progress: RenderProgress | None = None,
           backend_options: dict[str, Any] | None = None) -> RunReport:
    """Render `plan` (see storyforge.render.render) with the executor called `executor`.

    Under torchrun, rank 0 runs the ordinary render and every other rank follows it (storyforge.executors.
    torchrun). Ray is imported only when `ray` is chosen.
    """
    from storyforge.backends.multigpu import ranks
    from storyforge.render import render as render_plan

    if executor not in EXECUTORS:
        raise StoryforgeError(f"unknown executor '{executor}'; choose one of: {', '.join(EXECUTORS)}")
    options = dict(executor_options or {})
    arguments: dict[str, Any] = {"out": out, "backend": backend, "only": only, "use_cache": use_cache,
                                 "cache_root": cache_root, "progress": progress, "backend_options": backend_options}
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
