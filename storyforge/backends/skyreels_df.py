"""The skyreels-df backend: SkyReels-V2 Diffusion-Forcing through diffusers' T2V, I2V and V2V pipelines."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import torch
from diffusers import (
    AutoencoderKLWan,
    SkyReelsV2DiffusionForcingImageToVideoPipeline,
    SkyReelsV2DiffusionForcingPipeline,
    SkyReelsV2DiffusionForcingVideoToVideoPipeline,
    UniPCMultistepScheduler,
)
from PIL import Image as PILImage
from PIL import ImageOps

from storyforge.backends import multigpu
from storyforge.backends.base import RenderInputs
from storyforge.backends.model_folder import folder_sha256
from storyforge.backends.multigpu import SequenceParallel
from storyforge.backends.skyreels_key import (  # noqa: F401 - VERIFIED_DIFFUSERS is read from here too
    SCHEDULER_CLASS,
    VERIFIED_DIFFUSERS,
    ModelSource,
    diffusers_notice,
    identity,
    model_identity,
    resolve_source,
)
from storyforge.errors import RenderError, StoryforgeError
from storyforge.plan.frames import TIME_COMPRESSION
from storyforge.plan.memory import vae_tiling
from storyforge.plan.model import Job
from storyforge.story.presets import PRESETS
from storyforge.story.resolve import Image

log = logging.getLogger(__name__)

PIPELINES: dict[str, type] = {
    "t2v": SkyReelsV2DiffusionForcingPipeline,
    "i2v": SkyReelsV2DiffusionForcingImageToVideoPipeline,
    "extend": SkyReelsV2DiffusionForcingVideoToVideoPipeline,
}
DTYPES: dict[str, torch.dtype] = {
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
    "half": torch.float16, "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
}
# MagCache needs per-step magnitude ratios, which are checkpoint-dependent and were never calibrated for the
# DF checkpoints. These anchors (schedule fraction -> ratio) follow the shape of MagCache's published curve
# for Wan 2.1 T2V 1.3B, the base SkyReels-V2 was trained from: near 1 for most steps, falling at the end.
MAG_RATIO_ANCHORS: tuple[tuple[float, float], ...] = (
    (0.0, 1.0), (0.02, 1.012), (0.05, 1.002), (0.1, 0.997), (0.3, 0.995), (0.5, 0.993), (0.6, 0.991),
    (0.7, 0.988), (0.8, 0.983), (0.9, 0.967), (0.95, 0.94), (1.0, 0.86),
)


def dtype_keyword(version: str) -> str:
    """`from_pretrained`'s keyword for the weights' dtype: `dtype` from diffusers 0.40 on, `torch_dtype` before."""
    from packaging.version import Version

    return "dtype" if Version(version).release[:2] >= (0, 40) else "torch_dtype"


@dataclass
class _Loaded:
    """One model's components, shared by the three pipeline classes."""

    pipelines: dict[str, Any]
    scheduler_config: dict[str, Any]
    schedulers: dict[float, Any] = field(default_factory=dict)  # flow_shift -> scheduler
    offloaded_by: str | None = None  # the pipeline whose offload hooks are on the shared modules


