"""The review page: review.html in the output folder, a static storyboard of every shot's takes to pick from."""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.atomic import replacing, write_text
from storyforge.errors import StoryforgeError, display_path
from storyforge.seams import visible
from storyforge.story.checks import file_stem

if TYPE_CHECKING:
    from storyforge.confined import Folder
    from storyforge.plan.model import Job, Plan
    from storyforge.readback import JobLine, RunFile

PAGE = "review.html"
POSTERS = "review"  # poster frames, one small JPEG per take, beside the page
POSTER_WIDTH = 320  # pixels: sharp at the page's ~260 px cards on a laptop, ~10-20 kB each
POSTER_QUALITY = 78


def take_clip(job: Job, take: int) -> str:
    """`takes/<scene>__<shot>/take<N>.mp4`, relative to the output folder."""
    return f"takes/{job.id.replace('/', '__')}/take{take}.mp4"


def poster_name(job: Job, take: int) -> str:
    """`review/<scene>__<shot>.take<N>.jpg`, relative to the output folder."""
    return f"{POSTERS}/{job.id.replace('/', '__')}.take{take}.jpg"


def keyframe_poster_name(job: Job) -> str:
    """`review/<scene>__<shot>.keyframe.jpg`: the shot's generated start frame, small, relative to the output
    folder."""
    return f"{POSTERS}/{job.id.replace('/', '__')}.keyframe.jpg"


def candidate_poster_name(job: Job, number: int) -> str:
    """`review/<scene>__<shot>.keyframe.k<N>.jpg`: keyframe candidate N, small, relative to the output folder."""
    return f"{POSTERS}/{job.id.replace('/', '__')}.keyframe.k{number}.jpg"


def _candidates(job: Job) -> range:
    """The keyframe candidates of a job that has several (`keyframes: {takes: N}`); empty otherwise."""
    count = job.keyframe.candidates if job.keyframe is not None else 1
    return range(1, count + 1) if count > 1 else range(0)


def written_names(plan: Plan) -> list[str]:
    """Every file the page may write (relative to the output folder), for the output folder's manifest."""
    return [PAGE, *(poster_name(job, take.take) for job in plan.jobs for take in job.all_takes),
            *(keyframe_poster_name(job) for job in plan.jobs if job.keyframe is not None),
            *(candidate_poster_name(job, n) for job in plan.jobs for n in _candidates(job))]


def rendered_here(plan: Plan, out: Path) -> bool:
    """Whether `out` holds a render of the plan's story: its run.json, or keyframes from `--keyframes-only`."""
    from storyforge.atomic import regular
    from storyforge.keyframes import keyframe_names

    out = Path(out)  # asked through the held folder's door (or of its parent): a link is not a render
    return regular(out / "run.json") is not None or any(regular(out / name) is not None for job in plan.jobs
                                                        for name in keyframe_names(job))


@dataclass(frozen=True)
class ReviewReport:
    """What building the page did."""

    page: Path
    posters: int  # poster frames written (the others were current)
    bytes: int  # the page and every poster it shows
    seconds: float


@dataclass(frozen=True)
class _Take:
    number: int
    seed: int
    key: str
    clip: str | None  # relative to the output folder; None when the file is not there
    poster: str | None  # relative to the output folder
    status: str  # rendered | cached | outdated | missing
    picked: bool
    rejected: bool = False
    note: str = ""


@dataclass(frozen=True)
class _Still:
    """A keyframe picture on the page: the one the video starts from, or one of several candidates."""

    number: int  # 0: the shot's only keyframe
    poster: str | None
    picked: bool


