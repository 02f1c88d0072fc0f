"""The compiled plan: a Plan of Jobs (one per shot and bridge), each with its DF Segments and place on the timeline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from storyforge.plan.frames import TIME_COMPRESSION, Window, attention_mask_bytes, transformer_calls
from storyforge.story.resolve import Image, Settings
from storyforge.story.source import FileLine

PLAN_FORMAT = 1


@dataclass(frozen=True)
class Transition:
    """How a job begins on the timeline: cut, continue, crossfade, fade or bridge, and its length in frames.

    A shot that a bridge leads into begins with `bridge` and the bridge's frames (they are the bridge job's, before
    it: nothing overlaps); the bridge job itself begins as a `continue` of the shot before it."""

    type: str
    frames: int


@dataclass(frozen=True)
class Reference:
    """A reference image of someone or somewhere in a shot: a character of its cast or its location."""

    kind: str  # character | location
    name: str  # the key under `characters:` or `locations:`
    description: str  # the description as written (the template renders it for prompts)
    image: Image


@dataclass(frozen=True)
class Keyframe:
    """A generated start frame: the edit model composes the references into the shot's first frame."""

    references: tuple[Reference, ...]  # characters first, then the location
    cast: tuple[str, ...]
    location: str | None  # the location's key when it has a reference
    prompt: str  # the edit instruction, from the shot's final prompt and camera
    model: str
    steps: int
    guidance: float
    seed: int
    width: int
    height: int
    key: str = ""
    source: FileLine = FileLine("", 0)  # where `keyframes.model` is written, for messages about the model
    # Candidates (`keyframes: {takes: N}`): N start pictures, each with its own seed; `seed` and `key` above are
    # the picked candidate's, the one the video starts from.
    candidates: int = 1
    pick: int = 1
    seeds: tuple[int, ...] = ()  # per candidate; candidate 1's is the shot's keyframe seed
    keys: tuple[str, ...] = ()  # per candidate

    def candidate(self, number: int) -> Keyframe:
        """This keyframe as candidate `number` makes it: that candidate's seed and key."""
        if not self.seeds:
            return self
        return replace(self, pick=number, seed=self.seeds[number - 1],
                       key=self.keys[number - 1] if self.keys else "")

    @property
    def all_candidates(self) -> tuple[Keyframe, ...]:
        return tuple(self.candidate(n) for n in range(1, self.candidates + 1))

    def to_json(self) -> dict[str, Any]:
        return {"references": [r.image.relative for r in self.references], "prompt": self.prompt, "key": self.key,
                "cast": list(self.cast), "location": self.location, "model": self.model, "steps": self.steps,
                "guidance": self.guidance, "seed": self.seed,
                **({"candidates": self.candidates, "pick": self.pick} if self.candidates > 1 else {})}