class SkyReelsDF:
    """Renders jobs with the SkyReels-V2 DF pipelines; each model is loaded once per instance."""

    name = "skyreels-df"
    splits_generations = True  # takes `parallel`: an executor running ranks (torchrun) hands it their group

    def __init__(self, device: str | None = None, dtype: str | None = None,
                 parallel: SequenceParallel | None = None):
        # parallel: the Ulysses group each generation is split across (storyforge.executors.ranks joins it)
        self.parallel = parallel
        if device is None and self.parallel is not None:
            device = self.parallel.device
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device_type = torch.device(self.device).type
        self.accelerated = self.device_type != "cpu"
        if dtype is not None and dtype not in DTYPES:
            raise RenderError(f"unknown dtype '{dtype}'; use one of: bfloat16, float16, float32")
        self.dtype = DTYPES[dtype] if dtype else (torch.bfloat16 if self.accelerated else torch.float32)
        # the Wan VAE is run in float32 on every device (as diffusers' docs do): bf16 decodes visibly worse
        self.vae_dtype = torch.float32
        self._loaded: dict[str, _Loaded] = {}
        self.model_loads = 0  # models read from disk by this backend: run.json reports them
        self._sources: dict[str, ModelSource] = {}
        notice = diffusers_notice(diffusers.__version__)
        self.notices: list[str] = [notice] if notice else []  # shown once per render

    # -- what a model string means --------------------------------------------------------------------
    def source(self, model: str) -> ModelSource:
        """Resolve a preset name, `tiny`, a local folder or a hub id (no network access)."""
        if model not in self._sources:
            self._sources[model] = resolve_source(model)
        return self._sources[model]

    def identity(self, job: Job) -> dict[str, Any]:
        # the same function keys entries before any backend is loaded (storyforge.backends.skyreels_key)
        return identity(model_identity(self.source(job.settings.model), job), dtype=_dtype_name(self.dtype),
                        vae_dtype=_dtype_name(self.vae_dtype), device_type=self.device_type,
                        diffusers=diffusers.__version__,
                        ulysses=self.parallel.size if self.parallel is not None else None)

    def folder_hash(self, folder: Path) -> str:
        """sha256 over the folder's file names, sizes and contents; recomputed only when a file's stat changes."""
        return folder_sha256(folder)

    # -- loading --------------------------------------------------------------------------------------
    def pipeline(self, model: str, kind: str, offload: str = "model") -> Any:
        """The loaded diffusers pipeline for `kind` (t2v | i2v | extend); all three share one model's parts.

        On a GPU, `offload` (render.offload) places them: `model` is diffusers' enable_model_cpu_offload (one
        component on the GPU at a time), `sequential` its enable_sequential_cpu_offload (module by module), `none`
        everything on the GPU. storyforge.plan.memory estimates what each needs."""
        loaded = self._load(model)
        if kind not in loaded.pipelines:
            pipe = (_EndFrameVideoToVideo if kind == "extend-to-end" else PIPELINES[kind])(
                **loaded.pipelines["t2v"].components)
            pipe.set_progress_bar_config(disable=True)  # progress goes through on_step, not tqdm on stderr
            loaded.pipelines[kind] = pipe
        pipe = loaded.pipelines[kind]
        if self.accelerated and loaded.offloaded_by != f"{kind}:{offload}":
            # offload hooks live on the shared modules, but each pipeline re-arms only its own after a call
            if offload == "sequential":
                pipe.enable_sequential_cpu_offload(device=self.device)
            elif offload == "model":
                pipe.enable_model_cpu_offload(device=self.device)
            else:
                pipe.to(self.device)
            loaded.offloaded_by = f"{kind}:{offload}"
        return pipe

    def _load(self, model: str) -> _Loaded:
        if model in self._loaded:
            return self._loaded[model]
        source = self.source(model)
        try:
            keyword = dtype_keyword(diffusers.__version__)
            # never a download in the middle of a render: storyforge.backends.weights fetched it first, or refused
            with _loading_bars_off():
                vae = AutoencoderKLWan.from_pretrained(source.location, subfolder="vae", local_files_only=True,
                                                       **{keyword: self.vae_dtype})
                pipe = SkyReelsV2DiffusionForcingPipeline.from_pretrained(source.location, vae=vae,
                                                                          local_files_only=True,
                                                                          **{keyword: self.dtype})
        except Exception as error:  # hub, file and format errors all mean "cannot load"
            if _is_oom(error):
                raise RenderError(_oom_advice(f"loading model '{model}'")) from error
            raise RenderError(_load_failure(model, source, error)) from error
        if not self.accelerated:
            pipe.to(self.device)
        if self.parallel is not None:
            multigpu.shard_transformer(pipe.transformer, self.parallel)
        pipe.set_progress_bar_config(disable=True)
        loaded = _Loaded(pipelines={"t2v": pipe}, scheduler_config=dict(pipe.scheduler.config))
        self._loaded[model] = loaded
        self.model_loads += 1
        return loaded

    def _scheduler(self, loaded: _Loaded, shift: float) -> Any:
        # one scheduler per shift, built from the model's saved config: a job's shift never leaks into another
        if shift not in loaded.schedulers:
            loaded.schedulers[shift] = UniPCMultistepScheduler.from_config(loaded.scheduler_config, flow_shift=shift)
        return loaded.schedulers[shift]

    # -- rendering ------------------------------------------------------------------------------------
    def call_arguments(self, job: Job, inputs: RenderInputs) -> dict[str, Any]:
        """The keyword arguments of the pipeline call for `job`, without generator and callback."""
        s = job.settings
        arguments: dict[str, Any] = {
            "prompt": job.prompt,
            "negative_prompt": s.negative_prompt,
            "height": s.height,
            "width": s.width,
            # a long image shot renders its first window from the image, then extends it (see `render`)
            "num_frames": s.base_frames if _split(job) else job.num_frames,
            "num_inference_steps": s.steps,
            "guidance_scale": s.guidance,
            "output_type": "np",
            "overlap_history": s.overlap_frames,
            "addnoise_condition": s.addnoise_condition,
            "base_num_frames": s.base_frames,
            "ar_step": s.ar_step,
            # sticky: the pipelines write it into the shared transformer's config, so pass it every time
            "causal_block_size": s.causal_block_size,
            "fps": s.fps,
        }
        if job.kind == "i2v":
            start = job.image if job.image is not None else inputs.start_image  # given, or its keyframe
            if start is None:
                raise RenderError(f"job {job.id}: an image-to-video job has no start image")
            arguments["image"] = load_image(start, s.width, s.height)
            if job.end_image is not None and not _split(job):
                arguments["last_image"] = load_image(job.end_image, s.width, s.height)
        elif job.kind == "extend":
            arguments["video"] = _previous_video(job, inputs)
            if job.end_image is not None:
                arguments["last_image"] = load_image(job.end_image, s.width, s.height)
        elif job.kind == "bridge":  # from the last frames of one shot to the first frame of the next
            arguments["video"] = _previous_video(job, inputs)
            arguments["last_image"] = _next_frame(job, inputs)
        elif job.kind != "t2v":
            raise RenderError(f"job {job.id}: unknown job kind '{job.kind}'")
        return arguments

    def extension_arguments(self, job: Job, first: dict[str, Any], frames: np.ndarray) -> dict[str, Any]:
        """The V2V call that extends a long image shot's first window (`frames`, float) to the job's length.

        It is the same generation, windows and seams as one long I2V call (the window after the first is
        conditioned on the last `overlap_frames` of the one before), re-encoded from pixels between the
        two calls as SkyReels-V2's own pipeline does between every pair of windows.
        """
        s = job.settings
        arguments = {key: value for key, value in first.items() if key != "image"}
        arguments["num_frames"] = s.overlap_frames + job.num_frames - s.base_frames
        arguments["video"] = np.ascontiguousarray(frames[-s.overlap_frames:], dtype=np.float32)
        if job.end_image is not None:
            arguments["last_image"] = load_image(job.end_image, s.width, s.height)
        return arguments

    def frames(self, job: Job, inputs: RenderInputs) -> Iterator[np.ndarray]:
        """The job's new frames as uint8 chunks, decoded a latent frame at a time after each pipeline call.

        The pipelines hand their latents over instead of decoding them (see `_decode_later`); the VAE then
        decodes exactly what they would have decoded, one latent frame (4 video frames) at a time, and each
        chunk goes to the clip writer before the next is made: memory stays flat however long the shot.
        """
        try:
            yield from self._frames(job, inputs)
        except StoryforgeError:
            raise
        except Exception as error:  # whatever a pipeline raises, the user learns which shot and why
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise RenderError(f"{job.id}: the skyreels-df backend failed: {type(error).__name__}"
                              f"{': ' + reason if reason else ''} (at {job.source}); if the story is valid, "
                              f"please report it with the plan (storyforge plan --json)") from error

    def render(self, job: Job, inputs: RenderInputs) -> np.ndarray:
        """All the job's new frames at once (`frames` joined)."""
        return np.concatenate(list(self.frames(job, inputs)))

    def _frames(self, job: Job, inputs: RenderInputs) -> Iterator[np.ndarray]:
        s = job.settings
        if self.parallel is not None:
            self._check_parallel(job, self.parallel)
        loaded = self._load(s.model)
        kind = _pipeline_kind(job)
        pipe = self.pipeline(s.model, kind, s.offload)
        arguments = self.call_arguments(job, inputs)
        pipe.scheduler = self._scheduler(loaded, s.shift)
        if vae_tiling(s.width, s.height, s.offload if self.accelerated else "none"):  # as the plan's estimate says
            pipe.vae.enable_tiling()
        else:
            pipe.vae.disable_tiling()
        total = job.rows
        rows = 0

        def step_end(_pipe: Any, _step: int, _timestep: Any, _tensors: dict[str, Any]) -> dict[str, Any]:
            nonlocal rows
            rows += 1
            if inputs.on_step is not None and rows < total:  # `total` is reported once, when the clip is ready
                inputs.on_step(rows, total)
            return {}

        generator = torch.Generator(device="cpu").manual_seed(job.seed)
        torch.manual_seed(job.seed)  # addnoise_condition draws from the global RNG, not from `generator`
        made = _Made(job)
        try:
            with _attention(pipe.transformer, job), _transformer_cache(pipe.transformer, job), \
                    _decode_later(pipe.vae) as latents:
                pipe(**arguments, generator=generator, callback_on_step_end=step_end,
                     callback_on_step_end_tensor_inputs=[])
            if _split(job):  # a long image shot: its first window, then V2V from that window's last frames
                last: np.ndarray | None = None
                for chunk in _decoded(pipe, latents[-1]):
                    last = chunk[-s.overlap_frames:] if last is None else \
                        np.concatenate([last, chunk])[-s.overlap_frames:]
                    yield made.add(_to_uint8(chunk.copy()))
                assert last is not None
                extension = self.extension_arguments(job, arguments, last)
                rest_kind = "extend-to-end" if job.end_image is not None else "extend"
                rest_pipe = self.pipeline(s.model, rest_kind, s.offload)
                rest_pipe.scheduler = self._scheduler(loaded, s.shift)
                with _attention(rest_pipe.transformer, job), _transformer_cache(rest_pipe.transformer, job), \
                        _decode_later(rest_pipe.vae) as latents:
                    rest_pipe(**extension, generator=generator, callback_on_step_end=step_end,
                              callback_on_step_end_tensor_inputs=[])
                # its decode begins with the overlap again (already in the first window) and, towards an end
                # image, ends with the end image's latent, one past the clip
                chunks = _trimmed(_decoded(rest_pipe, latents[-1]), s.overlap_frames,
                                  TIME_COMPRESSION if job.end_image is not None else 0)
            else:
                # an extension's decode begins with the overlap it continues from, already in the clip before
                chunks = _trimmed(_decoded(pipe, latents[-1]), s.overlap_frames if job.continues else 0,
                                  TIME_COMPRESSION if kind == "extend-to-end" else 0)
            for chunk in chunks:
                yield made.add(_to_uint8(chunk))
        except (RuntimeError, MemoryError) as error:
            if not _is_oom(error):
                raise
            self._empty_device_cache()
            raise RenderError(_oom_advice(f"job {job.id} ({s.width}x{s.height}, {job.num_frames} frames)")) from error
        made.check()
        if rows != total:
            log.warning("job %s ran %d denoising rows; the plan counted %d (progress and ETA are off)",
                        job.id, rows, total)
        if inputs.on_step is not None:
            inputs.on_step(total, total)

    def _check_parallel(self, job: Job, parallel: SequenceParallel) -> None:
        """Every rank must run the same generation: the same job and seed (the noise is drawn on each rank)."""
        if parallel.from_first((job.key, job.seed)) != (job.key, job.seed):
            raise RenderError(f"job {job.id}: this rank's plan differs from rank 0's (key or seed); every torchrun "
                              "process must render the same story file with the same options")
        heads = self._load(job.settings.model).pipelines["t2v"].transformer.config.num_attention_heads
        multigpu.check_size(parallel, heads, job.settings.width, job.settings.height, job.id)

    def close(self) -> None:
        self._loaded.clear()
        gc.collect()
        self._empty_device_cache()

    def _empty_device_cache(self) -> None:
        if self.device_type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()


