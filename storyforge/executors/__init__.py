"""Executors: where a render's chains run; `local` (this process, in film order) unless another is named."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storyforge.errors import StoryforgeError

if TYPE_CHECKING:
    from storyforge.plan.model import Job
    from storyforge.render import Run

EXECUTORS = ("local", "ray")


def run_chains(name: str, run: Run, chains: list[list[Job]], options: dict[str, Any]) -> None:
    """Bring every job of `chains` into `run` (its entries and records) with the executor called `name`.

    The local executor imports nothing: Ray is imported only when `ray` is chosen.
    """
    if name == "local":
        from storyforge.render import render_chain

        if options:
            raise StoryforgeError(f"the local executor takes no options (got {', '.join(sorted(options))})")
        for chain in chains:
            for _job in render_chain(run, chain):
                pass
        return
    if name == "ray":
        from storyforge.executors.ray_executor import execute

        execute(run, chains, **options)
        return
    raise StoryforgeError(f"unknown executor '{name}'; choose one of: {', '.join(EXECUTORS)}")
