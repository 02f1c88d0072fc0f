"""The compiler: a resolved Film becomes a checked Plan (frame counts, windows, chains, timeline, seeds, keys)."""

from __future__ import annotations

import difflib
import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any

from storyforge.errors import PlanError, Problem, StoryforgeError
from storyforge.plan import frames as fx
from storyforge.plan import memory as mem
from storyforge.plan.keys import job_key, keyframe_key
from storyforge.plan.model import Job, Keyframe, MemoryNeed, Plan, PlanWarning, Reference, Transition
from storyforge.story.load import PathKey
from storyforge.story.models import KEYFRAME_MODEL, MAX_WINDOW_FRAMES, RESOLUTIONS, TransitionSpec, parse_duration
from storyforge.story.presets import I2V_DEFAULTS, PRESETS, preset
from storyforge.story.resolve import ResolvedFilm, ResolvedShot, Settings
from storyforge.story.texts import KeyframeWriter, ShotText

# Frame rates a SkyReels-V2 DF checkpoint renders true to time: trained at 24 fps; its fps input is "16 or not".
MODEL_FPS = (16, 24)
ASYNC_BLOCK = 5  # SkyReels' recommended causal_block_size (and ar_step) for asynchronous mode


def _gib(count: int) -> str:
    return f"{count / 2**30:.1f} GiB"




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


Fix = tuple[tuple[str, Any], ...]  # settings changed together: (("overlap_frames", 17), ("duration", "337f"))
Fixes = Iterable[Fix]


def _each(name: str, values: Iterable[Any]) -> list[Fix]:
    return [((name, value),) for value in values]


@dataclass(frozen=True)
class _Context:
    """Where a shot stands in the film as it is compiled: its job kind, texts, and what came before it."""

    kind: str
    keyframe: Keyframe | None
    text: ShotText
    references: tuple[Reference, ...]
    previous: Job | None  # the job it continues or follows in its chain (None after a failed shot)
    chain_frames: int
    cursor: int
    last: Job | None  # the last job planned


def _outward(low: int, high: int, step: int, least: int, most: int) -> Iterator[int]:
    """low, high, then alternately further below and above, in `step`s, within [least, most]."""
    for distance in range(0, most - least + step, step):
        for value in (low - distance, high + distance):
            if least <= value <= most:
                yield value


def _search(shot: ResolvedShot) -> int:
    """How far from a length the nearest valid ones are looked for: past one period of the valid lengths."""
    return 4 * shot.settings.base_frames + 64


def _say(fix: Fix) -> str:
    """'causal_block_size: 1', or 'overlap_frames: 17 with 80f' for a setting that plans with another length."""
    (name, value), *rest = fix
    return f"{name}: {value}" + "".join(f" with {v}" for _, v in rest)


