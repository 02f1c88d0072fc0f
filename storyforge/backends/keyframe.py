"""The keyframe backend: a diffusers image-edit pipeline composes a shot's reference images into its first frame.

The default is Qwen-Image-Edit-2509 (diffusers' QwenImageEditPlusPipeline), which takes several input images;
any diffusers pipeline whose call takes a list of images as `image` may be named. torch and diffusers are
imported only when a keyframe is rendered: identities and cache look-ups stay light.
"""

from __future__ import annotations

import gc
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from storyforge.backends.model_folder import folder_sha256, hub_commit, missing_model
from storyforge.errors import RenderError
from storyforge.story.presets import KEYFRAME_PRESETS, TINY_EDIT_RECIPE

if TYPE_CHECKING:
    import numpy as np

    from storyforge.plan.model import Keyframe

# Guidance above 1 needs a negative prompt to switch classifier-free guidance on (Qwen's own examples use " ").
NEGATIVE_PROMPT = " "


class KeyframeBackend(Protocol):
    """Turns one keyframe into its picture."""

    name: str

    def identity(self, keyframe: Keyframe) -> dict[str, Any]:
        """What, besides the keyframe's key, makes the picture differ (the model's files)."""
        ...

    def render(self, keyframe: Keyframe) -> np.ndarray:
        """The picture: uint8 (height, width, 3); floats holding NaN when the model computed no picture at all,
        which the render loop refuses at the shot (storyforge.keyframes.refuse_blank)."""
        ...

    def close(self) -> None:
        """Free the model and its memory (before the video model loads)."""
        ...


@dataclass(frozen=True)
class EditModel:
    """Where a keyframe model string's weights are: a hub id, a local folder, or the tiny model."""

    kind: str  # hub | folder | tiny
    location: str  # hub id, absolute folder path, or the tiny recipe


def edit_model(model: str) -> EditModel:
    """A keyframe preset, a local folder or a hub id (no network, no torch)."""
    preset = KEYFRAME_PRESETS.get(model)
    if preset is not None:
        if preset.repo is None:
            return EditModel("tiny", TINY_EDIT_RECIPE)
        return EditModel("hub", preset.repo)
    folder = Path(model).expanduser()
    if folder.is_dir():
        return EditModel("folder", str(folder.resolve()))
    if model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1 or model.endswith("/"):
        raise RenderError(f"keyframes.model: the folder '{model}' does not exist; give the folder of a diffusers "
                          f"image-edit pipeline, a hub id, or a preset ({', '.join(KEYFRAME_PRESETS)})")
    return EditModel("hub", model)


def model_identity(model: str) -> dict[str, str]:
    """The edit model's identity for cache keys: the hub id, the tiny recipe, or a local folder's content hash.

    The device and dtype are left out on purpose: a keyframe approved on one machine stays the start frame of
    its shot on another (the video's own cache entry still records how its frames were made)."""
    source = edit_model(model)
    if source.kind == "hub":  # the snapshot the local cache holds; NotOnThisMachine when it holds none
        return {"hub_id": source.location, "revision": hub_commit(source.location)}
    if source.kind == "tiny":
        return {"tiny": source.location}
    return {"folder_sha256": folder_sha256(Path(source.location))}


