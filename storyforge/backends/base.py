"""The backend Protocol, what a job is rendered from, and the registry of backends imported lazily."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from storyforge.errors import MissingExtra, StoryforgeError

if TYPE_CHECKING:
    import numpy as np

    from storyforge.plan.model import Job

# name -> "module:Class"; a backend's heavy imports happen only when it is chosen.
REGISTRY: dict[str, str] = {
    "skyreels-df": "storyforge.backends.skyreels_df:SkyReelsDF",
    "animatic": "storyforge.backends.animatic:Animatic",
}
# name -> "module:function" giving the backend's Keyed for its options without loading it (see `keyed`)
KEYED: dict[str, str] = {
    "skyreels-df": "storyforge.backends.skyreels_key:keyed",
    "animatic": "storyforge.backends.animatic:keyed",
}
# which extra brings the packages a backend module imports
EXTRAS: dict[str, str] = {"torch": "render", "diffusers": "render", "transformers": "render",
                          "accelerate": "render", "ftfy": "render", "numpy": "video", "av": "video",
                          "imageio_ffmpeg": "video", "PIL": "video"}


@dataclass(frozen=True)
class RenderInputs:
    """What a job is rendered from besides the job itself."""

    # for an extension or a bridge: the chain's last `overlap_frames` frames, uint8 (F, H, W, 3); else None
    previous_frames: np.ndarray | None = None
    # called with (step, total) as denoising advances, for progress and ETA
    on_step: Callable[[int, int], None] | None = None
    # for a job whose start frame was generated (its keyframe): the picture's file; else None
    start_image: Path | None = None
    # for a bridge: the first frames of the shot it leads into, uint8 (F, H, W, 3); it ends on the first of them
    next_frames: np.ndarray | None = None


class Backend(Protocol):
    """Turns one job into its frames."""

    name: str
    # Optional class attribute `preview = True`: the backend draws previews (title cards), not a model's output,
    # so the render loop does not colour-match its frames or check them for black or frozen pictures.

    def identity(self, job: Job) -> dict[str, Any]:
        """What, besides the job, makes this backend's pixels differ (model files, dtype, scheduler, version)."""
        ...

    def frames(self, job: Job, inputs: RenderInputs) -> Iterator[np.ndarray]:
        """The job's new frames as they are ready, in order: uint8 chunks (n, height, width, 3) that add up to
        job.frames, the overlap of an extension dropped. The render loop encodes each chunk as it comes, so a
        backend that yields a window (or a frame) at a time keeps host memory flat in the shot's length."""
        ...

    def render(self, job: Job, inputs: RenderInputs) -> np.ndarray:
        """All the job's new frames at once: uint8 (job.frames, height, width, 3), `frames` joined."""
        ...

    def close(self) -> None:
        """Free models and memory (before stitching, or between runs)."""
        ...


@dataclass(frozen=True)
class Keyed:
    """How a backend keys its cache entries, known without loading it: `identity(job)` is what the loaded
    backend's identity(job) gives, and `notices` what loading it would say (an unverified diffusers, say)."""

    name: str
    identity: Callable[[Job], dict[str, Any]]
    notices: tuple[str, ...] = ()


def keyed(name: str, options: dict[str, Any]) -> Keyed | None:
    """The backend `name`'s keys for `options` without importing its heavy packages or loading a model, so a
    render whose every job is cached imports no torch; None where only loading it can tell (or say why not)."""
    if name not in KEYED:
        return None
    module_name, function = KEYED[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return None  # loading it names the extra to install
    found: Keyed | None = getattr(module, function)(dict(options))
    return found


def load_backend(name: str, **options: Any) -> Backend:
    """Import and build the backend called `name`; a missing optional package names the extra to install."""
    return backend_class(name)(**options)  # type: ignore[no-any-return]


def backend_class(name: str) -> Any:
    """The class of the backend called `name`, imported; a missing optional package names the extra to install.
    A class with `splits_generations = True` takes `parallel` (a SequenceParallel group) when ranks run it."""
    if name not in REGISTRY:
        raise StoryforgeError(f"unknown backend '{name}'; choose one of: auto, {', '.join(sorted(REGISTRY))}")
    module_name, class_name = REGISTRY[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        package = (error.name or "").split(".")[0]
        if package in EXTRAS:
            raise MissingExtra(package, EXTRAS[package], f"the {name} backend") from None
        raise
    return getattr(module, class_name)


def load_keyframe_backend(**options: Any) -> Any:
    """The keyframe backend (a diffusers image-edit pipeline); a missing package names the extra to install."""
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ModuleNotFoundError as error:
        package = (error.name or "").split(".")[0]
        raise MissingExtra(package, EXTRAS.get(package, "render"), "generating keyframes") from None
    from storyforge.backends.keyframe import ImageEdit

    return ImageEdit(**options)


def frames_of(backend: Any, job: Job, inputs: RenderInputs) -> Iterator[np.ndarray]:
    """The job's frames in chunks: the backend's `frames` stream, or (a backend written before streaming, with
    `render` only) its whole shot as one chunk."""
    stream = getattr(backend, "frames", None)
    if stream is None:
        yield backend.render(job, inputs)
        return
    yield from stream(job, inputs)