def _use(name: str, values: list[int]) -> str:
    """'; use overlap_frames 13 or 9', or nothing when no value plans."""
    return f"; use {name} " + " or ".join(str(v) for v in values) if values else ""


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
        self._geometries: dict[tuple[int, ...], fx.Geometry] = {}
        # A suggestion is tried before it is made: the shot is compiled again with it, quietly (see `accepts`)
        self.quiet = False
        self.context: _Context | None = None  # the shot being compiled and what it follows
        self._mistakes: dict[str, int] = {}  # shot id -> problems it has as written (see `helps`)

    # -- reporting -------------------------------------------------------------------------------
    def error(self, shot: ResolvedShot, at: PathKey, message: str, fixes: Fixes = ()) -> None:
        """An error at `at`; `fixes` are the values its message suggests, (setting, value), each tried first."""
        self.problems.append(Problem(self.source.file, self.source.line(at), shot.id, message, tuple(fixes)))

    def error_once(self, shot: ResolvedShot, at: PathKey, message: str, fixes: Fixes = ()) -> None:
        """An error about a setting many shots share (written once, cascaded): reported at its line once."""
        key = (message, self.source.line(at))
        if key not in self.reported:
            self.reported.add(key)
            self.error(shot, at, message, fixes)

    def warn_once(self, shot: ResolvedShot, at: PathKey, message: str, kind: str = "") -> None:
        """A warning about a setting many shots share: once at the line where it is written."""
        key = (message, self.source.line(at))
        if key not in self.reported:
            self.reported.add(key)
            self.warn(shot, at, message, kind)

    def warn(self, shot: ResolvedShot, at: PathKey, message: str, kind: str = "") -> None:
        """A warning; `kind` names the rule, so a film with hundreds of one kind can show them as a group."""
        self.warnings.append(PlanWarning(self.source.file, self.source.line(at), shot.id, message, kind))

    # -- suggestions that plan -------------------------------------------------------------------
    @contextmanager
    def trial(self) -> Iterator[list[Problem]]:
        """Compile quietly: problems go to the list it yields, warnings nowhere, and no suggestion is searched."""
        saved = self.problems, self.warnings, self.reported, self.quiet
        self.problems, self.warnings, self.reported, self.quiet = [], [], set(), True
        try:
            yield self.problems
        finally:
            self.problems, self.warnings, self.reported, self.quiet = saved

    def accepts(self, shot: ResolvedShot, *, duration: int | None = None, transition: int | None = None,
                **settings: Any) -> bool:
        """Whether the shot plans, every rule considered, with its duration (frames), its transition's length
        (frames) or settings changed: the test every suggested value passes before it is suggested."""
        return self.mistakes(shot, duration=duration, transition=transition, **settings) == 0

    def mistakes(self, shot: ResolvedShot, *, duration: int | None = None, transition: int | None = None,
                 **settings: Any) -> int:
        """How many problems the shot has with its duration, transition length or settings changed (see accepts)."""
        context = self.context
        assert context is not None
        changed = shot.shot
        if duration is not None:
            changed = changed.model_copy(update={"duration": f"{duration}f"})
        if transition is not None:
            changed = changed.model_copy(update={"transition": TransitionSpec.model_validate(
                {"type": shot.shot.transition_type, "duration": f"{transition}f"})})
        trial_shot = replace(shot, shot=changed, settings=replace(shot.settings, **settings))
        with self.trial() as problems:
            self.shot_job(trial_shot, context)
        return len(problems)

    def helps(self, shot: ResolvedShot, **change: Any) -> bool:
        """Whether a change leaves the shot with fewer problems: for a shot with several mistakes, where no single
        change can plan it, a suggestion still fixes its own mistake and adds none."""
        if shot.id not in self._mistakes:
            self._mistakes[shot.id] = self.mistakes(shot)
        return self.mistakes(shot, **change) < self._mistakes[shot.id]

    def fixes(self, shot: ResolvedShot, name: str, candidates: Iterable[int], count: int = 2) -> list[int]:
        """Up to `count` of the candidates (in order of preference) that plan the shot when `name` takes them (or,
        when none does because the shot has other mistakes too, that leave it fewer)."""
        if self.quiet:
            return []
        candidates = list(dict.fromkeys(candidates))
        tests: tuple[Callable[[Any], bool], ...] = (lambda v: self.accepts(shot, **{name: v}),
                                                    lambda v: self.helps(shot, **{name: v}))
        for test in tests:
            found = []
            for value in candidates:
                if test(value):
                    found.append(value)
                    if len(found) == count:
                        break
            if found:
                return sorted(found)
        return []

    def lengths(self, shot: ResolvedShot, kind: str, requested: int) -> tuple[int | None, int | None]:
        """The nearest lengths (frames) below and at or above `requested` that plan the shot, every rule considered
        (or, for a shot with other mistakes too, that leave it fewer)."""
        if self.quiet:
            return None, None
        found: tuple[int | None, int | None] = (None, None)
        for test in (self.accepts, self.helps):
            found = fx.nearest(requested, lambda n, test=test: self.why_not(kind, n, shot) is None and  # type: ignore
                               test(shot, duration=n), limit=_search(shot))
            if found != (None, None):
                break
        return found

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
                low = value - (value - 1) % 4
                found = self.fixes(shot, name, _outward(low, low + 4, 4, 1, MAX_WINDOW_FRAMES))
                self.error(shot, self.setting(shot, name),
                           f"{name} {value} is not 4k+1, so its latents would not line up with pixel frames"
                           + _use(name, found), _each(name, found))
                ok = False
        images = kind == "i2v" or shot.end_image is not None  # an image is one latent: these need blocks of 1
        if s.causal_block_size > 1 and images:
            which = "start image" if shot.image else "end image" if shot.end_image else "generated start frame"
            found = self.fixes(shot, "causal_block_size", [1], count=1)
            self.error(shot, self.setting(shot, "causal_block_size"),
                       f"a {which} is one latent that causal_block_size {s.causal_block_size} would overwrite "
                       f"(the image would be lost)" + ("; set causal_block_size: 1 for this shot" if found else ""),
                       _each("causal_block_size", found))
            ok = False
        if s.causal_block_size > fx.latents(s.base_frames):
            found = self.fixes(shot, "causal_block_size", [1, ASYNC_BLOCK, *range(2, fx.latents(s.base_frames) + 1)])
            self.error(shot, self.setting(shot, "causal_block_size"),
                       f"causal_block_size {s.causal_block_size} is larger than a window "
                       f"({fx.latents(s.base_frames)} latents)" + _use("causal_block_size", found),
                       _each("causal_block_size", found))
            ok = False
        if s.ar_step > 0 and s.causal_block_size == 1 and fx.latents(s.base_frames) >= 2 * ASYNC_BLOCK \
                and not images and fx.is_generation_length(s.base_frames):
            one, five = (fx.generation(s.base_frames, fx.Geometry(s.base_frames, s.overlap_frames, c, s.ar_step,
                                                                   s.steps)).rows for c in (1, ASYNC_BLOCK))
            self.warn_once(shot, self.setting(shot, "ar_step"),
                      f"asynchronous mode (ar_step {s.ar_step}) with causal_block_size 1 staggers every latent: a "
                      f"window of {s.base_frames} frames takes {one} denoising rows, {one / five:.0f}x the {five} of "
                      f"causal_block_size {ASYNC_BLOCK} (SkyReels' async setting); set causal_block_size: "
                      f"{ASYNC_BLOCK} unless you mean it", "async with blocks of 1")
        if s.causal_block_size > 1 and s.ar_step == 0:
            mask = fx.attention_mask_bytes(fx.latents(s.base_frames), s.width, s.height)
            cost = f"and makes block-causal attention build a {_gib(mask)} mask per call" if s.causal_attention \
                else "and does nothing else"
            self.warn_once(shot, self.setting(shot, "causal_block_size"),
                      f"causal_block_size {s.causal_block_size} with ar_step 0 is synchronous: it only limits the "
                      f"lengths this shot can have (every window divisible by {s.causal_block_size}) {cost}; "
                      f"use causal_block_size 1, or ar_step {ASYNC_BLOCK} for asynchronous mode",
                      "blocks without async")
        if s.causal_attention:
            if s.causal_block_size > 1:
                mask = fx.attention_mask_bytes(fx.latents(s.base_frames), s.width, s.height)
                self.warn_once(shot, self.setting(shot, "causal_attention"),
                          f"block-causal attention builds a dense {_gib(mask)} mask for every transformer call on a "
                          f"{s.base_frames}-frame window and cannot use flash attention; SkyReels-V2 runs full "
                          f"attention unless asked (--causal_attention)", "causal attention")
            else:
                self.warn_once(shot, self.setting(shot, "causal_attention"),
                          "causal_attention changes nothing with causal_block_size 1 (every block is one latent)",
                          "causal attention")
        native = preset(s.model)  # a model the story chose (not the default) made for another frame size
        if native is not None and native.repo is not None and "model" in shot.origins and \
                RESOLUTIONS[native.resolution] != (s.width, s.height):
            width, height = RESOLUTIONS[native.resolution]
            other = next((p.name for p in PRESETS.values() if p.repo is not None and p.name.split("-")[1] ==
                          native.name.split("-")[1] and RESOLUTIONS[p.resolution] == (s.width, s.height)), None)
            self.warn_once(shot, self.setting(shot, "resolution" if "resolution" in shot.origins else "model"),
                           f"{s.model} was trained at {width}x{height}, and this film is {s.width}x{s.height}: "
                           + (f"use {other}, made for it" if other else f"use resolution: {native.resolution}"),
                           "model and resolution disagree")
        if s.ar_step > s.steps:
            self.warn(shot, self.setting(shot, "ar_step"),
                      f"ar_step {s.ar_step} is above steps {s.steps}: blocks already run one after another "
                      f"at ar_step {s.steps}, so a larger value changes nothing", "ar_step above steps")
        if shot.end_image and not shot.image and kind != "extend":
            self.error(shot, shot.path + ("end_image",),
                       "an end frame needs a start frame: add `image:` (the image-to-video pipeline starts from it), "
                       "or `transition: continue` to go on from the previous shot towards the end frame")
            ok = False
        native_fps = preset(s.model)
        if s.fps not in MODEL_FPS and (native_fps is None or native_fps.repo is not None):
            self.error_once(shot, self.setting(shot, "fps"),
                            f"fps {s.fps}: SkyReels-V2 DF checkpoints make motion at 24 fps (their only frame-rate "
                            f"input tells 16 fps from any other), so a {s.fps} fps film would play it "
                            f"{s.fps / 24:.2f}x {'fast' if s.fps > 24 else 'slow'}; set fps: 24 (or 16), and change "
                            f"the finished film's rate with a video tool if you need {s.fps} fps", _each("fps", [24]))
            ok = False
        return ok

    def check_windows(self, shot: ResolvedShot, kind: str, planned: int) -> bool:
        """Rules on the overlap, which only a shot of several windows or a continued shot uses; False when broken.

        A shot within one window never uses its overlap, so it is never refused for it."""
        s = shot.settings
        geometry = self.geometry(shot)
        b, o, c = geometry.base_latents, geometry.overlap_latents, s.causal_block_size
        needed = planned + (s.overlap_frames if kind == "extend" else 0)
        if kind != "extend" and fx.latents(needed) <= b:
            return True
        at = self.setting(shot, "overlap_frames")
        if o >= b:
            below = [fx.pixel_frames(n) for n in range(b - 1, 0, -1)]
            candidates = [v for v in (17, 37) if v in below] + below
            why = (f"overlap_frames {s.overlap_frames} must be smaller than base_frames {s.base_frames} (each window "
                   "must add new frames)")
        elif o % c and o >= c:
            down, up = o - o % c, o - o % c + c
            candidates = [fx.pixel_frames(n) for n in _outward(down, up, c, c, b - 1)]
            why = (f"overlap_frames {s.overlap_frames} is {o} latents, not a multiple of causal_block_size {c}: the "
                   f"pipeline would cut every window's conditioning to {down} latents and regenerate the other "
                   f"{o % c} only to drop them (a weaker seam for more work)")
        else:
            return True
        found = self.fixes(shot, "overlap_frames", candidates)
        if found or self.quiet:
            self.error_once(shot, at, why + _use("overlap_frames", found), _each("overlap_frames", found))
            return False
        # no overlap plans this length as it is: each with the nearest length it plans
        pairs = self.with_length(shot, kind, planned, "overlap_frames", candidates)
        advice = " or ".join(f"{v} with {n}f" for v, n in pairs)
        self.error_once(shot, at, why + (f"; use overlap_frames {advice}" if pairs else ""),
                        [(("overlap_frames", v), ("duration", f"{n}f")) for v, n in pairs])
        return False

    def with_length(self, shot: ResolvedShot, kind: str, requested: int, name: str, candidates: Iterable[int],
                    count: int = 2) -> list[tuple[int, int]]:
        """Up to `count` (value, length) pairs: `name` set to a candidate and the nearest length that then plans."""
        pairs: list[tuple[int, int]] = []
        step, first = (4, 4) if kind == "extend" else (4, 1)
        start = max(first, requested - _search(shot))
        start += (first - start) % step
        lengths = sorted(range(start, requested + _search(shot), step), key=lambda n: (abs(n - requested), -n))
        for value in list(dict.fromkeys(candidates))[:6]:  # the nearest few: each may scan every length
            length = next((n for n in lengths if self.accepts(shot, duration=n, **{name: value})), None)
            if length is not None:
                pairs.append((value, length))
                if len(pairs) == count:
                    break
        return pairs

    def check_cache(self, shot: ResolvedShot, kind: str, requested: int, generation: fx.Generation) -> bool:
        """An experimental transformer cache keeps state across windows: it needs windows of one size (and for
        magcache, of one number of denoising rows); False when the shot's windows differ."""
        cache = shot.settings.cache
        sizes = [w.latent_frames for w in generation.windows]
        rows = [w.rows for w in generation.windows]
        if cache is None or (len(set(sizes)) == 1 and (cache != "magcache" or len(set(rows)) == 1)):
            return True
        what = (f"windows of one size, but this shot's windows have {sizes} latents" if len(set(sizes)) > 1 else
                f"every window to take the same number of denoising rows, but this shot's take {rows} (asynchronous "
                "mode: the first window has no prefix)")
        below, above = self.lengths(shot, kind, requested) if not self.quiet else (None, None)
        options = [n for n in (below, above) if n is not None]
        firstblock = cache == "magcache" and len(set(sizes)) == 1 and not self.quiet and \
            self.accepts(shot, cache="firstblock")
        without = not self.quiet and self.accepts(shot, cache=None)
        advice = [f"use {' or '.join(f'{n}f' for n in options)}"] if options else []
        advice += ["cache: firstblock"] * firstblock + ["remove `cache`"] * without
        self.error(shot, shot.path + ("duration",),
                   f"render.cache {cache} needs {what} (the cache keeps state across windows and breaks on a "
                   f"different one)" + ("; " + ", or ".join(advice) if advice else ""),
                   _each("duration", [f"{n}f" for n in options]) + _each("cache", ["firstblock"] * firstblock)
                   + _each("cache", [None] * without))
        return False

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

            with PILImage.open(shot.image.stream()) as image:  # the bytes hashed, read once (not a second open)
                image_width, image_height = image.size
        except (OSError, StoryforgeError):
            return  # the story checks report unreadable images
        if (image_width > image_height) != (width > height) and image_width != image_height and width != height:
            kept = min(image_width / image_height / (width / height), image_height / image_width / (height / width))
            shape = "portrait" if image_height > image_width else "landscape"
            self.warn(shot, at, f"the start image is {shape} ({image_width}x{image_height}) and the film is "
                      f"{width}x{height}: it is centre-cropped to the film's shape, keeping {kept:.0%} of it; for a "
                      f"{shape} film set resolution: {height}x{width}")

    def geometry(self, shot: ResolvedShot) -> fx.Geometry:
        s = shot.settings
        fields = (s.base_frames, s.overlap_frames, s.causal_block_size, s.ar_step, s.steps)
        found = self._geometries.get(fields)  # a film has a few: asked for several times a shot
        if found is None:
            found = self._geometries[fields] = fx.Geometry(*fields)
        return found

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
        elif not fx.is_generation_length(frames):
            return "a generation is 4k+1 frames long (the VAE turns 4 frames into one latent, plus the first)"
        elif kind == "i2v" and fx.latents(frames) < 2:  # a given start image or a generated keyframe alike
            return ("the start image is the shot's first latent, so it needs at least one more latent "
                    "(4 frames) to generate")
        if geometry.overlap_latents >= geometry.base_latents and (
                kind == "extend" or fx.latents(frames) > geometry.base_latents):
            return None  # no windows to check: check_windows refuses the overlap itself, naming values that plan
        if kind == "extend":
            return fx.window_problem(frames + geometry.overlap_frames, geometry, extend=True)
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

        self._equal[key] = fx.nearest(frames, full, limit=_search(shot))
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
            shortest = self.shortest(shot, kind)
            self.error(shot, at, f"{shot.shot.duration} is 0 frames at {fps} fps" + (
                f"; the shortest this shot can be is {shortest} {unit if shortest != 1 else 'frame'} "
                f"({shortest / fps:.3f}s): write {shortest}f" if shortest else ""),
                _each("duration", [f"{shortest}f"] if shortest else []))
            return None
        if exact is not None:
            reason = self.why_not(kind, requested, shot)
            if reason is None:
                return requested, requested
            if self.quiet:
                self.error(shot, at, reason)
                return None
            below, above = self.lengths(shot, kind, requested)
            lengths = [n for n in (below, above) if n is not None]
            settings = self.length_settings(shot, kind, requested)
            mode = self._mode(shot)
            what = "frame" if requested == 1 and kind != "extend" else unit
            advice = [f"use {' or '.join(f'{n}f' for n in lengths)}"] if lengths else []
            if settings:
                advice.append("set " + " or ".join(_say(fix) for fix in settings))
            self.error(shot, at, f"{requested} {what}{mode}: {reason}" +
                       ("; " + ", or ".join(advice) if advice else ""),
                       _each("duration", [f"{n}f" for n in lengths]) + settings)
            return None
        if kind == "i2v" and requested < 5:  # not silently 5x a one-frame request: an image shot has 2 latents or more
            shortest = self.shortest(shot, kind)
            if shortest is not None and requested < shortest:
                self.error(shot, at, f"{shot.shot.duration} is {requested} {'frame' if requested == 1 else 'frames'} "
                           f"at {fps} fps; the shortest this shot can be is {shortest} {unit} ({shortest / fps:.3f}s): "
                           f"write {shortest}f", _each("duration", [f"{shortest}f"]))
                return None
        planned = self.snap(requested, kind, shot)
        if planned is None:
            self.error(shot, at, f"no length near {requested} {unit} can be rendered with these settings")
            return None
        if abs(planned - requested) > fps / 2:
            self.warn(shot, at, f"{shot.shot.duration} is {requested} frames at {fps} fps, but the nearest length "
                      f"this shot can render is {planned} ({planned / fps:.2f}s)", "length far from the request")
        return requested, planned

    def shortest(self, shot: ResolvedShot, kind: str) -> int | None:
        """The shortest length (frames) the shot plans with, every rule considered."""
        if self.quiet:
            return self.snap(1, kind, shot)
        return self.lengths(shot, kind, 1)[1]

    def length_settings(self, shot: ResolvedShot, kind: str, requested: int) -> list[Fix]:
        """Settings that let a refused exact length plan as written, when the rule it breaks is about them."""
        s = shot.settings
        c, b, o = s.causal_block_size, fx.latents(s.base_frames), fx.latents(s.overlap_frames)
        if c == 1:
            return []
        counts = fx.windows(fx.latents(requested + (s.overlap_frames if kind == "extend" else 0)), b, o) \
            if o < b else [b]
        found: list[Fix] = []
        if (len(counts) > 1 or kind == "extend") and fx.prefix_latents(o, c) == 0:
            options = [fx.pixel_frames(n) for n in range(c, b, c)]
            found += _each("overlap_frames", self.fixes(shot, "overlap_frames", options))
        if len(counts) > 1 and b % c:
            options = [fx.pixel_frames(n) for n in range(b - b % c, 0, -c)] + \
                [fx.pixel_frames(n) for n in range(b - b % c + c, fx.latents(MAX_WINDOW_FRAMES) + 1, c)]
            found += _each("base_frames", self.fixes(shot, "base_frames", options, count=1))
        if (len(counts) > 1 or kind == "extend") and o % c and o >= c:  # check_windows would refuse the overlap
            down = o - o % c
            candidates = [fx.pixel_frames(n) for n in _outward(down, down + c, c, c, b - 1)]
            found += [(("overlap_frames", v), ("duration", f"{n}f"))
                      for v, n in self.with_length(shot, kind, requested, "overlap_frames", candidates)]
        found += _each("causal_block_size", self.fixes(shot, "causal_block_size", [1], count=1))
        return found

    def snap(self, frames: int, kind: str, shot: ResolvedShot) -> int | None:
        """fx.snap for this kind of shot, once per geometry (shots of a film mostly repeat a few lengths)."""
        key = (kind, frames, self.geometry(shot), bool(shot.image))
        if key not in self._snapped:
            self._snapped[key] = fx.snap(frames, lambda n: self.why_not(kind, n, shot) is None, limit=_search(shot))
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
        if previous is None:  # the shot before failed and was reported (the film's first shot: the story checks)
            if not self.problems:
                self.error(shot, shot.path + ("transition",), "a bridge continues the shot before it, and there is "
                           "none to continue; use cut or fade")
            return None
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
            source=self.source.at(at), takes=1, take_seeds=(seed,),
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
                            source=self.source.at(("keyframes", "model")),
                            candidates=spec.takes, seeds=tuple(take_seed(derive_seed(spec.seed, shot.id), n)
                                                               for n in range(1, spec.takes + 1)))
        if self.write_keyframe is not None:
            keyframe = replace(keyframe, prompt=instruction(self.write_keyframe, text.prompt, text.camera, keyframe))
        return keyframe

    # -- the whole film --------------------------------------------------------------------------
    def compile(self) -> Plan:
        fps = self.film.fps
        width, height = self.film.size
        jobs: list[Job] = []
        cursor = 0  # where the next job starts on the final timeline
        chain_frames = 0  # frames of the current chain so far (an extension needs overlap_frames of them)
        previous: Job | None = None
        self.check_locations()
        for shot in self.film.shots:
            kind = "extend" if shot.shot.transition_type == "continue" else ("i2v" if shot.shot.image or
                                                                                shot.shot.end_image else "t2v")
            text = self.texts[shot.id]
            references = self.references(shot, text)
            keyframe = None
            if kind == "t2v" and references and self.film.story.film.keyframes is not None:
                kind, keyframe = "i2v", self.keyframe(shot, text, references)  # a shot that starts a take
                # image-to-video's recommended guidance and shift, where the story set none (as for `image:`)
                defaults = {k: v for k, v in I2V_DEFAULTS.items() if shot.origins.get(k) == shot.path}
                shot = replace(shot, settings=replace(shot.settings, **defaults))  # type: ignore[arg-type]  # guidance, shift: floats
            self.context = _Context(kind, keyframe, text, references, previous, chain_frames, cursor,
                                    jobs[-1] if jobs else None)
            made = self.shot_job(shot, self.context)
            if made is None:
                previous = None
                continue
            *bridge, job = made
            self.check_images(shot, previous if job.transition.type != "continue" else None, width, height)
            self.check_reading(shot, job)
            jobs.extend([*bridge, job])
            cursor = job.start_frame + job.frames
            chain_frames = (chain_frames if kind == "extend" else 0) + job.frames
            previous = job
        self.context = None
        memory = self.check_memory(jobs)
        if self.problems:
            raise PlanError(self.problems)
        story = self.film.story
        return with_keys(Plan(title=story.film.title, story=story.path, fps=fps, width=width, height=height,
                              total_frames=cursor, jobs=tuple(jobs), audio=self.film.audio,
                              warnings=tuple(sorted(self.warnings, key=lambda w: (w.line, w.where))),
                              memory=memory))

    # -- does it fit? ------------------------------------------------------------------------------
    def check_memory(self, jobs: list[Job]) -> tuple[MemoryNeed, ...]:
        """The GPU memory of each preset model's jobs (see storyforge.plan.memory); a render that needs more than
        the story's render.gpu_memory is refused, naming the settings that would fit."""
        groups: dict[tuple[str, str, int | None], list[Job]] = {}
        for job in jobs:
            s = job.settings
            groups.setdefault((s.model, s.offload, s.gpu_memory), []).append(job)
        needs = []
        for (model, offload, budget), members in groups.items():
            architecture = mem.ARCHITECTURES.get(model)
            if architecture is None:
                continue  # a hub id or a folder: its architecture is not known before it loads
            s = members[0].settings
            window = max(w.latent_frames + (1 if job.end_image is not None else 0)
                         for job in members for w in job.segments)
            found = mem.estimate(architecture, s.width, s.height, window, offload)
            need = MemoryNeed(model, s.width, s.height, window, found.tokens, offload, found.vae_tiling,
                              {"transformer": found.transformer, "text_encoder": found.text_encoder, "vae": found.vae},
                              found.activations, found.vae_decode,
                              {o: mem.needs(architecture, s.width, s.height, window, o) for o in mem.OFFLOADS},
                              budget)
            needs.append(need)
            if budget is not None and need.needs[offload] > budget:
                shots = {shot.id: shot for shot in self.film.shots}
                shot = shots.get(members[0].id) or shots.get(members[0].before or "") or self.film.shots[0]
                self.error_once(shot, self.setting(shot, "gpu_memory"), _too_big(need, architecture, s, budget),
                                _fitting(need, architecture, s, budget))
        return tuple(needs)

    def shot_job(self, shot: ResolvedShot, context: _Context) -> list[Job] | None:
        """One shot compiled to its job (after its bridge, when it begins with one) where it stands in the film
        (after `context`), or None after reporting why it cannot be; `accepts` runs it again quietly to try a
        suggestion."""
        kind, previous, fps = context.kind, context.previous, self.film.fps
        if not self.check_settings(shot, kind):
            return None
        seconds, exact = parse_duration(shot.shot.duration)
        counts = self.plan_frames(shot, kind, seconds, exact, fps)
        t_frames = self.transition_frames(shot, fps)
        if counts is None:
            return None
        requested, planned = counts
        s = shot.settings
        geometry = self.geometry(shot)
        if kind == "extend" and previous is None:
            return None  # the shot before it failed and was reported
        if not self.check_windows(shot, kind, planned):
            return None
        if kind == "extend":
            if context.chain_frames < s.overlap_frames:
                self.error(shot, shot.path + ("transition",),
                           f"continuing needs the last {s.overlap_frames} frames (overlap_frames) of what came "
                           f"before, but the chain so far has {context.chain_frames}; make the previous shot longer")
            num_frames = planned + s.overlap_frames
            generation = fx.generation(num_frames, geometry, extend=True, end_image=shot.end_image is not None)
        else:
            num_frames = planned
            generation = fx.generation(num_frames, geometry, start_image=kind == "i2v",
                                       end_image=shot.end_image is not None)
        if not self.check_cache(shot, kind, requested, generation):
            return None
        if not self.quiet and len(generation.windows) > 1 and \
                generation.windows[-1].latent_frames * 2 < geometry.base_latents:
            last = generation.windows[-1].latent_frames
            options = " or ".join(f"{n}f ({n / fps:.2f}s)" for n in self.equal_windows(shot, kind, planned)
                                  if n is not None)
            self.warn(shot, shot.path + ("duration",),
                      f"the last window has {last} of {geometry.base_latents} latents but costs nearly a full "
                      f"window of steps; a length giving equal windows is cheaper per frame: use {options}",
                      "short last window")
        kind_t = shot.shot.transition_type
        made: list[Job] = []
        cursor = context.cursor
        if kind_t == "bridge":
            bridge = self.bridge(shot, previous, context.chain_frames, cursor, fps)
            if bridge is None:
                return None
            t_frames = bridge.frames
            made.append(bridge)
            cursor += bridge.frames
        start = cursor
        if kind_t == "crossfade" and previous is not None:
            limit = min(previous.frames, planned)
            if t_frames > limit:
                found = self.fixes(shot, "transition", [limit, *range(limit - 1, 0, -1)], count=1)
                self.error(shot, shot.path + ("transition",),
                           f"a crossfade of {t_frames} frames is longer than "
                           f"{'the previous shot' if previous.frames < planned else 'this shot'} "
                           f"({limit} frames)" +
                           (f"; use at most {found[0]}f ({found[0] / fps:.2f}s)" if found else ""),
                           _each("transition.duration", [f"{v}f" for v in found]))
            start = cursor - t_frames
        if kind_t == "fade":
            last_frames = context.last.frames if context.last is not None else None

            def fits(n: int) -> bool:
                out_frames, in_frames = n // 2, n - n // 2
                if previous is None and last_frames is None:
                    in_frames = n
                return not (in_frames > planned or (last_frames is not None and out_frames > last_frames))

            if not fits(t_frames):
                found = self.fixes(shot, "transition", [n for n in range(t_frames - 1, 0, -1) if fits(n)], count=1)
                self.error(shot, shot.path + ("transition",),
                           f"a fade of {t_frames} frames does not fit in the shots around it" +
                           (f"; use at most {found[0]}f ({found[0] / fps:.2f}s)" if found else "; use a shorter one"),
                           _each("transition.duration", [f"{v}f" for v in found]))
        seed = s.seed if shot.seed_is_explicit else derive_seed(s.seed, shot.id)
        return [*made, Job(
            id=shot.id, kind=kind, after=previous.id if (kind == "extend" and previous) else None,
            prompt=context.text.prompt, template_prompt=context.text.prompt, camera=context.text.camera,
            requested_frames=requested, frames=planned, num_frames=num_frames, start_frame=start,
            transition=Transition(kind_t, t_frames), segments=generation.windows, seed=seed, settings=s,
            image=shot.image, end_image=shot.end_image,
            source=self.source.at(shot.path),
            takes=s.takes, take_seeds=tuple(take_seed(seed, n) for n in range(1, s.takes + 1)),
            references=context.references, keyframe=context.keyframe,
            dialogue=tuple((spoken.character, spoken.line) for spoken in shot.shot.dialogue),
            seams_intended=shot.shot.seams is not None and shot.shot.seams.intended,
        )]

    # -- readings a person probably did not mean ---------------------------------------------------
    def check_reading(self, shot: ResolvedShot, job: Job) -> None:
        """A bare number as a duration is seconds; one that looks like a frame count (16 or more, or 9 and 13: the
        4k+1 counts a generation makes exactly) gets a warning that names both readings."""
        written = shot.shot.duration
        if isinstance(written, str) or isinstance(written, bool) or not float(written).is_integer():
            return
        number = int(written)
        if number < 16 and not (number >= 9 and fx.is_generation_length(number)):
            return
        unit = "new frames" if job.kind == "extend" else "frames"
        self.warn(shot, shot.path + ("duration",),
                  f"{number} is {number} s = {job.frames:,} {unit} at {self.film.fps} fps; write {number}f for "
                  f"frames, or {number}s for seconds", "bare number as a duration")

    def check_locations(self) -> None:
        """A scene location that is not a key of `locations` is free text; one close to a key is probably a typo."""
        film = self.film.story.film
        keys = list(film.locations)
        for s, scene in enumerate(film.scenes):
            place = scene.location
            if place is None or place in film.locations or not keys:
                continue
            folded = {key.lower().replace("-", "_").replace(" ", "_"): key for key in keys}
            close = folded.get(place.strip().lower().replace("-", "_").replace(" ", "_")) or next(
                iter(difflib.get_close_matches(place, keys, n=1, cutoff=0.75)), None)
            if close is None:
                continue
            at = ("scenes", s, "location")
            self.warnings.append(PlanWarning(
                self.source.file, self.source.line(at), scene.id,
                f"location '{place}' is not a key of `locations`, so it is used as free text (without "
                f"{close}'s description or reference); did you mean '{close}'?", "location like a key"))

