"""Colour matching at seams: each new window and each continued shot corrected toward the frames it continues.

At every seam the mean and standard deviation of L, a and b over the `SIDE` frames it continues (already
corrected) and over its own first `SIDE` frames give one affine map per Lab channel,
``out = (x - mean_new) * gain + mean_old`` with the gain clamped to [1/MAX_GAIN, MAX_GAIN]; the map holds
from the seam to the next one, where the next map takes over. Why held, not faded out over some frames:
a Diffusion-Forcing window's colour error does not fade either (the next window continues from it, which
is why drift accumulates along a chain), so a fade-out would hand the step back as a slow drift; and one
map per window, constant over it, cannot flicker or pop inside the window. At the seam itself the map is
what makes the step disappear. Only the first frames of a window set the map, so a change of light the
prompt asks for later in the window still happens.

Frames can arrive window by window (`ColorMatch.feed`): a seam's map is made as soon as `SIDE` of its
frames are in, and everything before the next seam goes out at once.

Each map is applied as a 3D colour look-up table: the map worked out exactly at LUT_SIZE³ points of the RGB cube
(a few milliseconds, once per seam), and every pixel interpolated from its cube in one pass of Pillow's C loop
(ImageFilter.Color3DLUT), threads over frames. Converting every pixel to Lab and back cost several times the H.264
encode of the same frames; the table gives the same picture to about a level (ΔE of the seams within 0.01).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from storyforge.seams import SIDE, sample_grid

if TYPE_CHECKING:
    import numpy as np

MAX_GAIN = 2.0  # a window's contrast or saturation is never stretched or squeezed more than this
LUT_SIZE = 33  # points along each side of the look-up table's cube: every 8 levels (the .cube files' usual size)
MAX_THREADS = 8


def _stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of L, a and b over a sub-sampled grid of `frames`."""
    from storyforge.lab import srgb_to_lab

    lab = srgb_to_lab(sample_grid(frames)).reshape(-1, 3).astype("float64")
    return lab.mean(axis=0), lab.std(axis=0)


def transfer(reference: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gain, offset) per Lab channel that move the colour statistics of `new` onto those of `reference`."""
    import numpy as np

    mean_ref, std_ref = _stats(reference)
    mean_new, std_new = _stats(new)
    gain = np.where(std_new > 1e-3, std_ref / np.maximum(std_new, 1e-3), 1.0)
    gain = np.clip(gain, 1 / MAX_GAIN, MAX_GAIN)
    return gain, mean_ref - gain * mean_new


def apply(frames: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """`frames` (uint8) with Lab channel c mapped to ``c * gain + offset``; an identity map copies nothing."""
    return _Map(gain, offset).apply(frames)


class _Map:
    """One seam's map, ``c * gain + offset`` per Lab channel, as a 3D look-up table made on first use."""

    def __init__(self, gain: np.ndarray, offset: np.ndarray):
        import numpy as np

        self.gain, self.offset = gain, offset
        self.identity = bool(np.all(np.abs(gain - 1) < 1e-4) and np.all(np.abs(offset) < 1e-3))
        self._table = None

    def table(self):  # noqa: ANN201 - a PIL.ImageFilter.Color3DLUT, imported here only
        """The map at every point of a LUT_SIZE³ grid over the RGB cube, red varying fastest (Pillow's order)."""
        if self._table is None:
            import numpy as np
            from PIL import ImageFilter

            from storyforge.lab import lab_to_unit_srgb, unit_srgb_to_lab

            axis = np.linspace(0.0, 1.0, LUT_SIZE)
            blue, green, red = np.meshgrid(axis, axis, axis, indexing="ij")
            grid = np.stack([red, green, blue], axis=-1).reshape(-1, 3)
            mapped = lab_to_unit_srgb(unit_srgb_to_lab(grid) * self.gain + self.offset)
            self._table = ImageFilter.Color3DLUT(LUT_SIZE, mapped.reshape(-1).astype(np.float32))
        return self._table

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """`frames` (uint8 (F, H, W, 3)) through the map; an identity map copies nothing."""
        import numpy as np
        from PIL import Image

        if self.identity or not len(frames):
            return frames
        table = self.table()
        out = np.empty_like(frames)

        def convert(index: int) -> None:
            out[index] = np.asarray(Image.fromarray(frames[index]).filter(table))

        workers = min(len(frames), os.cpu_count() or 1, MAX_THREADS)
        if workers <= 1:
            for index in range(len(frames)):
                convert(index)
        else:  # Pillow lets go of the GIL while it filters: frames convert in parallel on a render machine's cores
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(convert, range(len(frames))))
        return out