class ImageEdit:
    """Renders keyframes with a diffusers image-edit pipeline; each model is loaded once per instance."""

    name = "image-edit"

    def __init__(self, device: str | None = None, dtype: str | None = None):
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.accelerated = torch.device(self.device).type != "cpu"
        names = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16,
                 "fp16": torch.float16, "float32": torch.float32, "fp32": torch.float32}
        if dtype is not None and dtype not in names:
            raise RenderError(f"unknown dtype '{dtype}'; use one of: bfloat16, float16, float32")
        self.dtype = names[dtype] if dtype else (torch.bfloat16 if self.accelerated else torch.float32)
        self._pipelines: dict[str, Any] = {}
        self.model_loads = 0  # models read from disk by this backend: run.json reports them (the holder sums)

    def identity(self, keyframe: Keyframe) -> dict[str, Any]:
        return {"backend": self.name, "model": model_identity(keyframe.model)}

    def pipeline(self, keyframe: Keyframe) -> Any:
        """The loaded pipeline for the keyframe's model (no download: see `missing_weights`)."""
        if keyframe.model in self._pipelines:
            return self._pipelines[keyframe.model]
        from diffusers import DiffusionPipeline

        source = edit_model(keyframe.model)
        location = source.location
        if source.kind == "tiny":
            from storyforge.backends.tiny_keyframe import tiny_edit_folder

            location = str(tiny_edit_folder())
        elif source.kind == "hub" and not _in_hub_cache(location):
            raise RenderError(missing_weights(keyframe, location))
        from storyforge.backends.tiny_keyframe import allow_processor_without_video

        allow_processor_without_video()
        try:
            from diffusers.utils import logging as diffusers_logging
            from transformers.utils import logging as transformers_logging

            shown = diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()
            diffusers_logging.disable_progress_bar()  # per-component loading bars: noise on the render's stderr
            transformers_logging.disable_progress_bar()
            try:
                # never trust_remote_code: only pipeline classes that ship with diffusers load
                pipe = DiffusionPipeline.from_pretrained(location, dtype=self.dtype, local_files_only=True,
                                                         trust_remote_code=False)
            finally:
                if shown[0]:
                    diffusers_logging.enable_progress_bar()
                if shown[1]:
                    transformers_logging.enable_progress_bar()
        except Exception as error:  # noqa: BLE001 - file and format errors all mean "cannot load"
            if _is_oom(error):
                raise RenderError(f"{keyframe.source}: keyframes.model: out of memory while loading "
                                  f"'{keyframe.model}'; free the GPU of other processes or use a smaller edit "
                                  "model") from error
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            what = f"the hub cache's copy of {location}" if source.kind == "hub" else f"the folder {location}"
            raise RenderError(f"{keyframe.source}: keyframes.model: {what} could not be loaded as a diffusers "
                              f"pipeline ({reason}); download it again with `hf download {location}`"
                              if source.kind == "hub" else
                              f"{keyframe.source}: keyframes.model: {what} could not be loaded as a diffusers "
                              f"pipeline ({reason}); it needs model_index.json and its component folders") from error
        if "image" not in inspect.signature(pipe.__call__).parameters:
            raise RenderError(f"{keyframe.source}: keyframes.model: '{keyframe.model}' is a "
                              f"{type(pipe).__name__}, which takes no input images; keyframes need an image-edit "
                              "pipeline that takes a list of images, such as QwenImageEditPlusPipeline")
        if self.accelerated:
            pipe.enable_model_cpu_offload(device=self.device)  # one component on the GPU at a time
        else:
            pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self._pipelines[keyframe.model] = pipe
        self.model_loads += 1
        return pipe

    def call_arguments(self, pipe: Any, keyframe: Keyframe) -> dict[str, Any]:
        """The keyword arguments of the pipeline call, without the generator."""
        parameters = inspect.signature(pipe.__call__).parameters
        arguments: dict[str, Any] = {
            "image": [load_reference(reference.image) for reference in keyframe.references],
            "prompt": keyframe.prompt, "height": keyframe.height, "width": keyframe.width,
            "num_inference_steps": keyframe.steps, "output_type": "np",
        }
        if "true_cfg_scale" in parameters:  # Qwen-Image: real classifier-free guidance, on with a negative prompt
            arguments["true_cfg_scale"] = keyframe.guidance
            if keyframe.guidance > 1:
                arguments["negative_prompt"] = NEGATIVE_PROMPT
        elif "guidance_scale" in parameters:
            arguments["guidance_scale"] = keyframe.guidance
        return arguments

    def render(self, keyframe: Keyframe) -> np.ndarray:
        import numpy as np
        import torch

        pipe = self.pipeline(keyframe)
        arguments = self.call_arguments(pipe, keyframe)
        generator = torch.Generator(device="cpu").manual_seed(keyframe.seed)
        try:
            output = pipe(**arguments, generator=generator)
        except (RuntimeError, MemoryError) as error:
            if not _is_oom(error):
                raise
            self.close()
            raise RenderError(f"out of memory while composing a keyframe at {keyframe.width}x{keyframe.height} "
                              f"from {len(keyframe.references)} references; free the GPU of other processes or "
                              "give fewer references") from error
        picture = np.asarray(output.images[0], dtype=np.float32)
        if picture.shape != (keyframe.height, keyframe.width, 3):
            raise RenderError(f"the keyframe model returned a picture of shape {picture.shape}, expected "
                              f"{(keyframe.height, keyframe.width, 3)}; use an edit pipeline that honours "
                              "height and width")
        if not np.isfinite(picture).all():
            return picture  # not a picture: the caller (keyframes.refuse_blank) says so at the shot
        return np.clip(np.rint(picture * 255.0), 0, 255).astype(np.uint8)

    def close(self) -> None:
        import torch

        self._pipelines.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def load_reference(path: Path | Any) -> Any:
    """A reference image as RGB, upright (the pipeline sizes it as it needs); a story's image (with `stream()`)
    is read once and checked against the plan's hash."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path.stream() if hasattr(path, "stream") else path) as image:
            return ImageOps.exif_transpose(image).convert("RGB")
    except OSError as error:
        raise RenderError(f"cannot read reference image {path}: {error}") from error


def _in_hub_cache(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id=repo, filename="model_index.json")
    return isinstance(found, str)


def missing_weights(keyframe: Keyframe, repo: str) -> str:
    """`file:line: keyframes.model: ...` what to do about an edit model this machine does not have."""
    preset = KEYFRAME_PRESETS.get(keyframe.model)
    size = f" ({preset.weights})" if preset is not None else ""
    return f"{keyframe.source}: " + missing_model("keyframes.model", repo, size, ", or remove `keyframes:` to "
                                                  "render without generated start frames")


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or "out of memory" in str(error).lower()
