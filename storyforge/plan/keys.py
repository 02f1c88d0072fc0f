"""Content keys: a job's key is a sha256 over exactly the inputs that change its pixels."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storyforge.plan.model import Job, Keyframe

KEY_VERSION = "storyforge-job-2"  # bump when the meaning of an input changes


def key_inputs(job: Job, upstream_key: str | None, before_key: str | None = None) -> dict[str, object]:
    """The explicit list of what a job's pixels depend on; titles, ids, comments and timeline are not in it.

    `upstream_key`: the key of the job it continues (a bridge: the shot it comes out of); `before_key`, for a
    bridge only: the key of the shot whose first frame it ends on."""
    s = job.settings
    return {
        "version": KEY_VERSION,
        "kind": job.kind,
        "model": s.model,
        "prompt": job.prompt,
        "negative_prompt": s.negative_prompt,
        "seed": job.seed,
        "width": s.width,
        "height": s.height,
        "fps": s.fps,
        "num_frames": job.num_frames,
        "frames": job.frames,
        "steps": s.steps,
        "guidance": s.guidance,
        "shift": s.shift,
        "base_frames": s.base_frames,
        "overlap_frames": s.overlap_frames,
        "ar_step": s.ar_step,
        "causal_block_size": s.causal_block_size,
        "addnoise_condition": s.addnoise_condition,
        "cache": s.cache,
        "causal_attention": job.block_causal,  # with causal_block_size 1 the setting changes nothing
        "color_match": s.color_match,  # corrected frames are the clip's pixels, and what a continuation sees
        "image": job.image.sha256 if job.image else None,
        "end_image": job.end_image.sha256 if job.end_image else None,
        "upstream": upstream_key,
        # only when present, so the keys of films without keyframes stay what they were
        **({"keyframe": job.keyframe.key} if job.keyframe is not None else {}),
        **({"before": before_key} if job.before is not None else {}),
    }


KEYFRAME_KEY_VERSION = "storyforge-keyframe-1"


def keyframe_key(keyframe: Keyframe) -> str:
    """What a keyframe's pixels depend on: the edit model as named, the references' bytes in order, the
    instruction, seed, size, steps and guidance (the model's files join in the render cache's entry key)."""
    return digest({
        "version": KEYFRAME_KEY_VERSION,
        "model": keyframe.model,
        "references": [r.image.sha256 for r in keyframe.references],
        "prompt": keyframe.prompt,
        "seed": keyframe.seed,
        "width": keyframe.width,
        "height": keyframe.height,
        "steps": keyframe.steps,
        "guidance": keyframe.guidance,
    })


# json.dumps with these settings, made once (dumps makes an encoder every call: a tenth of a key)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def digest(inputs: object) -> str:
    """sha256 of a canonical JSON rendering."""
    return hashlib.sha256(_CANONICAL(inputs).encode()).hexdigest()


def job_key(job: Job, upstream_key: str | None, before_key: str | None = None) -> str:
    return digest(key_inputs(job, upstream_key, before_key))
