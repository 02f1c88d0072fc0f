"""The one download policy: the hub models a render needs are on this machine before any work starts, or the render
stops at once naming `hf download` and the size; `--download` fetches them first, on purpose, with progress.

Nothing is ever downloaded in the middle of a render (the backends load with local_files_only), and no check
here touches the network: whether a model is there is read from the Hugging Face cache on disk.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from storyforge.errors import RenderError
from storyforge.plan import memory as mem
from storyforge.story.presets import KEYFRAME_PRESETS, PRESETS

_DOWNLOADS: contextvars.ContextVar[bool] = contextvars.ContextVar("storyforge_downloads", default=False)


@contextlib.contextmanager
def downloads_allowed(allowed: bool = True) -> Iterator[None]:
    """Within it, a render downloads the hub models it misses before any work (`render --download`)."""
    token = _DOWNLOADS.set(allowed)
    try:
        yield
    finally:
        _DOWNLOADS.reset(token)


def allowed() -> bool:
    return _DOWNLOADS.get()


@dataclass(frozen=True)
class Needed:
    """A hub model a render needs: what it is for, its repository, and about how much it downloads."""

    what: str  # "video model" | "keyframe model" | "prompt model"
    repo: str
    size: str  # "about 29 GB", or "" when unknown
    index: str = "model_index.json"  # a file every copy of it has
    source: str = ""  # "film.yaml:4: keyframes.model" where the story names it, when it does
    other: str = ""  # what else would do, e.g. "set keyframes.model to a local folder that holds it"


def video_model(model: str) -> Needed | None:
    """The hub repository a `render.model` downloads from, or None (tiny, a local folder)."""
    preset = PRESETS.get(model)
    repo = preset.repo if preset is not None else model
    if repo is None or Path(model).expanduser().is_dir() or "/" not in repo:
        return None
    architecture = mem.ARCHITECTURES.get(model)
    size = ""
    if architecture is not None:  # the checkpoints are stored in float32
        count = (architecture.transformer.parameters() + architecture.text_encoder.parameters()
                 + architecture.vae_parameters)
        size = f"about {count * 4 / 1e9:.0f} GB"
    return Needed("video model", repo, size)


def keyframe_model(model: str, source: str = "") -> Needed | None:
    """The hub repository a `keyframes.model` (written at `source`, file:line) downloads from, or None (tiny, a
    local folder)."""
    preset = KEYFRAME_PRESETS.get(model)
    repo = preset.repo if preset is not None else model
    if repo is None or Path(model).expanduser().is_dir() or "/" not in repo:
        return None
    return Needed("keyframe model", repo, preset.weights if preset is not None else "",
                  source=f"{source}: keyframes.model" if source else "",
                  other="set keyframes.model to a local folder that holds it, or remove `keyframes:` to render "
                        "without generated start frames")


def on_disk(needed: Needed) -> bool:
    """Whether the Hugging Face cache holds the model (no network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id=needed.repo, filename=needed.index), str)


def ensure(models: list[Needed], *, download: bool | None = None) -> None:
    """Every model on this machine, before any work: missing ones are one error naming `hf download` (or, with
    `download`, default: inside downloads_allowed(), are downloaded now with the hub's progress bars)."""
    missing = [needed for needed in dict.fromkeys(models) if not on_disk(needed)]
    if not missing:
        return
    if not (allowed() if download is None else download):
        raise RenderError(missing_message(missing))
    for needed in missing:
        fetch(needed)


def missing_message(missing: list[Needed]) -> str:
    lines = [f"{n.source + ': ' if n.source else ''}the {n.what} {n.repo}{f' ({n.size})' if n.size else ''} is not "
             "on this machine" for n in missing]
    commands = " && ".join(f"hf download {n.repo}" for n in missing)
    others = "".join(f"; or {n.other}" for n in missing if n.other)
    return ("; ".join(lines) + ", and storyforge downloads models only when asked, never in the middle of a render: "
            f"run `{commands}` once, or render with --download{others}")


def fetch(needed: Needed) -> None:
    """Download one model into the Hugging Face cache, with the hub's progress bars on stderr; one try."""
    import os

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise RenderError(f"--download: the {needed.what} {needed.repo} cannot be downloaded while HF_HUB_OFFLINE "
                          "is set; unset it, or run `hf download " + needed.repo + "` where the hub is reachable")
    try:
        snapshot_download(repo_id=needed.repo, etag_timeout=10)
    except (OSError, HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, ValueError) as error:
        reason = " ".join(str(error).split())[:300]
        raise RenderError(f"--download: the {needed.what} {needed.repo} could not be downloaded ({reason}); check "
                          "the network and the name, or run `hf download " + needed.repo + "`") from None
