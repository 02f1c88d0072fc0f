"""Executors: where the chains of one or more films run; `local` (here, film by film) unless another is named."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from storyforge.errors import RenderError, StoryforgeError

if TYPE_CHECKING:
    from storyforge.render import Run

EXECUTORS = ("local", "ray")
# Called once per film when its chains are all in (error None: cut it) or one of them failed (error: say so).
OnDone = Callable[["Run", "RenderError | None"], None]


def run_chains(name: str, runs: list[Run], options: dict[str, Any], on_done: OnDone) -> None:
    """Bring every chain of each run (`run.chains`) into it, then hand the run to `on_done`.

    The local executor imports nothing: Ray is imported only when `ray` is chosen.
    """
    if name == "local":
        if options:
            raise StoryforgeError(f"the local executor takes no options (got {', '.join(sorted(options))})")
        _local(runs, on_done)
        return
    if name == "ray":
        from storyforge.executors.ray_executor import execute

        execute(runs, on_done, **options)
        return
    raise StoryforgeError(f"unknown executor '{name}'; choose one of: {', '.join(EXECUTORS)}")


def _local(runs: list[Run], on_done: OnDone) -> None:
    """Film after film, chain after chain, in this process; the loaded model passes on to the next film."""
    from storyforge.render import render_chain

    for position, run in enumerate(runs):
        error: RenderError | None = None
        try:
            for chain in run.chains:
                for _job in render_chain(run, chain):
                    pass
        except RenderError as failure:
            error = failure
        if position + 1 < len(runs):
            run.hand_backend_to(runs[position + 1])
        on_done(run, error)
