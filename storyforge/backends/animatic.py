"""The animatic backend: a deterministic CPU preview of every shot at the planned frame counts and size."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storyforge.console import timecode

if TYPE_CHECKING:  # numpy and Pillow load only when a frame is drawn: a no-op re-render needs neither
    from collections.abc import Iterator

    import numpy as np
    from PIL import Image, ImageFont

    from storyforge.backends.base import Keyed, RenderInputs
    from storyforge.plan.model import Job

VERSION = 2  # bump when the pictures change for the same inputs (2: images turned as their EXIF orientation says)
MARGIN = 0.1  # canvas border beyond the picture, as a fraction of each side: room to pan and pull out
ZOOM_PER_SECOND, MAX_ZOOM = 0.04, 0.2  # a slow push in: 4 % a second, never more than 20 % in one shot
PAN_PER_SECOND = 0.35  # a pan crosses the margin in about three seconds
BAND = 0.22  # the caption band at the bottom, as a fraction of the frame height
# Tests set this to stand in for a slow backend (seconds per job), e.g. to kill a render between jobs.
DELAY_VARIABLE = "STORYFORGE_ANIMATIC_DELAY"

_INK, _BAND_BG, _ID_INK, _CAPTION_INK = (255, 255, 255), (14, 14, 18), (255, 214, 90), (215, 215, 215)


@dataclass(frozen=True)
class Motion:
    """Where the view goes over a shot, from the unmoved picture: zoom factor and offset in margins (-1..1)."""

    zoom: float = 1.0
    dx: float = 0.0
    dy: float = 0.0


def motion(camera: str | None, seconds: float) -> Motion:
    """The camera words read as a pan/zoom; no motion words means a gentle push in."""
    words = (camera or "").lower()
    zoom_amount = min(ZOOM_PER_SECOND * seconds, MAX_ZOOM)
    pan_amount = min(PAN_PER_SECOND * seconds, 1.0)
    zoom, dx, dy, moved = 1.0, 0.0, 0.0, False
    if any(w in words for w in ("push in", "zoom in", "dolly in")):
        zoom, moved = 1.0 + zoom_amount, True
    if any(w in words for w in ("pull out", "pull back", "zoom out", "dolly out")):
        zoom, moved = 1.0 / (1.0 + zoom_amount), True
    if "pan left" in words:
        dx, moved = -pan_amount, True
    if "pan right" in words or "tracking" in words:
        dx, moved = pan_amount, True
    if "tilt up" in words:
        dy, moved = -pan_amount, True
    if "tilt down" in words:
        dy, moved = pan_amount, True
    if "static" in words or "locked" in words:
        return Motion()
    return Motion(zoom, dx, dy) if moved else Motion(1.0 + zoom_amount / 2)


class Animatic:
    """Title card or start image, moved as the camera words say, with caption, shot id and film timecode."""

    name = "animatic"
    # Drawn title cards, not a model's output: the render loop neither colour-matches them nor checks them for
    # black or frozen frames (a subclass, such as a test backend, keeps that).
    preview = True

    def __init__(self, **_options: Any) -> None:
        """Takes (and ignores) a real backend's options, such as device and dtype, so backends swap freely."""

    def identity(self, job: Job) -> dict[str, Any]:
        # The shot id, camera words and timeline position are burnt into the pictures but are not in the
        # job key (which covers what changes a model's output), so they are part of this backend's identity.
        import PIL

        identity = {"backend": self.name, "version": VERSION, "pillow": PIL.__version__, "shot": job.id,
                    "camera": job.camera, "start_frame": job.start_frame}
        if job.references:  # drawn when the shot has no start picture: only then, so older entries stay valid
            identity["references"] = [r.image.sha256 for r in job.references]
        if job.take > 1:  # "take N" in the caption; take 1 is drawn as a shot without takes (its entry stays)
            identity["take"] = job.take
        return identity

    def frames(self, job: Job, inputs: RenderInputs) -> Iterator[np.ndarray]:
        """The shot drawn one frame at a time, each yielded (as a chunk of one) as soon as it is drawn."""
        import numpy as np
        from PIL import Image
        s = job.settings
        width, height, count = s.width, s.height, job.frames
        band = _band_height(height)
        picture = (width, height - band)
        overlay = _Overlay(job, width, band)
        if job.is_bridge and inputs.previous_frames is not None and inputs.next_frames is not None \
                and len(inputs.previous_frames) and len(inputs.next_frames):
            yield from _bridge(job, inputs, picture, overlay)
            return
        canvas = self._canvas(job, inputs, picture)
        end = np.asarray(_fit(Image.open(job.end_image.stream()), picture)) if job.end_image else None
        blend = min(count // 3, s.fps) if end is not None else 0  # the last frames dissolve into the end image
        move = motion(job.camera, count / s.fps)
        for i in range(count):
            frame = np.empty((1, height, width, 3), np.uint8)
            frame[0, height - band:] = overlay.band
            t = i / max(count - 1, 1)
            frame[0, : height - band] = _view(canvas, picture, move, t)
            overlay.stamp(frame[0], timecode(job.start_frame + i, s.fps))
            if inputs.on_step is not None:
                inputs.on_step(i + 1, count)
            if end is not None and i >= count - blend:
                _blend_towards(frame[:, : height - band], end, 1, (i - (count - blend) + 1) / blend)
            if i == count - 1:
                delay = float(os.environ.get(DELAY_VARIABLE) or 0)
                if delay:
                    time.sleep(delay)
            yield frame

    def render(self, job: Job, inputs: RenderInputs) -> np.ndarray:
        import numpy as np

        return np.concatenate(list(self.frames(job, inputs)))

    def close(self) -> None:
        pass

    def _canvas(self, job: Job, inputs: RenderInputs, picture: tuple[int, int]) -> Image.Image:
        """The picture with a margin on every side to move into."""
        import numpy as np
        from PIL import Image
        width, height = picture
        if job.kind == "extend" and inputs.previous_frames is not None and len(inputs.previous_frames):
            # the take goes on from its last frame (as decoded from the clip), without the old caption band
            start = Image.fromarray(np.ascontiguousarray(inputs.previous_frames[-1][:height]))
            return _padded(start.resize(picture, Image.BILINEAR) if start.size != picture else start)
        if job.image is not None:
            return _padded(_fit(Image.open(job.image.stream()), picture))
        if inputs.start_image is not None:  # the shot's keyframe, generated earlier
            return _padded(_fit(Image.open(inputs.start_image), picture))
        if job.references:
            return _padded(_references(job, picture))
        return _title_card(job, picture)


def keyed(options: dict[str, Any]) -> Keyed:
    """The animatic's keys (it loads nothing, so they are its own identity)."""
    from storyforge.backends.base import Keyed

    return Keyed(Animatic.name, Animatic(**options).identity)


def _bridge(job: Job, inputs: RenderInputs, picture: tuple[int, int], overlay: _Overlay) -> Iterator[np.ndarray]:
    """A bridge as a move: the view pans on out of the last picture of the shot before and, dissolving, arrives
    from the other side at the first picture of the shot after, over the bridge's planned frames."""
    import numpy as np
    from PIL import Image

    assert inputs.previous_frames is not None and inputs.next_frames is not None
    s = job.settings
    width, height = picture
    full = s.height
    # the pictures without the caption band the animatic drew under them (decoded frames keep it)
    leaving = _padded(_picture(inputs.previous_frames[-1][:height], picture, Image))
    arriving = _padded(_picture(inputs.next_frames[0][:height], picture, Image))
    count = job.frames
    for i in range(count):
        t = (i + 1) / (count + 1)  # never all of one picture: the shots themselves show those
        ease = t * t * (3 - 2 * t)
        out_of = _view(leaving, picture, Motion(1.0, 1.0, 0.0), t).astype(np.float32)
        into = _view(arriving, picture, Motion(1.0, -1.0, 0.0), 1 - t).astype(np.float32)
        frame = np.empty((1, full, width, 3), np.uint8)
        frame[0, :height] = (out_of * (1 - ease) + into * ease).round().astype(np.uint8)
        frame[0, height:] = overlay.band
        overlay.stamp(frame[0], timecode(job.start_frame + i, s.fps))
        if inputs.on_step is not None:
            inputs.on_step(i + 1, count)
        yield frame


def _picture(frame: np.ndarray, picture: tuple[int, int], image_module: Any) -> Image.Image:
    """A frame's picture as an image of the picture's size."""
    import numpy as np

    image = image_module.fromarray(np.ascontiguousarray(frame))
    return image.resize(picture, image_module.BILINEAR) if image.size != picture else image


def _band_height(height: int) -> int:
    return max(12, round(height * BAND / 2) * 2)


def _margins(picture: tuple[int, int]) -> tuple[int, int]:
    return round(picture[0] * MARGIN), round(picture[1] * MARGIN)


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` turned upright (its EXIF orientation, as a camera writes it and the video backend honours it),
    centre-cropped to the aspect of `size` and scaled to it."""
    from PIL import Image, ImageOps
    image = ImageOps.exif_transpose(image).convert("RGB")
    width, height = image.size
    aspect = size[0] / size[1]
    if width / height > aspect:
        crop = round(height * aspect)
        box = ((width - crop) // 2, 0, (width - crop) // 2 + crop, height)
    else:
        crop = round(width / aspect)
        box = (0, (height - crop) // 2, width, (height - crop) // 2 + crop)
    return image.resize(size, Image.LANCZOS, box=box)


def _padded(picture: Image.Image) -> Image.Image:
    """A photo-like picture extended into the margin by mirroring its edges."""
    import numpy as np
    from PIL import Image
    mx, my = _margins(picture.size)
    return Image.fromarray(np.pad(np.asarray(picture), ((my, my), (mx, mx), (0, 0)), mode="reflect"))


def _title_card(job: Job, picture: tuple[int, int]) -> Image.Image:
    """A gradient in colours taken from the job key, a faint grid that shows the motion, and the shot id."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter, ImageFont
    mx, my = _margins(picture)
    width, height = picture[0] + 2 * mx, picture[1] + 2 * my
    key = job.take_keys[0] if job.take_keys else job.key  # every take draws take 1's card: only captions differ
    seed = bytes.fromhex(key[:12]) if len(key) >= 12 else job.id.encode().ljust(6, b"\0")
    first = np.array(list(seed[:3]), np.float32) * 0.45 + 15  # dark enough for white text
    second = np.array(list(seed[3:6]), np.float32) * 0.55 + 40
    ramp = (np.linspace(0, 0.65, width, dtype=np.float32)[None, :] +
            np.linspace(0, 0.35, height, dtype=np.float32)[:, None])[..., None]
    card = Image.fromarray((first * (1 - ramp) + second * ramp).astype(np.uint8))
    draw = ImageDraw.Draw(card)
    step, line = max(8, picture[1] // 6), max(1, picture[1] // 180)
    grid = tuple(int(c) for c in (second * 0.5 + 255 * 0.25))
    for x in range(width // 2 % step, width, step):
        draw.line([(x, 0), (x, height)], fill=grid, width=line)
    for y in range(height // 2 % step, height, step):
        draw.line([(0, y), (width, y)], fill=grid, width=line)
    # soft lines: frames are sampled with nearest-neighbour resizes, which would make hard 1-px lines flicker
    card = card.filter(ImageFilter.GaussianBlur(max(1.0, line / 2)))
    draw = ImageDraw.Draw(card)
    size = min(picture[1] // 6, int(picture[0] * 0.8 / max(len(job.id), 1) / 0.55))
    font = ImageFont.load_default(size=max(size, 8))
    centre = (width / 2, height / 2)
    draw.text((centre[0] + size / 16, centre[1] + size / 16), job.id, font=font, fill=(0, 0, 0), anchor="mm")
    draw.text(centre, job.id, font=font, fill=_INK, anchor="mm")
    return card


def _references(job: Job, picture: tuple[int, int]) -> Image.Image:
    """Who and where, for a shot without a start picture: the location's reference filling the frame (else the
    title card), and each character's reference as a framed portrait along the bottom, in cast order."""
    from PIL import Image, ImageDraw

    places = [r for r in job.references if r.kind == "location"]
    people = [r for r in job.references if r.kind == "character"]
    if places:
        base = _fit(Image.open(places[0].image.stream()), picture)
    else:
        card = _title_card(job, picture)
        mx, my = _margins(picture)
        base = card.crop((mx, my, mx + picture[0], my + picture[1]))
    if not people:
        return base
    width, height = picture
    gap = max(2, height // 40)
    side = min(height // 2, (width - gap * (len(people) + 1)) // len(people))
    if side < 4:
        return base
    draw = ImageDraw.Draw(base)
    for n, person in enumerate(people):
        x, y = gap + n * (side + gap), height - side - gap
        portrait = _fit(Image.open(person.image.stream()), (side, side))
        draw.rectangle((x - 1, y - 1, x + side, y + side), outline=_INK)
        base.paste(portrait, (x, y))
    return base


def _view(canvas: Image.Image, picture: tuple[int, int], move: Motion, t: float) -> np.ndarray:
    """The frame at time t (0..1) of the shot: the moving view of the canvas, as an (h, w, 3) array."""
    import numpy as np
    from PIL import Image
    width, height = picture
    mx, my = _margins(picture)
    zoom = 1.0 + (move.zoom - 1.0) * t
    view_w, view_h = width / zoom, height / zoom
    # centre moves into the margin; clamped so the view never leaves the canvas
    cx = mx + width / 2 + move.dx * t * mx
    cy = my + height / 2 + move.dy * t * my
    cx = min(max(cx, view_w / 2), width + 2 * mx - view_w / 2)
    cy = min(max(cy, view_h / 2), height + 2 * my - view_h / 2)
    box = (cx - view_w / 2, cy - view_h / 2, cx + view_w / 2, cy + view_h / 2)
    # nearest: 15x cheaper than bilinear here (0.4 ms against 6 ms a frame at 960x544), and the motion is
    # slow enough that it reads as smooth; hundreds of frames a second is what keeps the animatic a preview
    return np.asarray(canvas.resize(picture, Image.NEAREST, box=box))


def _blend_towards(pictures: np.ndarray, end: np.ndarray, count: int, last_alpha: float = 1.0) -> None:
    """Dissolve the last `count` pictures into the end image, in place, reaching `last_alpha` (all of it, by
    default) on the last one."""
    import numpy as np
    total = len(pictures)
    for k in range(count):
        alpha = last_alpha * (k + 1) / count
        index = total - count + k
        pictures[index] = (pictures[index] * (1 - alpha) + end * alpha).round().astype(np.uint8)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float, lines: int) -> list[str]:
    """Words filled into at most `lines` lines of at most `width` pixels; an ellipsis marks what was cut."""
    result: list[str] = []
    words = text.split()
    while words and len(result) < lines:
        line = words.pop(0)
        while words and font.getlength(f"{line} {words[0]}") <= width:
            line = f"{line} {words.pop(0)}"
        result.append(line)
    if words and result:
        last = result[-1]
        while last and font.getlength(last + " …") > width:
            last = last.rsplit(" ", 1)[0] if " " in last else last[:-1]
        result[-1] = last + " …"
    return result


class _Overlay:
    """The caption band (shot id, wrapped prompt) drawn once, and timecode digits stamped per frame."""

    def __init__(self, job: Job, width: int, band: int):
        import numpy as np
        from PIL import Image, ImageDraw, ImageFont
        pad = max(2, band // 12)
        head_size, caption_size = max(8, round(band * 0.24)), max(7, round(band * 0.17))
        head, caption = ImageFont.load_default(size=head_size), ImageFont.load_default(size=caption_size)
        image = Image.new("RGB", (width, band), _BAND_BG)
        draw = ImageDraw.Draw(image)
        label = f"bridge {job.after} \u2192 {job.before}" if job.before is not None else job.id
        draw.text((pad, pad), label + (f"  take {job.take}" if job.take > 1 else ""), font=head, fill=_ID_INK)
        top = pad + round(head_size * 1.25)
        line_height = round(caption_size * 1.2)
        lines = max(1, (band - top - pad) // line_height)
        for n, text in enumerate(_wrap(job.prompt, caption, width - 2 * pad, lines)):
            draw.text((pad, top + n * line_height), text, font=caption, fill=_CAPTION_INK)
        self.band = np.asarray(image)
        # timecode glyphs in equal cells, so a frame's timecode is a few array copies instead of text layout
        cell = max(round(head.getlength(c)) for c in "0123456789:")
        glyph_h = min(round(head_size * 1.25), band - pad)
        glyphs = []
        for char in "0123456789:":
            tile = Image.new("RGB", (cell, glyph_h), _BAND_BG)
            ImageDraw.Draw(tile).text((cell / 2, 0), char, font=head, fill=_INK, anchor="ma")
            glyphs.append(np.asarray(tile))
        self.glyphs = np.stack(glyphs)
        self.cell, self.glyph_h, self.pad, self.width = cell, glyph_h, pad, width

    def stamp(self, frame: np.ndarray, code: str) -> None:
        """Burn `code` (digits and colons) into the band's top right corner of `frame`."""
        index = [10 if c == ":" else int(c) for c in code]
        tiles = self.glyphs[index]  # (n, h, cell, 3)
        strip = tiles.transpose(1, 0, 2, 3).reshape(self.glyph_h, len(index) * self.cell, 3)
        strip = strip[:, : self.width - self.pad]
        band_top = frame.shape[0] - self.band.shape[0]
        x = self.width - self.pad - strip.shape[1]
        frame[band_top + self.pad: band_top + self.pad + self.glyph_h, x: x + strip.shape[1]] = strip
