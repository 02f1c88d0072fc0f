"""What a skyreels-df cache entry is keyed by (model files, dtypes, device, scheduler, diffusers), known without
importing torch or diffusers: a render whose every job is cached loads neither (see storyforge.backends.base.keyed).

storyforge.backends.skyreels_df keys its entries with these same functions, so both ways give one key."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.backends.model_folder import NotOnThisMachine, folder_sha256, hub_commit, missing_model
from storyforge.errors import RenderError
from storyforge.story.presets import PRESETS

if TYPE_CHECKING:
    from storyforge.backends.base import Keyed
    from storyforge.plan.model import Job

NAME = "skyreels-df"
SCHEDULER_CLASS = "UniPCMultistepScheduler"
# every dtype name the backend takes -> torch's name for it (what the key records)
DTYPE_NAMES: dict[str, str] = {
    "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16", "half": "float16",
    "float32": "float32", "fp32": "float32", "float": "float32",
}
# torch.device(...).type of a device string torch takes, told from its name alone: "cuda", "cuda:1", "mps"...
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
# The diffusers releases whose SkyReels-V2 DF pipelines the planner's arithmetic was checked against (frame and
# window counts, seams, schedules, on the tiny model): [low, high). Others render, with a notice.
VERIFIED_DIFFUSERS = ((0, 42), (0, 43))


@dataclass(frozen=True)
class ModelSource:
    """Where a model string's weights come from: a hub id, a local folder, or the tiny model's folder."""

    kind: str  # hub | folder | tiny
    location: str  # hub id or absolute folder path


def resolve_source(model: str) -> ModelSource:
    """Resolve a preset name, `tiny`, a local folder or a hub id (no network access)."""
    preset = PRESETS.get(model)
    if preset is not None:
        if preset.repo is None:
            from storyforge.backends.tiny import tiny_model_folder

            return ModelSource("tiny", str(tiny_model_folder()))
        return ModelSource("hub", preset.repo)
    folder = Path(model).expanduser()
    if folder.is_dir():
        return ModelSource("folder", str(folder.resolve()))
    if looks_like_path(model):
        raise RenderError(f"model folder '{model}' does not exist; give the folder of a diffusers-format "
                          f"SkyReels-V2 DF model, a hub id, or a preset ({', '.join(PRESETS)})")
    return ModelSource("hub", model)


def looks_like_path(model: str) -> bool:
    """A hub id is `owner/name` (or a bare name); anything else with a path shape is a folder."""
    return model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1 or model.endswith("/")


def model_identity(source: ModelSource, job: Job | None = None) -> dict[str, str]:
    """The model part of the key: a hub id and the snapshot the local Hugging Face cache holds of it (a new one
    behind the same id is a new identity, so its clips render again), or the content hash of the folder's files.
    A hub model the cache lacks is the error that says what to do (at `job`'s line)."""
    if source.kind == "hub":
        try:
            return {"hub_id": source.location, "revision": hub_commit(source.location)}
        except NotOnThisMachine:
            where = f"{job.source}: " if job is not None else ""
            raise RenderError(where + missing_model("render.model", source.location)) from None
    digest = folder_sha256(Path(source.location))
    if source.kind == "tiny":
        from storyforge.backends.tiny import TINY_RECIPE

        return {"tiny": TINY_RECIPE, "sha256": digest}
    return {"folder_sha256": digest}


def identity(model: dict[str, str], *, dtype: str, vae_dtype: str, device_type: str, diffusers: str,
             ulysses: int | None) -> dict[str, Any]:
    """The backend's part of every key: what, besides the job, makes its pixels differ."""
    return {
        "backend": NAME,
        "model": model,
        "dtype": dtype,
        "vae_dtype": vae_dtype,
        "device": device_type,
        "scheduler": SCHEDULER_CLASS,
        "diffusers": diffusers,
        # split attention sums in another order: close to, not bit-equal with, one GPU's pixels
        **({"ulysses": ulysses} if ulysses is not None else {}),
    }


def default_dtype(device_type: str) -> str:
    """bfloat16 on an accelerator, float32 on the CPU (where bfloat16 is slow and gains nothing)."""
    return "float32" if device_type == "cpu" else "bfloat16"


def device_type(device: str) -> str | None:
    """torch.device(device).type for the device strings whose type is their name; None for any other."""
    kind, colon, index = device.partition(":")
    if kind in DEVICE_TYPES and (not colon or index.isdigit()):
        return kind
    return None


def keyed(options: dict[str, Any]) -> Keyed | None:
    """The key of `SkyReelsDF(**options)`'s entries and what loading it would say, without loading it; None
    where only the loaded backend can tell (a torchrun launch, a device string only torch reads, options it
    would refuse: loading it then says why)."""
    from storyforge.backends.base import Keyed

    if set(options) - {"device", "dtype", "parallel"}:
        return None
    dtype = options.get("dtype")
    if options.get("parallel") or (dtype is not None and dtype not in DTYPE_NAMES):  # a split: only it can tell
        return None
    device = options.get("device") or ("cuda" if _cuda() else "cpu")
    kind = device_type(device)
    if kind is None:
        return None
    try:
        version = metadata.version("diffusers")
    except metadata.PackageNotFoundError:
        return None  # loading it names the extra to install
    sources: dict[str, dict[str, str]] = {}

    def of(job: Job) -> dict[str, Any]:
        model = job.settings.model
        if model not in sources:
            sources[model] = model_identity(resolve_source(model), job)
        return identity(sources[model], dtype=DTYPE_NAMES[dtype] if dtype else default_dtype(kind),
                        vae_dtype="float32", device_type=kind, diffusers=version, ulysses=None)

    notice = diffusers_notice(version)
    return Keyed(NAME, of, (notice,) if notice else ())


def diffusers_notice(version: str) -> str | None:
    """A notice when the installed diffusers is outside the versions the planner was verified against."""
    from packaging.version import Version

    low, high = VERIFIED_DIFFUSERS
    if low <= Version(version).release[:2] < high:
        return None
    checked = f">={low[0]}.{low[1]},<{high[0]}.{high[1]}"
    return (f"diffusers {version} is installed, but storyforge's plans were verified against diffusers {checked}: "
            f"frame counts and seams may differ from the plan; install a verified one with "
            f"`pip install 'diffusers{checked}'` (or the repository's constraints.txt)")


def _cuda() -> bool:
    """torch.cuda.is_available(), importing torch only where a GPU driver is installed (without one it is
    False; the same test as storyforge.render.gpu_driver_present)."""
    if importlib.util.find_spec("torch") is None:
        return False
    if not (any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd"))
            or shutil.which("nvidia-smi") is not None):
        return False
    import torch

    return bool(torch.cuda.is_available())