# -- helpers ---------------------------------------------------------------------------------------------
def _split(job: Job) -> bool:
    """A long image shot: its first window is rendered by I2V from the image, the rest by V2V extension.

    diffusers' I2V pipeline fails on most long lengths (its last window must be a full one, and an end
    image only works within one window); SkyReels-V2's own pipeline renders any length.
    """
    return job.kind == "i2v" and job.num_frames > job.settings.base_frames


def _pipeline_kind(job: Job) -> str:
    """Which pipeline makes the job's (first) call: t2v, i2v, extend, or extend-to-end (V2V with an end image)."""
    if job.kind == "bridge":  # V2V aimed at the next shot's first frame, as a continue towards an end image
        return "extend-to-end"
    return "extend-to-end" if job.kind == "extend" and job.end_image is not None else job.kind


@contextmanager
def _attention(transformer: Any, job: Job) -> Iterator[None]:
    """Full attention, or block-causal attention when the job asks for it, for this call only.

    The DF pipelines call `transformer._set_ar_attention(causal_block_size)` whenever a causal_block_size is
    passed: it writes it into the transformer's (shared, sticky) config, and every forward then builds a dense
    (tokens x tokens) mask and cannot use flash attention. SkyReels-V2's generate_video_df.py schedules the
    blocks with full attention unless --causal_attention is given: the schedule gets causal_block_size, the
    attention gets it only with `causal_attention: true`.
    """
    transformer.register_to_config(num_frame_per_block=job.settings.causal_block_size if job.block_causal else 1)
    transformer._set_ar_attention = _keep_attention  # shadows the method on this instance during the call
    try:
        yield
    finally:
        del transformer._set_ar_attention
        transformer.register_to_config(num_frame_per_block=1)