def build(plan: Plan, out: Path, *, story_arg: str | None = None) -> ReviewReport:
    """Write `out/review.html` and the poster frames it shows, from the plan (its picks) and out/run.json.

    Posters are named by their take's cache key, so a rebuild decodes only takes that changed; posters of
    takes no longer in the plan are removed. `story_arg` is the story as `storyforge pick` should name it.
    """
    from storyforge.enhance.lock import read_choices
    from storyforge.outdir import folder_of
    from storyforge.readback import read_run

    started = time.perf_counter()
    out = Path(out)
    folder = folder_of(out)  # held by the caller (storyforge.outdir.claimed): nothing here follows a link
    run = read_run(folder)
    choices = read_choices(plan.story)
    records = {line.id: line for line in run.jobs}
    wanted: set[Path] = set()
    written = 0
    shots = []
    for job in plan.jobs:
        takes = []
        for take in job.all_takes:
            clip = _clip_of(folder, job, take.take)
            poster = None
            status = _status(records.get(job.id), take)
            if clip is None:
                status = "missing"
            else:
                target = out / poster_name(job, take.take)
                wanted.add(target)
                # a take rendered again (or drawn at another timecode by the animatic, same job key) is a newer
                # file than its poster; the page names the clip's version so a browser shows the new poster
                if _older(folder, poster_name(job, take.take), clip):
                    written += _write_poster(folder.path_of(clip), target)
                poster = (f"{poster_name(job, take.take)}?v={_version(folder, clip)}"
                          if folder.is_file(poster_name(job, take.take)) else None)
            takes.append(_Take(take.take, take.seed, take.key, clip, poster, status, take.take == job.take,
                               take.take in choices.rejected.get(job.id, ()), choices.notes.get(job.id, {}).get(
                                   take.take, "")))
        stills: list[_Still] = []
        if job.keyframe is not None:  # the start frame the shot renders from, so a look can be approved first
            from storyforge.keyframes import candidate_name, keyframe_name

            pictures = [(n, candidate_name(job, n), candidate_poster_name(job, n)) for n in _candidates(job)] or [
                (0, keyframe_name(job), keyframe_poster_name(job))]
            for number, name, poster_file in pictures:
                target, still = out / poster_file, None
                if folder.is_file(name):  # a link there is refused, never shown
                    wanted.add(target)
                    if _older(folder, poster_file, name):
                        written += _write_still(folder, name, target)
                    if folder.is_file(poster_file):
                        still = f"{poster_file}?v={_version(folder, name)}"
                stills.append(_Still(number, still, number in (0, job.keyframe.pick)))
        shots.append((job, takes, stills))
    from storyforge.outdir import remove_stale

    remove_stale(out, POSTERS, wanted)  # posters of takes no longer in the plan, if storyforge wrote them
    story = story_arg or display_path(plan.story)
    page = out / PAGE
    # shots whose cut (clips/, film.mp4) is not the plan's pick: picked since, or changed since
    uncut = [job.id for job in plan.jobs if job.id not in records or records[job.id].take != job.take
             or records[job.id].key != job.key]
    write_text(page, _page(plan, shots, run, story, folder, uncut))
    size = sum(info.st_size for info in (folder.stat(p.relative_to(out)) for p in (page, *wanted)) if info)
    return ReviewReport(page=page, posters=written, bytes=size, seconds=round(time.perf_counter() - started, 3))


def rebuild(plan: Plan, out: Path, *, story_arg: str | None = None) -> ReviewReport:
    """`storyforge review`: the page for the last render in `out` (keyframes made with `--keyframes-only`
    count); an error when nothing was rendered there."""
    if not rendered_here(plan, out):
        raise StoryforgeError(f"no render in {display_path(Path(out))} yet; run `storyforge render "
                              f"{story_arg or display_path(plan.story)}` first (or name its folder with --out)")
    return build(plan, out, story_arg=story_arg)


# -- what the last render left -------------------------------------------------------------------------------


def _clip_of(folder: Folder, job: Job, take: int) -> str | None:
    """The take's clip relative to the folder when it is a regular file there (clips/ for a one-take job of an
    older render); a link is never a take."""
    for name in (take_clip(job, take), *(("clips/" + file_stem(job.id) + ".mp4",) if take == 1 else ())):
        if folder.is_file(name):
            return name
    return None


def _status(record: JobLine | None, take: Job) -> str:
    """rendered or cached as the last render said; outdated when that render had another key for the take."""
    if record is None:
        return "missing"
    for line in record.all_takes:
        if line.take == take.take:
            if line.key != take.key:
                return "outdated"
            return line.status or "rendered"
    return "missing"


def _older(folder: Folder, poster: str, source: str) -> bool:
    """Whether the poster is missing or older than what it shows."""
    have, shown = folder.stat(poster), folder.stat(source)
    return have is None or shown is None or have.st_mtime_ns < shown.st_mtime_ns