class ColorMatch:
    """Corrects one job's frames as they arrive: `feed` chunks in order, then `finish`; each returns what is done.

    `starts`: job-relative frames where windows begin (0 and values past the end are ignored);
    `reference`: the frames the job continues (for a continued shot), which makes frame 0 a seam too.
    """

    def __init__(self, starts: Sequence[int], reference: np.ndarray | None = None, *, side: int = SIDE):
        import numpy as np

        self.side = side
        self.seams = sorted({s for s in starts if s > 0} | ({0} if reference is not None and len(reference) else set()))
        self.tail = reference[-side:] if reference is not None else None  # the last corrected frames out
        self.pending: list[np.ndarray] = []
        self.position = 0  # job frame of the first pending frame
        self.gain, self.offset = np.ones(3), np.zeros(3)
        self.map = _Map(self.gain, self.offset)
        self.maps: list[tuple[int, np.ndarray, np.ndarray]] = []  # (seam frame, gain, offset) made so far

    def feed(self, frames: np.ndarray) -> np.ndarray:
        """The corrected frames that can go out now (possibly none: a seam waits for SIDE of its frames)."""
        if len(frames):
            self.pending.append(frames)
        return self._emit(final=False)

    def finish(self) -> np.ndarray:
        """Everything still held, corrected (a seam near the end is matched on the frames there are)."""
        return self._emit(final=True)

    def _emit(self, *, final: bool) -> np.ndarray:
        import numpy as np

        held = np.concatenate(self.pending) if len(self.pending) > 1 else (self.pending[0] if self.pending else None)
        self.pending = []
        if held is None:
            return np.zeros((0,), dtype=np.uint8)
        out: list[np.ndarray] = []
        index = 0  # into held; held[0] is job frame self.position
        while index < len(held):
            upcoming = [s for s in self.seams if s >= self.position + index]
            seam = upcoming[0] if upcoming else None
            if seam is not None and seam == self.position + index:
                window = held[index:index + self.side]
                if len(window) < self.side and not final:
                    break  # wait for more of the window before deciding its map
                if self.tail is not None and len(self.tail):
                    self.gain, self.offset = transfer(self.tail, window)
                    self.map = _Map(self.gain, self.offset)
                    self.maps.append((seam, self.gain, self.offset))
                self.seams.remove(seam)
                continue
            stop = len(held) if seam is None else min(len(held), seam - self.position)
            corrected = self.map.apply(held[index:stop])
            out.append(corrected)
            self.tail = np.concatenate([self.tail, corrected])[-self.side:] if self.tail is not None else \
                corrected[-self.side:]
            index = stop
        self.position += index
        if index < len(held):
            self.pending = [held[index:]]
        return np.concatenate(out) if out else held[:0]


class Arrival:
    """A bridge's last window eased toward the shot it leads into, whose first frames were rendered before it.

    The frames from `start` (job frame where the bridge's last window begins) to its end are held; at `finish`
    one map (as at any seam: its last SIDE frames onto the `target` shot's first SIDE) is computed and faded in
    over them along a smoothstep: none of it over the first SIDE frames and all of it over the last SIDE when the
    window has room for both (three SIDEs), else from almost none to almost all. So the bridge arrives in the
    next shot's colours, its start keeps the colours of the shot it continues (matched as any continuation), and
    no frame steps. Frames before `start` pass straight through; what is held is one window at most.
    """

    def __init__(self, start: int, frames: int, target: np.ndarray, *, side: int = SIDE):
        self.start, self.frames, self.side = start, frames, side
        self.target = target[:side]
        self.position = 0  # job frame of the next frame fed
        self.held: list[np.ndarray] = []

    def feed(self, frames: np.ndarray) -> np.ndarray:
        """What can go out now: the frames before the last window."""
        keep = max(0, min(len(frames), self.start - self.position))
        self.position += len(frames)
        if keep < len(frames):
            self.held.append(frames[keep:])
        return frames[:keep]

    def finish(self) -> np.ndarray:
        import numpy as np

        if not self.held:
            return np.zeros((0,), dtype=np.uint8)
        held = np.concatenate(self.held)
        self.held = []
        if not len(self.target):
            return held
        gain, offset = transfer(self.target, held[-self.side:])
        count = len(held)
        margin = self.side if count >= 3 * self.side else 0
        out = np.empty_like(held)
        for index in range(count):
            t = min(1.0, max(0.0, (index + 1 - margin) / (count - 2 * margin + 1)))
            weight = t * t * (3 - 2 * t)
            out[index:index + 1] = apply(held[index:index + 1], 1 + weight * (gain - 1), weight * offset)
        return out


def match_job(frames: np.ndarray, starts: Sequence[int], reference: np.ndarray | None = None,
              *, side: int = SIDE) -> np.ndarray:
    """A whole job's frames corrected at every seam (see ColorMatch); the same result as feeding it in chunks."""
    import numpy as np

    matcher = ColorMatch(starts, reference, side=side)
    parts = [matcher.feed(frames), matcher.finish()]
    return np.concatenate([part for part in parts if len(part)]) if any(len(p) for p in parts) else frames[:0]