def _keep_attention(_causal_block_size: int) -> None:
    """Stands in for the transformer's `_set_ar_attention` while `_attention` decides the attention."""


class _EndFrameVideoToVideo(SkyReelsV2DiffusionForcingVideoToVideoPipeline):
    """V2V extension whose last window ends on an end image, as the I2V pipeline's `last_image` does.

    The end image's latent is appended to the last window, held clean (timestep 0, never updated) and
    decoded after the clip's last latent: the caller drops its frames. SkyReels-V2's own pipeline does the
    same for end images on long videos; diffusers' V2V pipeline takes no end image.
    """

    _end_latents: Any = None
    _last_iteration: int = -1
    _end_now: bool = False

    def __call__(self, *args: Any, last_image: Any = None, **kwargs: Any) -> Any:
        from diffusers.pipelines.skyreels_v2.pipeline_skyreels_v2_diffusion_forcing_i2v import retrieve_latents

        from storyforge.plan import frames as fx

        if last_image is None:
            raise TypeError("_EndFrameVideoToVideo needs last_image")
        height, width = kwargs["height"], kwargs["width"]
        image = self.video_processor.preprocess(last_image, height=height, width=width)
        image = image.unsqueeze(2).to(device=self._execution_device, dtype=self.vae.dtype)
        mean = torch.tensor(self.vae.config.latents_mean).view(1, -1, 1, 1, 1).to(image.device, image.dtype)
        std = torch.tensor(self.vae.config.latents_std).view(1, -1, 1, 1, 1).to(image.device, image.dtype)
        self._end_latents = (retrieve_latents(self.vae.encode(image), sample_mode="argmax") - mean) / std
        counts = fx.windows(fx.latents(kwargs["num_frames"]), fx.latents(kwargs["base_num_frames"]),
                            fx.latents(kwargs["overlap_history"]))
        self._last_iteration = len(counts) - 1
        try:
            return super().__call__(*args, **kwargs)
        finally:
            self._end_latents, self._last_iteration, self._end_now = None, -1, False

    def prepare_latents(self, *args: Any, **kwargs: Any) -> Any:
        latents, count, prefix, prefix_count = super().prepare_latents(*args, **kwargs)
        self._end_now = kwargs.get("long_video_iter") == self._last_iteration
        if self._end_now:
            latents = torch.cat([latents, self._end_latents.to(latents.device, latents.dtype)], dim=2)
            count += self._end_latents.shape[2]
        return latents, count, prefix, prefix_count

    def generate_timestep_matrix(self, *args: Any, **kwargs: Any) -> Any:
        matrix, index, mask, interval = super().generate_timestep_matrix(*args, **kwargs)
        if self._end_now:
            end = self._end_latents.shape[2]
            matrix[:, -end:] = 0
            mask[:, -end:] = False
        return matrix, index, mask, interval