def _version(folder: Folder, clip: str) -> str:
    """A short name for the clip file as it is now: a take rendered again (or drawn at another timecode by the
    animatic, with the same job key) is written anew, so its poster is decoded anew."""
    import hashlib

    stat = folder.stat(clip)
    if stat is None:
        return "0"
    return hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}".encode()).hexdigest()[:12]


def _save(image: Any, target: Path) -> int:
    """A poster written as a small progressive JPEG, atomically; 1 (one poster written)."""
    with replacing(target, suffix=".jpg") as temporary:  # its folder made through the door
        image.save(temporary, format="JPEG", quality=POSTER_QUALITY, optimize=True, progressive=True)
    return 1


def _write_still(folder: Folder, picture: str, target: Path) -> int:
    """A picture (a keyframe PNG) as a small JPEG poster; 1 when written, 0 when it does not decode (or is not a
    picture storyforge would make: its size is checked in its header before it is decoded)."""
    import io

    from PIL import Image

    from storyforge.keyframes import MAX_KEYFRAME_BYTES, picture_problem

    try:
        data = folder.read(picture, MAX_KEYFRAME_BYTES)
        if picture_problem(data) is not None:
            return 0
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("RGB")
            height = max(2, round(POSTER_WIDTH * image.height / image.width))
            image = image.resize((POSTER_WIDTH, height), Image.Resampling.LANCZOS)
    except Exception:  # noqa: BLE001 - Pillow raises many kinds; a picture that does not decode has no poster
        return 0
    return _save(image, target)


def _write_poster(clip: Path, target: Path) -> int:
    """The take's middle frame as a small JPEG; 1 when written, 0 when the clip does not decode."""
    from PIL import Image

    try:
        picture = _poster_picture(clip)
        if picture is None:
            return 0
        height = max(2, round(POSTER_WIDTH * picture.height / picture.width))
        image: Image.Image = picture.to_image(width=POSTER_WIDTH, height=height)
    except Exception:  # noqa: BLE001 - av raises its own error tree; a clip that does not decode has no poster
        return 0
    return _save(image, target)