@dataclass(frozen=True)
class Job:
    """One pipeline call: a shot compiled to frame counts, windows, settings and a cache key."""

    id: str
    kind: str  # t2v | i2v | extend | bridge
    after: str | None  # the job this one continues
    prompt: str
    template_prompt: str  # the prompt after templates, before any LLM expansion
    camera: str | None
    requested_frames: int
    frames: int  # what the job contributes to the cut, before transitions
    num_frames: int  # the pipeline's num_frames (for an extension: overlap + new frames)
    start_frame: int
    transition: Transition
    segments: tuple[Window, ...]
    seed: int
    settings: Settings
    image: Image | None
    end_image: Image | None
    source: FileLine  # where the shot is written
    key: str = ""
    # the reference images of the shot's cast and location (what the animatic shows without a keyframe)
    references: tuple[Reference, ...] = ()
    keyframe: Keyframe | None = None  # a generated start frame (then kind is i2v and image is None)
    # Takes: each renders the job with its own seed; `seed` and `key` above are the picked take's.
    takes: int = 1
    take: int = 1  # the picked take (1-based): what clips/, the film and a continuing job use
    take_seeds: tuple[int, ...] = ()  # per take; take 1's is the shot's own seed
    take_keys: tuple[str, ...] = ()  # per take, each chained to the picked take of the job it continues
    before: str | None = None  # a bridge: the job whose first frame it ends on (its second parent)
    # (character, line) spoken in the shot: for people and the review page, never in the cache key
    dialogue: tuple[tuple[str, str], ...] = ()
    seams_intended: bool = False  # `seams: {intended: true}`: the change at its seams is asked for

    @property
    def is_bridge(self) -> bool:
        return self.kind == "bridge"

    @property
    def continues(self) -> bool:
        """Whether the job's generation starts from the last frames of the job it comes `after`."""
        return self.kind in ("extend", "bridge")

    def for_take(self, take: int) -> Job:
        """This job as take `take` renders it: that take's seed and key."""
        if not self.take_seeds:
            return self
        return replace(self, take=take, seed=self.take_seeds[take - 1],
                       key=self.take_keys[take - 1] if self.take_keys else "")

    @property
    def all_takes(self) -> tuple[Job, ...]:
        """Every take of this job, take 1 first."""
        return tuple(self.for_take(n) for n in range(1, self.takes + 1))

    @property
    def rows(self) -> int:
        return sum(window.rows for window in self.segments)

    @property
    def transformer_calls(self) -> int:
        return transformer_calls(self.rows, self.settings.guidance)

    @property
    def block_causal(self) -> bool:
        """Whether the transformer runs block-causal attention (a dense mask) rather than full attention."""
        return self.settings.causal_attention and self.settings.causal_block_size > 1

    @property
    def attention_mask_bytes(self) -> int:
        """Memory of the attention mask each transformer call builds on the largest window (0: full attention)."""
        if not self.block_causal:
            return 0
        largest = max(window.latent_frames for window in self.segments)
        return attention_mask_bytes(largest, self.settings.width, self.settings.height)

    def to_json(self) -> dict[str, Any]:
        s = self.settings
        return {
            "id": self.id,
            "kind": self.kind,
            "after": self.after,
            **({"before": self.before} if self.before is not None else {}),
            "prompt": self.prompt,
            "requested_frames": self.requested_frames,
            "frames": self.frames,
            "start_frame": self.start_frame,
            "transition": {"type": self.transition.type, "frames": self.transition.frames},
            "segments": [
                {"latent_frames": w.latent_frames, "prefix_latents": w.prefix_latents, "rows": w.rows,
                 "start_frame": w.start_frame}
                for w in self.segments
            ],
            "key": self.key,
            "num_frames": self.num_frames,
            "drift_frames": self.frames - self.requested_frames,
            "transformer_calls": self.transformer_calls,
            "seed": self.seed,
            "negative_prompt": s.negative_prompt,
            "camera": self.camera,
            "image": _image_json(self.image),
            # the end image conditions the latent after the clip's last one, which is dropped before decoding:
            # it stands about 4 frames after the clip's last frame, not on it
            "end_image": None if self.end_image is None else {**(_image_json(self.end_image) or {}),
                                                              "at_frame": self.frames - 1 + TIME_COMPRESSION},
            "attention_mask_bytes": self.attention_mask_bytes,
            "settings": {
                "model": s.model, "steps": s.steps, "guidance": s.guidance, "shift": s.shift,
                "base_frames": s.base_frames, "overlap_frames": s.overlap_frames, "ar_step": s.ar_step,
                "causal_block_size": s.causal_block_size, "addnoise_condition": s.addnoise_condition,
                "cache": s.cache, "causal_attention": s.causal_attention,
                "color_match": s.color_match,
            },
            "line": self.source.line,
            **({"takes": self.takes, "take": self.take} if self.takes > 1 else {}),
            **({"seams": {"intended": True}} if self.seams_intended else {}),
            **({"dialogue": [{"character": who, "line": line} for who, line in self.dialogue]} if self.dialogue
               else {}),
            **({"keyframe": self.keyframe.to_json()} if self.keyframe is not None else {}),
        }


def _image_json(image: Image | None) -> dict[str, str] | None:
    return None if image is None else {"path": image.relative, "sha256": image.sha256}


@dataclass(frozen=True)
class Seam:
    """A place where new frames meet old ones: a continued shot's first frame, a later window's first, or either
    end of a bridge (its first frame after the shot it continues, and the first frame of the shot it leads into)."""

    job: str
    frame: int  # on the film's timeline: the job's start_frame plus the window's (a bridge's end: the next shot's 0)
    kind: str  # continue | window | bridge
    window: int  # index of the window in the job (a bridge's end: one past its last window)


@dataclass(frozen=True)
class PlanWarning:
    """A legal but probably unwanted choice, at its line."""

    file: str
    line: int
    where: str
    message: str
    kind: str = ""  # the rule that warns, e.g. "short last window": hundreds of one kind are shown as a group

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.where}: {self.message}"