@contextmanager
def _loading_bars_off() -> Iterator[None]:
    """Silence diffusers' and transformers' per-component loading bars (hub download bars stay on)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    was_on = diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on[0]:
            diffusers_logging.enable_progress_bar()
        if was_on[1]:
            transformers_logging.enable_progress_bar()


def _load_failure(model: str, source: ModelSource, error: Exception) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if source.kind == "hub":
        return (f"model '{model}' could not be loaded from the Hugging Face cache (repo {source.location}): "
                f"{reason}. Download it (again) with `hf download {source.location}` or render with --download "
                f"(`hf auth login` first for a gated model), or give a local folder or a preset "
                f"({', '.join(PRESETS)})")
    return (f"model folder '{source.location}' could not be loaded as a diffusers SkyReels-V2 DF model: {reason}. "
            f"It needs model_index.json and the vae, transformer, text_encoder, tokenizer and scheduler folders")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in str(error).lower()


def _oom_advice(what: str) -> str:
    return (f"out of memory while {what}. Try a smaller model (df-1.3b-540p), a lower resolution, fewer "
            f"base_frames (each window holds base_frames frames at once), or free the GPU of other processes")


def load_image(path: Path | Image, width: int, height: int) -> PILImage.Image:
    """An image centre-cropped to the frame's aspect ratio, then resized (the pipelines would stretch it).
    A story's image (`Image`) is read once and checked against the plan's hash; a Path is a cached keyframe."""
    try:
        with PILImage.open(path if isinstance(path, Path) else path.stream()) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
    except OSError as error:
        raise RenderError(f"cannot read image {path}: {error}") from error
    return ImageOps.fit(image, (width, height), method=PILImage.Resampling.LANCZOS, centering=(0.5, 0.5))


def _previous_video(job: Job, inputs: RenderInputs) -> list[PILImage.Image]:
    overlap = job.settings.overlap_frames
    previous = inputs.previous_frames
    if previous is None or len(previous) < overlap:
        have = 0 if previous is None else len(previous)
        raise RenderError(f"job {job.id} continues the previous shot and needs its last {overlap} frames, got {have}")
    expected = (job.settings.height, job.settings.width, 3)
    if tuple(previous.shape[1:]) != expected:
        raise RenderError(f"job {job.id}: previous frames are {tuple(previous.shape[1:])}, expected {expected}")
    return [PILImage.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)) for frame in previous[-overlap:]]


def _next_frame(job: Job, inputs: RenderInputs) -> PILImage.Image:
    """The first frame of the shot a bridge leads into, as the end image of its last window."""
    following = inputs.next_frames
    if following is None or not len(following):
        raise RenderError(f"job {job.id} is a bridge into {job.before} and needs that shot's first frame, got none")
    expected = (job.settings.height, job.settings.width, 3)
    if tuple(following.shape[1:]) != expected:
        raise RenderError(f"job {job.id}: the next shot's frames are {tuple(following.shape[1:])}, expected {expected}")
    return PILImage.fromarray(np.ascontiguousarray(following[0], dtype=np.uint8))


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] to uint8, rounded and clipped; consumes `frames` (in place: no second float copy)."""
    frames = np.asarray(frames, dtype=np.float32)
    np.multiply(frames, 255.0, out=frames)
    np.rint(frames, out=frames)
    np.clip(frames, 0, 255, out=frames)
    return frames.astype(np.uint8)