def _poster_picture(clip: Path) -> Any:
    """The clip's middle frame (storyforge.clipfile.poster_frame), decoded from the keyframe at or before it:
    clips have one there, so that is one frame to decode, not half the clip."""
    from storyforge.clipfile import open_video, poster_frame

    with open_video(clip) as container:
        stream = container.streams.video[0]
        middle = poster_frame(stream.frames or 1)
        rate, base, start = stream.average_rate, stream.time_base, stream.start_time or 0
        if not (middle and rate and base):
            return next(iter(container.decode(stream)), None)
        # frame n of a constant-rate clip is at start + n / rate
        container.seek(start + round(middle / (rate * base)), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            index = round((frame.pts - start) * base * rate) if frame.pts is not None else middle + 1
            if index == middle:
                return frame
            if index > middle:
                break  # not where it should be (timestamps that are not n / rate): count from the start
    return _decoded_to(clip, middle)


def _decoded_to(clip: Path, middle: int) -> Any:
    """Frame `middle` of the clip, or its last if it is shorter, decoded from the start."""
    from storyforge.clipfile import open_video

    with open_video(clip) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: the middle frame comes ~1.5x sooner
        picture = None
        for n, frame in enumerate(container.decode(stream)):
            picture = frame
            if n >= middle:
                break
        return picture


# -- the page ------------------------------------------------------------------------------------------------


def _e(value: object) -> str:
    """Text for HTML, quotes included: prompts and ids come from the story, which anyone may write."""
    return html.escape(str(value), quote=True)


def _href(relative: str) -> str:
    """A relative URL for a path under the output folder (file names are ids: [a-z0-9_-], but be safe)."""
    from urllib.parse import quote

    return _e(quote(relative, safe="/?="))


def _timecode(frame: int, fps: int) -> str:
    from storyforge.console import timecode

    return timecode(frame, fps)


def _page(plan: Plan, shots: list[tuple[Job, list[_Take], list[_Still]]], run: RunFile, story: str, out: Folder,
          stale: list[str]) -> str:
    fps = plan.fps
    seams_by_job: dict[str, list[dict[str, Any]]] = {}
    for seam in run.seams:  # checked when read (storyforge.readback)
        seams_by_job.setdefault(seam["job"], []).append(seam)
    takes_total = sum(len(takes) for _, takes, _keyframe in shots)
    facts = [f"{plan.width}×{plan.height}", f"{fps} fps", f"{plan.total_frames} frames",
             _timecode(plan.total_frames, fps), f"{len(plan.jobs)} shot{'s' if len(plan.jobs) != 1 else ''}",
             f"{takes_total} take{'s' if takes_total != 1 else ''}"]
    if run.backend:
        facts.append(f"backend {run.backend}")
    notice = ""
    if stale:
        notice = (f'<p class="notice">The last render did not cut the current pick of {_e(", ".join(stale))}: '
                  f'run <code class="cmd">storyforge render {_e(_shell(story))}</code> to cut it.</p>')
    player = ""
    if out.is_file("film.mp4"):
        player = (f'<video class="film" controls preload="metadata" src="{_href("film.mp4")}" '
                  f'style="aspect-ratio:{plan.width}/{plan.height}"></video>')
    scenes: dict[str, list[str]] = {}
    for job, takes, stills in shots:
        scenes.setdefault(job.id.split("/")[0], []).append(_shot(plan, job, takes, seams_by_job.get(job.id, []),
                                                                 story, stills, bool(player)))
    board = "\n".join(f'<section class="scene"><h2>{_e(scene)}</h2>\n{"".join(cards)}</section>'
                      for scene, cards in scenes.items())
    return _TEMPLATE.format(
        title=_e(plan.title), facts=" · ".join(_e(f) for f in facts), notice=notice, player=player, board=board,
        aspect=f"{plan.width} / {plan.height}", story=_e(_shell(story)),
    )


def _shot(plan: Plan, job: Job, takes: list[_Take], seams: list[dict[str, Any]], story: str,
          stills: list[_Still], film: bool = False) -> str:
    fps = plan.fps
    transition = job.transition.type + (f" {job.transition.frames}f" if job.transition.frames else "")
    rows = [("start", _timecode(job.start_frame, fps)), ("frames", f"{job.frames} ({job.frames / fps:.2f}s)"),
            ("kind", job.kind + (f" from {job.after} into {job.before}" if job.before else
                                  f" of {job.after}" if job.after else "")), ("transition", transition)]
    seam_items = "".join(_seam(seam, fps, film) for seam in seams)
    facts = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    if seam_items:
        facts += f'<dt>seams</dt><dd><ul class="seams">{seam_items}</ul></dd>'
    figures = "".join(_take(job, take, story) for take in takes)
    if job.keyframe is not None:
        figures = "".join(_keyframe(job, still, story) for still in stills) + figures
    several = len(takes) > 1
    return f"""<article class="shot" id="{_e(job.id)}" data-shot="{_e(job.id)}">
  <header><h3>{_e(job.id)}</h3><span class="badge">{f"take {job.take} of {job.takes}" if several else "1 take"}</span></header>
  <div class="body">
    <div class="meta"><dl>{facts}</dl><p class="prompt">{_e(job.prompt)}</p></div>
    <div class="takes">{figures}</div>
  </div>
</article>
"""  # noqa: E501


def _take(job: Job, take: _Take, story: str) -> str:
    picked = " picked" if take.picked and job.takes > 1 else ""
    rejected = " rejected" if take.rejected else ""
    if take.clip:
        poster = f' poster="{_href(take.poster)}"' if take.poster else ""
        picture = (f'<video controls preload="none" playsinline src="{_href(take.clip)}"{poster} '
                   f'aria-label="{_e(job.id)} take {take.number}"></video>')
    else:
        picture = '<div class="empty">not rendered yet</div>'
    command = f"storyforge pick {_shell(story)} {job.id} {take.number}"
    action = ""
    if job.takes > 1:
        action = ('<span class="mark">✓ picked</span>' if take.picked
                  else f'<code class="cmd" title="copy this to pick the take">{_e(command)}</code>')
    status = "" if take.status in ("rendered", "cached") else f' <span class="status">{_e(take.status)}</span>'
    if take.rejected:
        status += ' <span class="status">rejected</span>'
    note = f'<p class="note">{_e(take.note)}</p>' if take.note else ""
    return f"""<figure class="take{picked}{rejected}" data-take="{take.number}">
    <div class="frame">{picture}</div>
    <figcaption><b>take {take.number}</b> · seed {take.seed} · <span class="key" title="{_e(take.key)}">{_e(take.key[:10])}</span>{status}
    {note}{action}</figcaption>
  </figure>"""  # noqa: E501


def _keyframe(job: Job, still: _Still, story: str) -> str:
    """A start picture before the shot's takes: the one every take starts from, or one of several candidates
    (with the `storyforge pick … --keyframe N` line that chooses it)."""
    assert job.keyframe is not None
    name = "keyframe" if not still.number else f"keyframe {still.number}"
    if still.poster:
        picture = f'<img src="{_href(still.poster)}" alt="{_e(job.id)} {name}" loading="lazy">'
    else:
        picture = '<div class="empty">no keyframe yet</div>'
    references = ", ".join(reference.image.relative for reference in job.keyframe.references)
    action = ""
    if still.number:
        command = f"storyforge pick {_shell(story)} {job.id} --keyframe {still.number}"
        action = ('<span class="mark">✓ the video starts here</span>' if still.picked
                  else f'<code class="cmd" title="copy this to start the video from it">{_e(command)}</code>')
    picked = " picked" if still.picked and still.number else ""
    return f"""<figure class="keyframe{picked}" data-keyframe="{_e(job.id)}" data-candidate="{still.number}">
    <div class="frame">{picture}</div>
    <figcaption><b>{name}</b> · from {_e(references)}{action}</figcaption>
  </figure>"""


def _seam(seam: dict[str, Any], fps: int, film: bool = False) -> str:
    """A seam's timecode, kind and numbers; with the cut, its frames on both sides (the film at those times)."""
    frame = seam.get("frame")
    where = _timecode(frame, fps) if isinstance(frame, int) and not isinstance(frame, bool) else "?"
    numbers = []
    jump = seam.get("jump")
    if isinstance(jump, (int, float)) and not isinstance(jump, bool):
        numbers.append(f"jump {jump:.2f}")
    shift = seam.get("color_shift")
    if isinstance(shift, (int, float)) and not isinstance(shift, bool):
        numbers.append(f"color_shift {shift:.1f}")
    if seam.get("intended") is True:
        numbers.append("intended")
    if not numbers and seam.get("jump") is None:
        numbers.append("not scored")
    loud = visible(seam)  # over a documented threshold (storyforge.seams), and not marked intended
    advice = seam.get("advice")
    if loud and isinstance(advice, str):
        numbers.append(advice)
    stills = ""
    if film and isinstance(frame, int) and not isinstance(frame, bool) and frame > 0:
        stills = '<span class="stills">' + "".join(
            f'<video muted preload="metadata" src="film.mp4#t={(n + 0.5) / fps:.4f}" '
            f'aria-label="frame {n}"></video>' for n in (frame - 1, frame)) + "</span>"
    return (f'<li class="{"loud" if loud else ""}">{_e(where)} {_e(seam.get("kind", ""))}'
            f'{(" · " + _e(" · ".join(numbers))) if numbers else ""}{stills}</li>')


def _shell(word: str) -> str:
    """A path as one shell word (quoted only when it needs to be)."""
    import shlex

    return shlex.quote(word) if os.name != "nt" else f'"{word}"'


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="storyforge">
<title>{title} — takes</title>
<style>
:root {{
  --bg: #101216; --card: #181b21; --line: #2a2e37; --ink: #e9e6df; --dim: #9aa0aa; --accent: #f2b544;
  --loud: #ff7a59; --aspect: {aspect};
  color-scheme: dark;
}}
* {{ box-sizing: border-box; }}
body {{
  margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "Noto Sans", "Liberation Sans",
    Arial, sans-serif;
  -webkit-font-smoothing: antialiased;
}}
main {{ max-width: 1440px; margin: 0 auto; padding: 28px 32px 64px; }}
h1 {{ font-size: 28px; font-weight: 650; letter-spacing: -0.01em; margin: 0 0 4px; }}
h2 {{ font-size: 13px; font-weight: 600; text-transform: uppercase; letter-spacing: 0.12em; color: var(--dim);
     margin: 36px 0 12px; }}
h3 {{ font-size: 17px; font-weight: 620; margin: 0; font-family: ui-monospace, "SF Mono", Menlo, Consolas,
     "DejaVu Sans Mono", monospace; }}
.facts {{ color: var(--dim); margin: 0 0 18px; font-variant-numeric: tabular-nums; }}
.film {{ display: block; max-width: min(100%, 720px); max-height: 46vh; background: #000; border-radius: 8px; }}
.notice {{ background: #2b2414; border: 1px solid #5a4720; border-radius: 8px; padding: 10px 14px; }}
.shot {{ background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 16px 18px;
        margin: 0 0 14px; }}
.shot > header {{ display: flex; align-items: baseline; gap: 12px; margin-bottom: 10px; }}
.badge {{ font-size: 12px; color: var(--dim); border: 1px solid var(--line); border-radius: 99px; padding: 1px 9px; }}
.body {{ display: grid; grid-template-columns: minmax(220px, 300px) 1fr; gap: 20px; }}
@media (max-width: 820px) {{ .body {{ grid-template-columns: 1fr; }} }}
dl {{ display: grid; grid-template-columns: auto 1fr; gap: 2px 12px; margin: 0 0 10px; font-size: 13px; }}
dt {{ color: var(--dim); }}
dd {{ margin: 0; font-variant-numeric: tabular-nums; }}
.seams {{ list-style: none; margin: 0; padding: 0; }}
.seams .loud {{ color: var(--loud); }}
.stills {{ display: flex; gap: 3px; margin: 2px 0 6px; }}
.stills video {{ width: 96px; aspect-ratio: var(--aspect); background: #000; border-radius: 3px; }}
.prompt {{ margin: 0; font-size: 13.5px; line-height: 1.55; color: #d6d2c8; white-space: pre-wrap;
          overflow-wrap: anywhere; max-height: 12em; overflow: auto; }}
.takes {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 14px;
         align-content: start; }}
.take {{ margin: 0; border-radius: 10px; outline: none; }}
.keyframe {{ margin: 0; }}
.keyframe .frame {{ border: 2px dashed #6b7280; }}
.frame {{ position: relative; aspect-ratio: var(--aspect); background: #000; border-radius: 8px; overflow: hidden;
         border: 2px solid transparent; }}
.take.picked .frame, .keyframe.picked .frame {{ border-color: var(--accent);
  box-shadow: 0 0 0 3px rgba(242, 181, 68, .18); }}
.take.rejected {{ opacity: .55; }}
.frame img, .frame video {{ position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain; }}
.note {{ margin: 4px 0 0; color: var(--ink); white-space: pre-wrap; overflow-wrap: anywhere; }}
.note::before {{ content: "note: "; color: var(--dim); }}
.empty {{ position: absolute; inset: 0; display: grid; place-items: center; color: var(--dim); font-size: 13px; }}
figcaption {{ font-size: 12.5px; color: var(--dim); padding: 6px 2px 0; font-variant-numeric: tabular-nums; }}
figcaption b {{ color: var(--ink); font-weight: 600; }}
.key {{ font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; }}
.status {{ color: var(--loud); }}
.mark {{ display: block; color: var(--accent); font-weight: 600; margin-top: 3px; }}
code.cmd {{ display: block; margin-top: 4px; padding: 4px 7px; border-radius: 6px; background: #0b0d10;
           border: 1px solid var(--line); color: #cfd6e2; font: 12px/1.4 ui-monospace, Menlo, Consolas,
           "DejaVu Sans Mono", monospace; user-select: all; cursor: copy; overflow-wrap: anywhere; }}
.notice code.cmd {{ display: inline; }}
footer {{ color: var(--dim); font-size: 12.5px; margin-top: 40px; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p class="facts">{facts}</p>
{notice}
{player}
{board}
<footer>Every take plays in its own player. Click a <code>storyforge pick</code> line to select (and copy) it, run
it, then <code>storyforge render {story}</code> cuts the film with your pick; the lock file beside the story keeps
it.</footer>
</main>
<script>
for (const code of document.querySelectorAll("code.cmd")) {{
  code.addEventListener("click", () => {{
    const range = document.createRange();
    range.selectNodeContents(code);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (navigator.clipboard) navigator.clipboard.writeText(code.textContent).catch(() => {{}});
  }});
}}
</script>
</body>
</html>
"""