def _too_big(need: MemoryNeed, architecture: mem.Architecture, s: Settings, budget: int) -> str:
    fits = ", ".join(f"{' and '.join(f'{k}: {v}' for k, v in fix)} (≈ {mem.gib(bytes_)})"
                     for fix, bytes_ in _options(need, architecture, s, budget))
    return (f"{s.model} at {s.width}x{s.height} with offload '{need.offload}' needs about "
            f"{mem.gib(need.needs[need.offload])} of GPU memory (weights {mem.gib(sum(need.weights.values()))}, "
            f"activations of the largest window ({need.tokens:,} tokens) {mem.gib(need.activations)}, VAE decode "
            f"{mem.gib(need.vae_decode)}), more than gpu_memory {mem.gib(budget)}; " +
            (f"what fits: {fits}" if fits else "nothing storyforge can set fits: use a GPU with more memory"))


def _fitting(need: MemoryNeed, architecture: mem.Architecture, s: Settings, budget: int) -> list[Fix]:
    return [fix for fix, _ in _options(need, architecture, s, budget)]


def _options(need: MemoryNeed, architecture: mem.Architecture, s: Settings,
             budget: int) -> list[tuple[Fix, int]]:
    """What would fit in `budget`, each with what it needs: another offload; a smaller window, 540p or the 1.3B
    model, each with the least offload that makes it fit (less offload renders faster)."""
    found: list[tuple[Fix, int]] = []
    for offload in mem.OFFLOADS:
        if offload != need.offload and need.needs[offload] <= budget:
            found.append(((("offload", offload),), need.needs[offload]))
    offloads = [need.offload] + [o for o in mem.OFFLOADS if o != need.offload]

    def least(change: Fix, model: mem.Architecture, width: int, height: int, window: int) -> None:
        for offload in offloads:
            bytes_ = mem.needs(model, width, height, window, offload)
            if bytes_ <= budget:
                found.append((change + ((("offload", offload),) if offload != need.offload else ()), bytes_))
                return

    for offload in offloads:  # the largest window that fits, with the least offload
        latents = next((n for n in range(need.window_latents - 1, 1, -1)
                        if fx.pixel_frames(n) > s.overlap_frames and
                        mem.needs(architecture, s.width, s.height, n, offload) <= budget), None)
        if latents is not None:
            least((("base_frames", fx.pixel_frames(latents)),), architecture, s.width, s.height, latents)
            break
    width, height = RESOLUTIONS["540p"]
    if s.width * s.height > width * height:
        window = min(need.window_latents, fx.latents(PRESETS["df-14b-540p"].base_frames))
        model = "df-14b-540p" if architecture.transformer == mem.DF_14B else s.model
        change: Fix = (("resolution", "540p"),) + ((("model", model),) if model != s.model else ())
        least(change, mem.ARCHITECTURES.get(model, architecture), width, height, window)
    if architecture.transformer == mem.DF_14B:
        least((("model", "df-1.3b-540p"),), mem.ARCHITECTURES["df-1.3b-540p"], s.width, s.height,
              need.window_latents)
    return found


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
        # dataclasses.replace copies every field: skip it where the seed is the job's own (a one-take job), and
        # set the take's seed and key in the same copy as the lists (what for_take(job.take) would give)
        take_keys = tuple(job_key(job if seed == job.seed else replace(job, seed=seed), upstream, before)
                          for seed in seeds)
        picked = _keyed(job, take_seeds=seeds, take_keys=take_keys, seed=seeds[job.take - 1],
                        key=take_keys[job.take - 1])
        keys[job.id] = picked.key
        keyed[job.id] = picked
    return replace(plan, jobs=tuple(keyed[job.id] for job in plan.jobs))