class _Made:
    """Counts the frames a job has made, refusing more or fewer than the plan's (a planner bug)."""

    def __init__(self, job: Job):
        self.job, self.count = job, 0

    def add(self, chunk: np.ndarray) -> np.ndarray:
        self.count += len(chunk)
        if self.count > self.job.frames:
            self._refuse()
        expected = (self.job.settings.height, self.job.settings.width, 3)
        if chunk.shape[1:] != expected:
            raise RenderError(f"job {self.job.id}: the pipeline returned frames of shape {chunk.shape[1:]}, "
                              f"expected {expected}")
        return chunk

    def check(self) -> None:
        if self.count != self.job.frames:
            self._refuse()

    def _refuse(self) -> None:
        job, s = self.job, self.job.settings
        raise RenderError(
            f"job {job.id}: the pipeline made {'more than ' if self.count > job.frames else ''}{self.count} new "
            f"frames but the plan needs {job.frames} (num_frames {job.num_frames}, base_frames {s.base_frames}, "
            f"overlap_frames {s.overlap_frames}, causal_block_size {s.causal_block_size}); this is a planner "
            "bug, please report it")


@contextmanager
def _decode_later(vae: Any) -> Iterator[list[Callable[[], Iterator[torch.Tensor]]]]:
    """While a pipeline runs, its VAE decode keeps the latents it is given (after the pipeline's own slicing
    and denormalisation: exactly what it would decode) and returns no frames; each call leaves behind a
    function that decodes them, a latent frame at a time (see storyforge.backends.wan_latents)."""
    from storyforge.backends.wan_latents import decode_chunks, supported

    taken: list[Callable[[], Iterator[torch.Tensor]]] = []
    whole = vae.decode  # a diffusers whose VAE internals differ: decoded at once, then handed over in slices

    def decode(z: torch.Tensor, return_dict: bool = True) -> Any:
        from diffusers.models.autoencoders.vae import DecoderOutput

        if supported(vae):
            taken.append(lambda: decode_chunks(vae, z))
        else:
            pixels = whole(z, return_dict=False)[0]
            taken.append(lambda: iter(pixels.split(1, dim=2)))
        ratio = vae.spatial_compression_ratio
        nothing = z.new_zeros((z.shape[0], 3, 0, z.shape[3] * ratio, z.shape[4] * ratio))
        return DecoderOutput(sample=nothing) if return_dict else (nothing,)

    vae.decode = decode  # an instance attribute: the class's decode is back once it is deleted
    try:
        yield taken
    finally:
        del vae.decode
    if len(taken) != 1:
        raise RuntimeError(f"the pipeline decoded {len(taken)} times; storyforge expects one decode per call")


