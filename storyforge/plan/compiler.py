"""The compiler: a resolved Film becomes a checked Plan (frame counts, windows, chains, timeline, seeds, keys)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from storyforge.errors import PlanError, Problem
from storyforge.plan import frames as fx
from storyforge.plan.keys import job_key
from storyforge.plan.model import Job, Plan, PlanWarning, Transition
from storyforge.spec.load import PathKey
from storyforge.spec.models import parse_duration
from storyforge.spec.resolve import ResolvedFilm, ResolvedShot


@dataclass(frozen=True)
class ShotText:
    """A shot's prompt and camera words after templates."""

    prompt: str
    camera: str | None


def seconds_to_frames(seconds: float, fps: int) -> int:
    """Frames for a length in seconds, rounding half up (never banker's rounding)."""
    return math.floor(seconds * fps + 0.5)


def derive_seed(film_seed: int, job_id: str) -> int:
    """A shot's seed when it sets none: stable per film seed and shot id, independent of shot order."""
    digest = hashlib.sha256(f"{film_seed}:{job_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


def take_seed(seed: int, take: int) -> int:
    """The seed of take `take` of a shot whose seed is `seed`: take 1 keeps it (so its cache entry stays)."""
    if take == 1:
        return seed
    digest = hashlib.sha256(f"{seed}:take{take}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


class _Compiler:
    def __init__(self, film: ResolvedFilm, texts: Mapping[str, ShotText]):
        self.film = film
        self.texts = texts
        self.source = film.story.source
        self.problems: list[Problem] = []
        self.warnings: list[PlanWarning] = []

    # -- reporting -------------------------------------------------------------------------------
    def error(self, shot: ResolvedShot, at: PathKey, message: str) -> None:
        self.problems.append(Problem(self.source.file, self.source.line(at), shot.id, message))

    def warn(self, shot: ResolvedShot, at: PathKey, message: str) -> None:
        self.warnings.append(PlanWarning(self.source.file, self.source.line(at), shot.id, message))

    def setting(self, shot: ResolvedShot, name: str) -> PathKey:
        return shot.origins.get(name, shot.path)

    # -- the rules -------------------------------------------------------------------------------
    def check_settings(self, shot: ResolvedShot, kind: str) -> bool:
        """Rules on the settings alone; False when the shot cannot be planned further."""
        s = shot.settings
        ok = True
        for name in ("base_frames", "overlap_frames"):
            value = getattr(s, name)
            if not fx.is_generation_length(value):
                low, high = value - (value - 1) % 4, value - (value - 1) % 4 + 4
                self.error(shot, self.setting(shot, name),
                           f"{name} {value} is not 4k+1, so its latents would not line up with pixel frames; "
                           f"use {low} or {high}")
                ok = False
        if ok and fx.latents(s.overlap_frames) >= fx.latents(s.base_frames):
            self.error(shot, self.setting(shot, "overlap_frames"),
                       f"overlap_frames {s.overlap_frames} must be smaller than base_frames {s.base_frames} "
                       f"(each window must add new frames); use 17 or 37")
            ok = False
        if s.causal_block_size > 1 and kind == "i2v":
            which = "start image" if shot.image else "end image"
            self.error(shot, self.setting(shot, "causal_block_size"),
                       f"a {which} is one latent that causal_block_size {s.causal_block_size} would overwrite "
                       f"(the image would be lost); set causal_block_size: 1 for this shot")
            ok = False
        if s.causal_block_size > fx.latents(s.base_frames):
            self.error(shot, self.setting(shot, "causal_block_size"),
                       f"causal_block_size {s.causal_block_size} is larger than a window "
                       f"({fx.latents(s.base_frames)} latents); use 1 or 5")
            ok = False
        if s.causal_block_size > 1 and fx.latents(s.overlap_frames) % s.causal_block_size:
            kept = fx.prefix_latents(fx.latents(s.overlap_frames), s.causal_block_size)
            self.warn(shot, self.setting(shot, "overlap_frames"),
                      f"overlap_frames {s.overlap_frames} is {fx.latents(s.overlap_frames)} latents, not a multiple of "
                      f"causal_block_size {s.causal_block_size}: only {kept} are kept as conditioning, so seams are "
                      f"weaker; use overlap_frames {fx.pixel_frames(max(kept, s.causal_block_size))}")
        if s.ar_step > s.steps:
            self.warn(shot, self.setting(shot, "ar_step"),
                      f"ar_step {s.ar_step} is above steps {s.steps}: blocks already run one after another "
                      f"at ar_step {s.steps}, so a larger value changes nothing")
        if shot.end_image and not shot.image:
            self.error(shot, shot.path + ("end_image",),
                       "an end frame needs a start frame: add `image:` (the image-to-video pipeline starts from it)")
            ok = False
        return ok

    def geometry(self, shot: ResolvedShot) -> fx.Geometry:
        s = shot.settings
        return fx.Geometry(s.base_frames, s.overlap_frames, s.causal_block_size, s.ar_step, s.steps)

    def why_not(self, kind: str, frames: int, shot: ResolvedShot) -> str | None:
        """Why a job of `kind` cannot contribute `frames` frames, or None when it can."""
        geometry = self.geometry(shot)
        if kind == "extend":
            if frames % fx.TIME_COMPRESSION:
                return "an extension adds frames in steps of 4 (each latent is 4 frames)"
            return fx.window_problem(frames + geometry.overlap_frames, geometry, extend=True)
        if not fx.is_generation_length(frames):
            return "a generation is 4k+1 frames long (the VAE turns 4 frames into one latent, plus the first)"
        if frames > geometry.base_frames:
            b, o = geometry.base_latents, geometry.overlap_latents
            if kind == "i2v" and shot.end_image:
                return (f"a shot with an end image must fit in one window (at most {geometry.base_frames} frames): "
                        "the pipeline cannot place an end frame after a window boundary")
            if kind == "i2v" and (fx.latents(frames) - b) % (b - o):
                return ("a long image-to-video shot must end on a full window, or the pipeline fails "
                        "(its last window must have the full base length)")
        return fx.window_problem(frames, geometry)

    def plan_frames(self, shot: ResolvedShot, kind: str, seconds: float | None, exact: int | None,
                    fps: int) -> tuple[int, int] | None:
        """(requested, planned) frames, or None after reporting why the duration cannot be planned."""
        at = shot.path + ("duration",)
        requested = exact if exact is not None else seconds_to_frames(seconds or 0.0, fps)

        def valid(n: int) -> bool:
            return self.why_not(kind, n, shot) is None

        unit = "new frames" if kind == "extend" else "frames"
        if requested == 0:
            shortest = fx.snap(1, valid)
            self.error(shot, at, f"{shot.shot.duration} is 0 frames at {fps} fps; the shortest this shot can be "
                       f"is {shortest} {unit if shortest != 1 else 'frame'} ({shortest / fps:.3f}s)")
            return None
        if exact is not None:
            reason = self.why_not(kind, requested, shot)
            if reason is None:
                return requested, requested
            below, above = fx.nearest(requested, valid, limit=max(4 * shot.settings.base_frames, 400))
            options = " or ".join(f"{n}f" for n in (below, above) if n is not None)
            mode = self._mode(shot)
            self.error(shot, at, f"{requested} {unit}{mode}: {reason}" + (f"; use {options}" if options else ""))
            return None
        planned = fx.snap(requested, valid)
        if planned is None:
            self.error(shot, at, f"no length near {requested} {unit} can be rendered with these settings")
            return None
        if abs(planned - requested) > fps / 2:
            self.warn(shot, at, f"{shot.shot.duration} is {requested} frames at {fps} fps, but the nearest length "
                      f"this shot can render is {planned} ({planned / fps:.2f}s)")
        return requested, planned

    def _mode(self, shot: ResolvedShot) -> str:
        s = shot.settings
        if s.causal_block_size > 1:
            mode = "asynchronous" if s.ar_step else "block-causal"
            return f" in {mode} mode with causal_block_size {s.causal_block_size}"
        return ""

    def transition_frames(self, shot: ResolvedShot, fps: int) -> int:
        kind = shot.shot.transition_type
        if kind in ("cut", "continue"):
            return 0
        seconds, exact = parse_duration(shot.shot.transition_duration)
        count = exact if exact is not None else seconds_to_frames(seconds or 0.0, fps)
        if count == 0:
            self.error(shot, shot.path + ("transition",),
                       f"a {kind} of {shot.shot.transition_duration} is 0 frames at {fps} fps; use cut or a longer one")
        return count

    # -- the whole film --------------------------------------------------------------------------
    def compile(self) -> Plan:
        fps = self.film.fps
        width, height = self.film.size
        jobs: list[Job] = []
        cursor = 0  # where the next job starts on the final timeline
        chain_frames = 0  # frames of the current chain so far (an extension needs overlap_frames of them)
        previous: Job | None = None
        for shot in self.film.shots:
            kind = "extend" if shot.shot.transition_type == "continue" else ("i2v" if shot.shot.image or
                                                                                shot.shot.end_image else "t2v")
            text = self.texts[shot.id]
            if not self.check_settings(shot, kind):
                previous = None
                continue
            seconds, exact = parse_duration(shot.shot.duration)
            counts = self.plan_frames(shot, kind, seconds, exact, fps)
            t_frames = self.transition_frames(shot, fps)
            if counts is None:
                previous = None
                continue
            requested, planned = counts
            s = shot.settings
            geometry = self.geometry(shot)
            if kind == "extend":
                if previous is None:
                    continue  # the shot before it failed and was reported
                if chain_frames < s.overlap_frames:
                    self.error(shot, shot.path + ("transition",),
                               f"continuing needs the last {s.overlap_frames} frames (overlap_frames) of what came "
                               f"before, but the chain so far has {chain_frames}; make the previous shot longer")
                num_frames = planned + s.overlap_frames
                generation = fx.generation(num_frames, geometry, extend=True)
            else:
                num_frames = planned
                generation = fx.generation(num_frames, geometry, start_image=kind == "i2v",
                                           end_image=shot.end_image is not None)
                chain_frames = 0
            if len(generation.windows) > 1 and generation.windows[-1].latent_frames * 2 < geometry.base_latents:
                last = generation.windows[-1].latent_frames
                self.warn(shot, shot.path + ("duration",),
                          f"the last window has {last} of {geometry.base_latents} latents but costs nearly a full "
                          f"window of steps; a length giving equal windows is cheaper per frame")
            start = cursor
            kind_t = shot.shot.transition_type
            if kind_t == "crossfade" and previous is not None:
                limit = min(previous.frames, planned)
                if t_frames > limit:
                    self.error(shot, shot.path + ("transition",),
                               f"a crossfade of {t_frames} frames is longer than "
                               f"{'the previous shot' if previous.frames < planned else 'this shot'} "
                               f"({limit} frames); use at most {limit / fps:.2f}s")
                start = cursor - t_frames
            if kind_t == "fade":
                out_frames, in_frames = t_frames // 2, t_frames - t_frames // 2
                if previous is None and not jobs:
                    in_frames = t_frames
                too_long = in_frames > planned or (jobs and out_frames > jobs[-1].frames)
                if too_long:
                    self.error(shot, shot.path + ("transition",),
                               f"a fade of {t_frames} frames does not fit in the shots around it; use a shorter one")
            film_seed = s.seed
            seed = s.seed if shot.seed_is_explicit else derive_seed(film_seed, shot.id)
            job = Job(
                id=shot.id, kind=kind, after=previous.id if (kind == "extend" and previous) else None,
                prompt=text.prompt, template_prompt=text.prompt, camera=text.camera,
                requested_frames=requested, frames=planned, num_frames=num_frames, start_frame=start,
                transition=Transition(kind_t, t_frames), segments=generation.windows, seed=seed, settings=s,
                image=shot.image, end_image=shot.end_image,
                source=f"{self.source.file}:{self.source.line(shot.path)}",
                takes=s.takes, take_seeds=tuple(take_seed(seed, n) for n in range(1, s.takes + 1)),
            )
            jobs.append(job)
            cursor = start + planned
            chain_frames += planned
            previous = job
        if self.problems:
            raise PlanError(self.problems)
        story = self.film.story
        return with_keys(Plan(title=story.film.title, story=story.path, fps=fps, width=width, height=height,
                              total_frames=cursor, jobs=tuple(jobs), audio=self.film.audio,
                              warnings=tuple(sorted(self.warnings, key=lambda w: (w.line, w.where)))))


def with_keys(plan: Plan) -> Plan:
    """The plan with every job's content key, each chained to the key of the job it continues.

    Every take gets its key; the job's own `seed` and `key` are its picked take's, so a job that continues
    it is chained to the picked take (picking another take upstream changes what continues it)."""
    keys: dict[str, str] = {}
    jobs = []
    for job in plan.jobs:
        upstream = keys.get(job.after) if job.after else None
        seeds = job.take_seeds or (job.seed,)
        take_keys = tuple(job_key(replace(job, seed=seed), upstream) for seed in seeds)
        picked = replace(job, take_seeds=seeds, take_keys=take_keys).for_take(job.take)
        keys[job.id] = picked.key
        jobs.append(picked)
    return replace(plan, jobs=tuple(jobs))


def compile_plan(film: ResolvedFilm, render_texts: Callable[[ResolvedFilm], Mapping[str, ShotText]]) -> Plan:
    """Compile a resolved film; raise PlanError with every impossible shot at its line."""
    return _Compiler(film, render_texts(film)).compile()