def _keyed(job: Job, **changes: Any) -> Job:
    """`dataclasses.replace(job, **changes)` for a Job, whose fields are all set by its __init__ and who has no
    __post_init__: a copy of its fields with `changes` over them, without replace's pass through every field and
    frozen setattr (a seventh of keying a 1,000-shot film)."""
    if not changes.keys() <= _JOB_FIELDS:
        raise TypeError(f"Job has no field {sorted(changes.keys() - _JOB_FIELDS)[0]!r}")
    copy = object.__new__(Job)
    copy.__dict__.update(job.__dict__, **changes)
    return copy


_JOB_FIELDS = frozenset(field.name for field in fields(Job))


def instruction(write: KeyframeWriter, prompt: str, camera: str | None, keyframe: Keyframe) -> str:
    """A keyframe's edit instruction from the final prompt and camera words, written by `write`."""
    return write(prompt, camera, [r.name for r in keyframe.references], keyframe.cast, keyframe.location)


def compile_plan(film: ResolvedFilm, render_texts: Callable[[ResolvedFilm], Mapping[str, ShotText]],
                 write_keyframe: KeyframeWriter | None = None) -> Plan:
    """Compile a resolved film; raise PlanError with every impossible shot at its line.

    `write_keyframe` turns a keyframe's prompt into its edit instruction (default: the prompt as it is)."""
    return _Compiler(film, render_texts(film), write_keyframe).compile()