def _decoded(pipe: Any, decode: Callable[[], Iterator[torch.Tensor]]) -> Iterator[np.ndarray]:
    """What `pipe` would have returned as np frames, one latent frame's float frames (n, H, W, 3) at a time."""
    for pixels in decode():
        yield pipe.video_processor.postprocess_video(pixels, output_type="np")[0]


def _trimmed(chunks: Iterator[np.ndarray], head: int, tail: int) -> Iterator[np.ndarray]:
    """`chunks` without their first `head` and last `tail` frames, holding back at most `tail` frames."""
    held: np.ndarray | None = None
    for chunk in chunks:
        if head:
            skip = min(head, len(chunk))
            chunk, head = chunk[skip:], head - skip
        if not len(chunk):
            continue
        if tail:
            held = chunk if held is None else np.concatenate([held, chunk])
            if len(held) > tail:
                chunk, held = held[:-tail], held[-tail:]
            else:
                continue
        yield chunk


def _mag_ratios(steps: int) -> list[float]:
    if steps == 1:
        return [1.0]
    xs = [x for x, _ in MAG_RATIO_ANCHORS]
    ys = [y for _, y in MAG_RATIO_ANCHORS]
    return [float(v) for v in np.interp(np.linspace(0.0, 1.0, steps), xs, ys)]


_BLOCK_REGISTERED = False


def _register_block() -> None:
    """Teach diffusers' cache hooks where the SkyReels block's hidden states are (it ships unregistered)."""
    global _BLOCK_REGISTERED
    if _BLOCK_REGISTERED:
        return
    from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
    from diffusers.models.transformers.transformer_skyreels_v2 import SkyReelsV2TransformerBlock

    TransformerBlockRegistry.register(
        model_class=SkyReelsV2TransformerBlock,
        metadata=TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=None))
    _BLOCK_REGISTERED = True


@contextmanager
def _transformer_cache(transformer: Any, job: Job) -> Iterator[None]:
    """The job's experimental transformer cache, on for this call only; refused unless windows are equal."""
    kind = job.settings.cache
    if kind is None:
        yield
        return
    if kind not in ("magcache", "firstblock"):
        raise RenderError(f"job {job.id}: unknown render.cache '{kind}'; use magcache or firstblock")
    sizes = [w.latent_frames for w in job.segments]
    rows = [w.rows for w in job.segments]
    if len(set(sizes)) > 1:
        raise RenderError(
            f"job {job.id}: render.cache {kind} needs windows of one size, but this job's windows have {sizes} "
            f"latents (the cache keeps state across windows and breaks on a shorter one); choose a duration "
            f"that gives equal windows, or remove `cache`")
    if kind == "magcache" and len(set(rows)) > 1:
        raise RenderError(
            f"job {job.id}: render.cache magcache needs every window to take the same number of denoising rows, "
            f"but this job's take {rows} (asynchronous mode, the first window has no prefix); remove `cache` "
            f"or use firstblock")
    from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig

    _register_block()
    if kind == "magcache":
        # the hook counts transformer calls per guidance branch and restarts every `num_inference_steps`:
        # one window's rows
        config: Any = MagCacheConfig(num_inference_steps=rows[0], mag_ratios=_mag_ratios(rows[0]))
    else:
        config = FirstBlockCacheConfig()
    transformer.enable_cache(config)
    try:
        yield
    finally:
        transformer.disable_cache()