@dataclass(frozen=True)
class MemoryNeed:
    """The GPU memory one model's render needs (see storyforge.plan.memory), in bytes."""

    model: str
    width: int
    height: int
    window_latents: int  # the largest window of the model's jobs
    tokens: int
    offload: str  # what the story sets
    vae_tiling: bool
    weights: dict[str, int]  # transformer, text_encoder, vae
    activations: int
    vae_decode: int
    needs: dict[str, int]  # offload -> bytes needed
    budget: int | None  # render.gpu_memory, when set

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "width": self.width, "height": self.height,
                "window_latents": self.window_latents, "tokens": self.tokens, "offload": self.offload,
                "vae_tiling": self.vae_tiling, "weights": self.weights, "activations": self.activations,
                "vae_decode": self.vae_decode, "needs": self.needs, "budget": self.budget}


@dataclass(frozen=True)
class Plan:
    """A whole film compiled: the jobs in film order and the exact length of the cut."""

    title: str
    story: Path
    fps: int
    width: int
    height: int
    total_frames: int
    jobs: tuple[Job, ...]
    audio: Image | None = None
    warnings: tuple[PlanWarning, ...] = field(default=())
    memory: tuple[MemoryNeed, ...] = ()  # per model (and offload) of the film, where its architecture is known

    @property
    def duration_s(self) -> float:
        return round(self.total_frames / self.fps, 3)

    @property
    def transformer_calls(self) -> int:
        """The work of rendering every take of every job."""
        return sum(job.transformer_calls * job.takes for job in self.jobs)

    @property
    def extra_takes(self) -> int:
        """Takes beyond the first of each job."""
        return sum(job.takes - 1 for job in self.jobs)

    def seams(self) -> list[Seam]:
        """Every seam of the film, in order, where the pipelines really place it (segments' start_frame)."""
        seams = []
        for job in self.jobs:
            for index, window in enumerate(job.segments):
                if index or job.continues:
                    kind = "window" if index else ("bridge" if job.is_bridge else "continue")
                    seams.append(Seam(job.id, job.start_frame + window.start_frame, kind, index))
            if job.is_bridge:  # where it meets the first frame it was aimed at
                seams.append(Seam(job.id, job.start_frame + job.frames, "bridge", len(job.segments)))
        return seams

    def job(self, job_id: str) -> Job:
        return next(job for job in self.jobs if job.id == job_id)

    def chains(self) -> list[list[Job]]:
        """Jobs grouped into chains: a head and every job that continues it, in order. Bridges are in none: a
        bridge has two parents in two chains (see `bridges`)."""
        chains: list[list[Job]] = []
        for job in self.jobs:
            if job.is_bridge:
                continue
            if job.after is None:
                chains.append([job])
            else:
                chains[-1].append(job)
        return chains

    def bridges(self) -> list[Job]:
        """Every bridge, in film order: each waits for the end of one chain and the first frame of another."""
        return [job for job in self.jobs if job.is_bridge]

    def to_json(self) -> dict[str, Any]:
        return {
            "storyforge_plan": PLAN_FORMAT,
            "title": self.title,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "total_frames": self.total_frames,
            "duration_s": self.duration_s,
            "transformer_calls": self.transformer_calls,
            "audio": _image_json(self.audio),
            "gpu_memory": [need.to_json() for need in self.memory],
            "jobs": [job.to_json() for job in self.jobs],
            "warnings": [{"line": w.line, "where": w.where, "message": w.message} for w in self.warnings],
        }

    def dumps(self) -> str:
        """The plan JSON: stable key order, no timestamps, byte-identical across runs.

        One top-level key a line, and each job and warning on a line of its own: a change to a shot is a
        one-line diff, and compact values go through json's C encoder (indent= takes the pure-Python one,
        which was a tenth of `storyforge plan` on a 1,000-shot film)."""
        encode = json.JSONEncoder(ensure_ascii=False).encode
        lines = []
        for name, value in self.to_json().items():
            head = f"  {encode(name)}: "
            if isinstance(value, list) and value:
                items = ",\n    ".join(map(encode, value))
                lines.append(f"{head}[\n    {items}\n  ]")
            else:
                lines.append(head + encode(value))
        return "{\n" + ",\n".join(lines) + "\n}\n"
