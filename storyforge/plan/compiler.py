"""The compiler: a resolved Film becomes a checked Plan (frame counts, windows, chains, timeline, seeds, keys)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from storyforge.errors import PlanError, Problem
from storyforge.plan import frames as fx
from storyforge.plan.keys import job_key, keyframe_key
from storyforge.plan.model import Job, Keyframe, Plan, PlanWarning, Reference, Transition
from storyforge.story.load import PathKey
from storyforge.story.models import KEYFRAME_MODEL, parse_duration
from storyforge.story.presets import I2V_DEFAULTS, preset
from storyforge.story.resolve import ResolvedFilm, ResolvedShot

# Frame rates a SkyReels-V2 DF checkpoint renders true to time: trained at 24 fps; its fps input is "16 or not".
MODEL_FPS = (16, 24)
ASYNC_BLOCK = 5  # SkyReels' recommended causal_block_size (and ar_step) for asynchronous mode


def _gib(count: int) -> str:
    return f"{count / 2**30:.1f} GiB"


@dataclass(frozen=True)
class ShotText:
    """A shot's prompt and camera words after templates."""

    prompt: str
    camera: str | None
    cast: tuple[str, ...] = ()  # characters the shot's texts use, in order


# Writes a keyframe's edit instruction from the job's final prompt and camera words.
KeyframeWriter = Callable[[str, "str | None", Keyframe], str]


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
    def __init__(self, film: ResolvedFilm, texts: Mapping[str, ShotText], write_keyframe: KeyframeWriter | None):
        self.film = film
        self.texts = texts
        self.write_keyframe = write_keyframe
        self.source = film.story.source
        self.problems: list[Problem] = []
        self.warnings: list[PlanWarning] = []
        self.reported: set[tuple[str, int]] = set()  # (message, line) of errors said once
        # why_not and equal_windows depend on the shot only through its geometry and whether it has a start image;
        # a film repeats few of those, and snapping a length asks hundreds of times (a twentieth of a cold plan)
        self._why_not: dict[tuple[str, int, fx.Geometry, bool], str | None] = {}
        self._equal: dict[tuple[str, int, fx.Geometry, bool], tuple[int | None, int | None]] = {}
        self._snapped: dict[tuple[str, int, fx.Geometry, bool], int | None] = {}

    # -- reporting -------------------------------------------------------------------------------
    def error(self, shot: ResolvedShot, at: PathKey, message: str) -> None:
        self.problems.append(Problem(self.source.file, self.source.line(at), shot.id, message))

    def error_once(self, shot: ResolvedShot, at: PathKey, message: str) -> None:
        """An error about a setting many shots share (written once, cascaded): reported at its line once."""
        key = (message, self.source.line(at))
        if key not in self.reported:
            self.reported.add(key)
            self.error(shot, at, message)

    def warn_once(self, shot: ResolvedShot, at: PathKey, message: str) -> None:
        """A warning about a setting many shots share: once at the line where it is written."""
        key = (message, self.source.line(at))
        if key not in self.reported:
            self.reported.add(key)
            self.warn(shot, at, message)

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
        images = kind == "i2v" or shot.end_image is not None  # an image is one latent: these need blocks of 1
        if s.causal_block_size > 1 and images:
            which = "start image" if shot.image else "end image" if shot.end_image else "generated start frame"
            self.error(shot, self.setting(shot, "causal_block_size"),
                       f"a {which} is one latent that causal_block_size {s.causal_block_size} would overwrite "
                       f"(the image would be lost); set causal_block_size: 1 for this shot")
            ok = False
        if s.causal_block_size > fx.latents(s.base_frames):
            self.error(shot, self.setting(shot, "causal_block_size"),
                       f"causal_block_size {s.causal_block_size} is larger than a window "
                       f"({fx.latents(s.base_frames)} latents); use 1 or 5")
            ok = False
        if s.ar_step > 0 and s.causal_block_size == 1 and fx.latents(s.base_frames) >= 2 * ASYNC_BLOCK \
                and not images:
            one, five = (fx.generation(s.base_frames, fx.Geometry(s.base_frames, s.overlap_frames, c, s.ar_step,
                                                                   s.steps)).rows for c in (1, ASYNC_BLOCK))
            self.warn_once(shot, self.setting(shot, "ar_step"),
                      f"asynchronous mode (ar_step {s.ar_step}) with causal_block_size 1 staggers every latent: a "
                      f"window of {s.base_frames} frames takes {one} denoising rows, {one / five:.0f}x the {five} of "
                      f"causal_block_size {ASYNC_BLOCK} (SkyReels' async setting); set causal_block_size: "
                      f"{ASYNC_BLOCK} unless you mean it")
        if s.causal_block_size > 1 and s.ar_step == 0:
            mask = fx.attention_mask_bytes(fx.latents(s.base_frames), s.width, s.height)
            cost = f"and makes block-causal attention build a {_gib(mask)} mask per call" if s.causal_attention \
                else "and does nothing else"
            self.warn_once(shot, self.setting(shot, "causal_block_size"),
                      f"causal_block_size {s.causal_block_size} with ar_step 0 is synchronous: it only limits the "
                      f"lengths this shot can have (every window divisible by {s.causal_block_size}) {cost}; "
                      f"use causal_block_size 1, or ar_step {ASYNC_BLOCK} for asynchronous mode")
        if s.causal_attention:
            if s.causal_block_size > 1:
                mask = fx.attention_mask_bytes(fx.latents(s.base_frames), s.width, s.height)
                self.warn_once(shot, self.setting(shot, "causal_attention"),
                          f"block-causal attention builds a dense {_gib(mask)} mask for every transformer call on a "
                          f"{s.base_frames}-frame window and cannot use flash attention; SkyReels-V2 runs full "
                          f"attention unless asked (--causal_attention)")
            else:
                self.warn_once(shot, self.setting(shot, "causal_attention"),
                          "causal_attention changes nothing with causal_block_size 1 (every block is one latent)")
        if s.ar_step > s.steps:
            self.warn(shot, self.setting(shot, "ar_step"),
                      f"ar_step {s.ar_step} is above steps {s.steps}: blocks already run one after another "
                      f"at ar_step {s.steps}, so a larger value changes nothing")
        if shot.end_image and not shot.image and kind != "extend":
            self.error(shot, shot.path + ("end_image",),
                       "an end frame needs a start frame: add `image:` (the image-to-video pipeline starts from it), "
                       "or `transition: continue` to go on from the previous shot towards the end frame")
            ok = False
        if s.fps not in MODEL_FPS and (preset(s.model) is None or preset(s.model).repo is not None):
            self.error_once(shot, self.setting(shot, "fps"),
                            f"fps {s.fps}: SkyReels-V2 DF checkpoints make motion at 24 fps (their only frame-rate "
                            f"input tells 16 fps from any other), so a {s.fps} fps film would play it "
                            f"{s.fps / 24:.2f}x {'fast' if s.fps > 24 else 'slow'}; set fps: 24 (or 16), and change "
                            f"the finished film's rate with a video tool if you need {s.fps} fps")
            ok = False
        return ok

    def check_images(self, shot: ResolvedShot, previous: Job | None, width: int, height: int) -> None:
        """Warnings about start images: a portrait one in a landscape film (or the reverse), and a cut that
        starts from the previous shot's end image, which that shot stops short of."""
        if shot.image is None:
            return
        at = shot.path + ("image",)
        if previous is not None and previous.end_image is not None and previous.end_image.sha256 == shot.image.sha256:
            self.warn(shot, at, f"its start image is the end image of {previous.id}, whose video stops about "
                      f"{fx.TIME_COMPRESSION} frames short of it (the end image conditions one latent past that "
                      f"shot's last frame, which is dropped), so the cut jumps; use `transition: continue` instead "
                      f"of `image:` to carry {previous.id}'s motion over")
        try:
            from PIL import Image as PILImage

            with PILImage.open(shot.image.path) as image:
                image_width, image_height = image.size
        except OSError:
            return  # the story checks report unreadable images
        if (image_width > image_height) != (width > height) and image_width != image_height and width != height:
            kept = min(image_width / image_height / (width / height), image_height / image_width / (height / width))
            shape = "portrait" if image_height > image_width else "landscape"
            self.warn(shot, at, f"the start image is {shape} ({image_width}x{image_height}) and the film is "
                      f"{width}x{height}: it is centre-cropped to the film's shape, keeping {kept:.0%} of it; for a "
                      f"{shape} film set resolution: {height}x{width}")

    def geometry(self, shot: ResolvedShot) -> fx.Geometry:
        s = shot.settings
        return fx.Geometry(s.base_frames, s.overlap_frames, s.causal_block_size, s.ar_step, s.steps)

    def why_not(self, kind: str, frames: int, shot: ResolvedShot) -> str | None:
        """Why a job of `kind` cannot contribute `frames` frames, or None when it can."""
        key = (kind, frames, self.geometry(shot), bool(shot.image))
        if key not in self._why_not:
            self._why_not[key] = self._why_not_uncached(kind, frames, shot)
        return self._why_not[key]

    def _why_not_uncached(self, kind: str, frames: int, shot: ResolvedShot) -> str | None:
        geometry = self.geometry(shot)
        if kind == "extend":
            if frames % fx.TIME_COMPRESSION:
                return "an extension adds frames in steps of 4 (each latent is 4 frames)"
            return fx.window_problem(frames + geometry.overlap_frames, geometry, extend=True)
        if not fx.is_generation_length(frames):
            return "a generation is 4k+1 frames long (the VAE turns 4 frames into one latent, plus the first)"
        if kind == "i2v" and shot.image and fx.latents(frames) < 2:
            return ("the start image is the shot's first latent, so it needs at least one more latent "
                    "(4 frames) to generate")
        return fx.window_problem(frames, geometry)

    def equal_windows(self, shot: ResolvedShot, kind: str, frames: int) -> tuple[int | None, int | None]:
        """The nearest lengths below and above `frames` whose windows are all full: the cheapest frames."""
        geometry = self.geometry(shot)
        key = (kind, frames, geometry, bool(shot.image))
        if key in self._equal:
            return self._equal[key]
        extra = geometry.overlap_frames if kind == "extend" else 0

        def full(n: int) -> bool:
            counts = fx.windows(fx.latents(n + extra), geometry.base_latents, geometry.overlap_latents)
            return counts[-1] == geometry.base_latents and self.why_not(kind, n, shot) is None

        self._equal[key] = fx.nearest(frames, full)
        return self._equal[key]

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
            what = "frame" if requested == 1 and kind != "extend" else unit
            self.error(shot, at, f"{requested} {what}{mode}: {reason}" + (f"; use {options}" if options else ""))
            return None
        shortest = self.snap(1, kind, shot)
        if kind == "i2v" and shortest is not None and requested < shortest:  # not silently 5x a one-frame request
            self.error(shot, at, f"{shot.shot.duration} is {requested} {'frame' if requested == 1 else 'frames'} at "
                       f"{fps} fps; the shortest this shot can be is {shortest} {unit} ({shortest / fps:.3f}s)")
            return None
        planned = self.snap(requested, kind, shot)
        if planned is None:
            self.error(shot, at, f"no length near {requested} {unit} can be rendered with these settings")
            return None
        if abs(planned - requested) > fps / 2:
            self.warn(shot, at, f"{shot.shot.duration} is {requested} frames at {fps} fps, but the nearest length "
                      f"this shot can render is {planned} ({planned / fps:.2f}s)")
        return requested, planned

    def snap(self, frames: int, kind: str, shot: ResolvedShot) -> int | None:
        """fx.snap for this kind of shot, once per geometry (shots of a film mostly repeat a few lengths)."""
        key = (kind, frames, self.geometry(shot), bool(shot.image))
        if key not in self._snapped:
            self._snapped[key] = fx.snap(frames, lambda n: self.why_not(kind, n, shot) is None)
        return self._snapped[key]

    def _mode(self, shot: ResolvedShot) -> str:
        s = shot.settings
        if s.causal_block_size > 1:
            mode = "asynchronous" if s.ar_step else "block-causal"
            return f" in {mode} mode with causal_block_size {s.causal_block_size}"
        return ""

    def transition_frames(self, shot: ResolvedShot, fps: int) -> int:
        kind = shot.shot.transition_type
        if kind in ("cut", "continue", "bridge"):
            return 0  # a bridge's length is its own job's (see `bridge`)
        seconds, exact = parse_duration(shot.shot.transition_duration)
        count = exact if exact is not None else seconds_to_frames(seconds or 0.0, fps)
        if count == 0:
            self.error(shot, shot.path + ("transition",),
                       f"a {kind} of {shot.shot.transition_duration} is 0 frames at {fps} fps; use cut or a longer one")
        return count

    # -- bridges -----------------------------------------------------------------------------------
    def bridge_frames(self, n: int, shot: ResolvedShot) -> str | None:
        """Why a bridge cannot add `n` frames with this shot's settings, or None when it can."""
        if n < fx.TIME_COMPRESSION or n % fx.TIME_COMPRESSION:
            return "a bridge adds whole latents of 4 frames each, at least one"
        return self.why_not("extend", n, shot)

    def bridge(self, shot: ResolvedShot, previous: Job | None, chain_frames: int, cursor: int,
               fps: int) -> Job | None:
        """The bridge job into `shot` (a V2V extension of `previous` aimed at the shot's first frame), or None
        after reporting why it cannot be planned. It is planned before the shot: both parents are known then
        except for the shot's key, which with_keys adds."""
        if previous is None:
            return None  # the shot before failed and was reported (the film's first shot: the story checks)
        s, a = shot.settings, previous.settings
        at = shot.path + ("transition",)
        ok = True
        if a.model != s.model:
            self.error(shot, self.setting(shot, "model"),
                       f"a bridge is one generation by one model, from {previous.id}'s last frames to this shot's "
                       f"first, but {previous.id} uses model {a.model} and this shot {s.model}; give both the same "
                       f"model, or use cut or crossfade here")
            ok = False
        if (a.width, a.height) != (s.width, s.height):  # the film-wide rule says so first; kept for other callers
            self.error(shot, self.setting(shot, "resolution"),
                       f"a bridge joins frames of one size, but {previous.id} is {a.width}x{a.height} and this shot "
                       f"{s.width}x{s.height}; give both the same resolution")
            ok = False
        if s.causal_block_size > 1:
            self.error(shot, self.setting(shot, "causal_block_size"),
                       f"a bridge ends on this shot's first frame, one latent that causal_block_size "
                       f"{s.causal_block_size} would overwrite (the bridge would not arrive at it); set "
                       f"causal_block_size: 1 for this shot")
            ok = False
        if not ok:
            return None
        seconds, exact = parse_duration(shot.shot.transition_duration)
        requested = exact if exact is not None else seconds_to_frames(seconds or 0.0, fps)
        written = shot.shot.transition_duration

        def valid(n: int) -> bool:
            return self.bridge_frames(n, shot) is None

        def shown(n: int) -> str:
            return f"{n}f ({n / fps:.3f}s)"

        shortest = fx.snap(1, valid)
        if shortest is None:
            self.error(shot, at, f"no bridge length can be rendered with these settings "
                       f"({self.bridge_frames(fx.TIME_COMPRESSION, shot)})")
            return None
        if requested < shortest:
            following = next(n for n in range(shortest + 1, shortest + 4 * s.base_frames) if valid(n))
            self.error(shot, at, f"a bridge of {written} is {requested} {'frame' if requested == 1 else 'frames'} at "
                       f"{fps} fps, shorter than the model can make: it adds whole latents of 4 frames, at least "
                       f"{shortest}; use {shown(shortest)} or {shown(following)}")
            return None
        if exact is not None and not valid(requested):
            below, above = fx.nearest(requested, valid, limit=max(4 * s.base_frames, 400))
            options = " or ".join(shown(n) for n in (below, above) if n is not None)
            reason = self.bridge_frames(requested, shot)
            self.error(shot, at, f"a bridge of {requested} frames{self._mode(shot)}: {reason}; use {options}")
            return None
        planned = requested if exact is not None else self.snap_bridge(requested, shot)
        if planned is None:
            self.error(shot, at, f"no bridge length near {requested} frames can be rendered with these settings")
            return None
        if abs(planned - requested) > fps / 2:
            self.warn(shot, at, f"a bridge of {written} is {requested} frames at {fps} fps, but the nearest length a "
                      f"bridge can have is {planned} ({planned / fps:.2f}s)")
        if chain_frames < s.overlap_frames:
            self.error(shot, at, f"a bridge continues the last {s.overlap_frames} frames (overlap_frames) of what "
                       f"came before, but the chain ending at {previous.id} has {chain_frames}; make "
                       f"{previous.id} longer")
            return None
        num_frames = planned + s.overlap_frames
        generation = fx.generation(num_frames, self.geometry(shot), extend=True, end_image=True)
        bridge_id = f"{shot.id}~bridge"
        text = self.texts.get(bridge_id)
        if text is None:  # a caller whose texts are literal (no templates): the bridge's own words, or both shots'
            own = shot.shot.bridge_prompt
            text = ShotText(own if own else f"{previous.prompt} {self.texts[shot.id].prompt}", None)
        seed = derive_seed(s.seed, bridge_id)
        settings = replace(s, takes=1)  # one bridge between the picked takes of its two shots
        return Job(
            id=bridge_id, kind="bridge", after=previous.id, before=shot.id, prompt=text.prompt,
            template_prompt=text.prompt, camera=text.camera, requested_frames=requested, frames=planned,
            num_frames=num_frames, start_frame=cursor, transition=Transition("continue", 0),
            segments=generation.windows, seed=seed, settings=settings, image=None, end_image=None,
            source=f"{self.source.file}:{self.source.line(at)}", takes=1, take_seeds=(seed,),
        )

    def snap_bridge(self, frames: int, shot: ResolvedShot) -> int | None:
        key = ("bridge", frames, self.geometry(shot), False)
        if key not in self._snapped:
            self._snapped[key] = fx.snap(frames, lambda n: self.bridge_frames(n, shot) is None)
        return self._snapped[key]

    # -- cast and keyframes ----------------------------------------------------------------------
    def references(self, shot: ResolvedShot, text: ShotText) -> tuple[Reference, ...]:
        """Reference images of the shot's cast (its `cast:`, then who its texts name), then of its location."""
        film, found = self.film.story.film, self.film.references
        cast = dict.fromkeys([*shot.shot.cast, *text.cast])
        pictures = [Reference("character", name, film.characters[name].description, found[("characters", name)])
                    for name in cast if ("characters", name) in found]
        place = shot.scene.location
        if place is not None and ("locations", place) in found:
            pictures.append(Reference("location", place, film.locations[place].description,
                                      found[("locations", place)]))
        return tuple(pictures)

    def keyframe(self, shot: ResolvedShot, text: ShotText, references: tuple[Reference, ...]) -> Keyframe:
        spec = self.film.story.film.keyframes
        assert spec is not None
        model = self.film.keyframe_model or spec.model
        width, height = self.film.size
        if spec.model == KEYFRAME_MODEL and len(references) > 3:
            self.warn(shot, shot.path, f"its keyframe composes {len(references)} reference images, but "
                      f"Qwen-Image-Edit-2509 is made for 1 to 3; keep the cast of this shot smaller")
        places = [r.name for r in references if r.kind == "location"]
        keyframe = Keyframe(references=references, cast=tuple(dict.fromkeys([*shot.shot.cast, *text.cast])),
                            location=places[0] if places else None, prompt=text.prompt, model=model,
                            steps=spec.steps, guidance=spec.guidance, seed=derive_seed(spec.seed, shot.id),
                            width=width, height=height,
                            source=f"{self.source.file}:{self.source.line(('keyframes', 'model'))}",
                            candidates=spec.takes, seeds=tuple(take_seed(derive_seed(spec.seed, shot.id), n)
                                                               for n in range(1, spec.takes + 1)))
        if self.write_keyframe is not None:
            keyframe = replace(keyframe, prompt=self.write_keyframe(text.prompt, text.camera, keyframe))
        return keyframe

    # -- the whole film --------------------------------------------------------------------------
    def compile(self) -> Plan:
        fps = self.film.fps
        width, height = self.film.size
        jobs: list[Job] = []
        cursor = 0  # where the next job starts on the final timeline
        chain_frames = 0  # frames of the current chain so far (an extension needs overlap_frames of them)
        previous: Job | None = None
        for shot in self.film.shots:
            chain_before = chain_frames  # what a bridge into this shot continues from
            kind = "extend" if shot.shot.transition_type == "continue" else ("i2v" if shot.shot.image or
                                                                                shot.shot.end_image else "t2v")
            text = self.texts[shot.id]
            references = self.references(shot, text)
            keyframe = None
            if kind == "t2v" and references and self.film.story.film.keyframes is not None:
                kind, keyframe = "i2v", self.keyframe(shot, text, references)  # a shot that starts a take
                # image-to-video's recommended guidance and shift, where the story set none (as for `image:`)
                defaults = {k: v for k, v in I2V_DEFAULTS.items() if shot.origins.get(k) == shot.path}
                shot = replace(shot, settings=replace(shot.settings, **defaults))
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
                generation = fx.generation(num_frames, geometry, extend=True, end_image=shot.end_image is not None)
            else:
                num_frames = planned
                generation = fx.generation(num_frames, geometry, start_image=kind == "i2v",
                                           end_image=shot.end_image is not None)
                chain_frames = 0
            o, c = geometry.overlap_latents, s.causal_block_size
            if (len(generation.windows) > 1 or kind == "extend") and o % c and o >= c:
                valid = [fx.pixel_frames(n) for n in (o - o % c, o - o % c + c) if fx.pixel_frames(n) < s.base_frames]
                self.error_once(shot, self.setting(shot, "overlap_frames"),
                           f"overlap_frames {s.overlap_frames} is {o} latents, not a multiple of causal_block_size "
                           f"{c}: the pipeline would cut every window's conditioning to {o - o % c} latents and "
                           f"regenerate the other {o % c} only to drop them (a weaker seam for more work); use "
                           f"overlap_frames " + " or ".join(str(v) for v in valid))
                previous = None
                continue
            if len(generation.windows) > 1 and generation.windows[-1].latent_frames * 2 < geometry.base_latents:
                last = generation.windows[-1].latent_frames
                options = " or ".join(f"{n}f ({n / fps:.2f}s)" for n in self.equal_windows(shot, kind, planned)
                                      if n is not None)
                self.warn(shot, shot.path + ("duration",),
                          f"the last window has {last} of {geometry.base_latents} latents but costs nearly a full "
                          f"window of steps; a length giving equal windows is cheaper per frame: use {options}")
            kind_t = shot.shot.transition_type
            bridge = None
            if kind_t == "bridge":
                bridge = self.bridge(shot, previous, chain_before, cursor, fps)
                if bridge is None:
                    previous = None
                    continue
                t_frames = bridge.frames
                jobs.append(bridge)
                cursor += bridge.frames
            start = cursor
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
                references=references, keyframe=keyframe,
                dialogue=tuple((spoken.character, spoken.line) for spoken in shot.shot.dialogue),
            )
            self.check_images(shot, previous if kind_t != "continue" else None, width, height)
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
    keyed: dict[str, Job] = {}
    # a bridge's key covers the keys of both shots it joins: bridges come after every shot (no shot depends on one)
    for job in sorted(plan.jobs, key=lambda job: job.is_bridge):
        if job.keyframe is not None:  # one keyframe for every take: the takes differ in the video's seed only
            keyframe = job.keyframe
            candidate_seeds = keyframe.seeds or (keyframe.seed,)
            candidate_keys = tuple(keyframe_key(replace(keyframe, seed=seed)) for seed in candidate_seeds)
            job = replace(job, keyframe=replace(keyframe, seeds=candidate_seeds, keys=candidate_keys).candidate(
                keyframe.pick))
        upstream = keys.get(job.after) if job.after else None
        before = keys.get(job.before) if job.before else None
        seeds = job.take_seeds or (job.seed,)
        take_keys = tuple(job_key(replace(job, seed=seed), upstream, before) for seed in seeds)
        picked = replace(job, take_seeds=seeds, take_keys=take_keys).for_take(job.take)
        keys[job.id] = picked.key
        keyed[job.id] = picked
    return replace(plan, jobs=tuple(keyed[job.id] for job in plan.jobs))


def compile_plan(film: ResolvedFilm, render_texts: Callable[[ResolvedFilm], Mapping[str, ShotText]],
                 write_keyframe: KeyframeWriter | None = None) -> Plan:
    """Compile a resolved film; raise PlanError with every impossible shot at its line.

    `write_keyframe` turns a keyframe's prompt into its edit instruction (default: the prompt as it is)."""
    return _Compiler(film, render_texts(film), write_keyframe).compile()
