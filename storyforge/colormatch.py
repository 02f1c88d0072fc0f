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

The kernel: a residual table over the RGB cube in cells 2 levels wide (128³ cells; see _Map). Per pixel it
is one integer key from the pixel's bytes, one look-up of what the map adds to each channel in that cell, and
one 8-bit add, all numpy passes that let go of the GIL (threads over frames); the table is worked out exactly
(Lab, mapped, back) at the middle of each cell a pixel lands in, the first time one does. Why this kernel:
every pixel to Lab and back costs several times the H.264 encode of the same frames, and Pillow's 3D LUT
filter (trilinear from a 33³ table) alone costs more than the encode; this one costs about half of it or less
(bench/colormatch_bench.py: 0.6x in CPU seconds, against 1.6x for the 3D LUT). Why it stays exact to about a
level: within a cell the map moves by its slope over half a level, so the add's only error is the slope's
distance from 1 over half a level, plus the rounding; over varied colours more of them land within a level of
the exact map than through the interpolated 33³ table, and the seams' ΔE is that table's to 0.02. Where the
slope is far from 1 (a map that halves the contrast, blacks lifted) a cell's two levels still step by one, so
about every other pixel there is a level off: pixel rounding, far below a visible difference.
A bridge's arrival changes its map every frame, where working out cells per frame would cost more than the
frame: those frames go through Pillow's 3D LUT, as before (_Lut).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from storyforge.seams import SIDE, sample_grid

if TYPE_CHECKING:
    import numpy as np

MAX_GAIN = 2.0  # a window's contrast or saturation is never stretched or squeezed more than this
_KEY_MASK = 0x7F7F7F  # a pixel's cell: the upper 7 bits of each level, red in the lowest byte (see _keys)
_MADE = 1  # a residual table's fourth byte for a cell worked out (see _Map)
LUT_SIZE = 33  # points along each side of a one-frame map's look-up table: every 8 levels (the .cube files' size)
MAX_THREADS = 8  # frames converted at once, at most


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


def _is_identity(gain: np.ndarray, offset: np.ndarray) -> bool:
    """Whether the map moves no colour by a visible fraction of a level."""
    import numpy as np

    return bool(np.all(np.abs(gain - 1) < 1e-4) and np.all(np.abs(offset) < 1e-3))


@contextmanager
def _threads(count: int) -> Iterator[Callable[[Callable[[Any], Any], Iterable[Any]], list[Any]]]:
    """A `map` over threads for `count` frames: numpy and Pillow let go of the GIL in their loops, so frames
    convert in parallel on a render machine's cores (one frame or one core: in the caller's thread)."""
    workers = min(count, os.cpu_count() or 1, MAX_THREADS)
    if workers <= 1:
        yield lambda work, items: [work(item) for item in items]
        return
    with ThreadPoolExecutor(workers) as pool:
        yield lambda work, items: list(pool.map(work, items))


@lru_cache(maxsize=1)
def _cell_centres() -> np.ndarray:
    """Linear light (float32) at the middle of each cell along one side of the cube: level 2c + 0.5, c = 0..127."""
    import numpy as np

    from storyforge.lab import unit_srgb_to_linear

    return unit_srgb_to_linear((2 * np.arange(128) + 0.5) / 255).astype(np.float32)


def _keys(frame: np.ndarray) -> np.ndarray:
    """Each pixel's cell (`frame`: uint8 (H, W, 3), C-contiguous) as ``R>>1 | G>>1 << 8 | B>>1 << 16`` (intp).

    Each pixel's three bytes are read as one little-endian word, the words 3 bytes apart (a word's fourth byte is
    the next pixel's red, masked off with the lowest bit of each level): two passes, no per-channel copies.
    """
    import numpy as np

    flat = frame.reshape(-1)
    keys = np.empty(len(flat) // 3, np.intp)
    if len(keys) > 1:  # the last pixel's word would reach past the frame: it is done on its own below
        words = np.ndarray((len(keys) - 1,), dtype="<u4", buffer=flat, strides=(3,))
        np.right_shift(words, 1, out=keys[:-1])
    red, green, blue = (int(level) for level in flat[-3:])
    keys[-1] = (red >> 1) | (green >> 1) << 8 | (blue >> 1) << 16
    keys &= _KEY_MASK
    return keys


class _Map:
    """One window's map, ``c * gain + offset`` per Lab channel, as a residual table over 2-level cells of the cube.

    A pixel's cell is its three levels without their lowest bit (128³ cells); per cell and channel the table
    holds what the exact map adds to the cell's two levels (the map worked out at the cell's middle, rounded,
    and kept so that both levels land in 0..255), so each pixel is one look-up and one 8-bit add (which wraps
    modulo 256: a negative step is stored as its two's complement). A cell is worked out the first time a
    pixel lands in it (a window's frames land in a few hundred thousand of the two million), each cell on its
    own, so its value never depends on which frames asked first: a job fed in chunks matches a job fed whole.
    Each cell is one 32-bit word, the three steps and a fourth byte that says the cell is worked out: numpy
    gathers 4-byte items several times faster than 3-byte ones, and the look-up itself says which pixels
    landed in new cells.
    """

    def __init__(self, gain: np.ndarray, offset: np.ndarray):
        self.gain, self.offset = gain, offset
        self.identity = _is_identity(gain, offset)
        self._cells: np.ndarray | None = None  # (_KEY_MASK + 1,) little-endian words, indexed by _keys

    def _table(self) -> np.ndarray:
        """Per cell, R, G and B's steps and _MADE in its bytes (lowest first), 0 until worked out."""
        import numpy as np

        if self._cells is None:
            self._cells = np.zeros(_KEY_MASK + 1, "<u4")  # the pages no pixel lands in are never touched
        return self._cells

    def _fill(self, keys: np.ndarray) -> None:
        """Work out the cells of `keys` (cells not in the table yet, possibly repeated)."""
        import numpy as np

        from storyforge.lab import lab_to_linear, linear_to_lab, linear_to_unit_srgb

        if len(keys) < 1 << 16:  # the few new cells of a frame much like the last: sorting them is cheapest
            cells = np.unique(keys)
        else:  # a whole frame's: marking them costs a pass over the table, sorting them ten times that
            wanted = np.zeros(_KEY_MASK + 1, bool)
            wanted[keys] = True
            cells = np.flatnonzero(wanted)
        index = cells.astype("<i8", copy=False).view(np.uint8).reshape(-1, 8)[:, :3]  # a key's bytes: R, G, B cells
        lab = linear_to_lab(_cell_centres().take(index))
        lab *= self.gain.astype(np.float32)
        lab += self.offset.astype(np.float32)
        levels = linear_to_unit_srgb(lab_to_linear(lab)) * 255
        low = 2 * index.astype(np.float32)  # the cell's lower level; its upper one is low + 1
        step = np.rint(levels - low - 0.5)
        np.clip(step, -low, 254 - low, out=step)  # both levels land in 0..255, so the 8-bit add never wraps around
        word = np.full((len(cells), 4), _MADE, np.uint8)
        word[:, :3] = step.astype(np.int16)  # two's complement, modulo 256
        self._table()[cells] = word.view("<u4").reshape(-1)

    def apply(self, frames: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """`frames` (uint8 (F, H, W, 3)) through the map, into `out` when given (else a new array); an identity map
        returns `frames` themselves (or copies them into `out`)."""
        import numpy as np

        if self.identity or not frames.size:
            if out is None:
                return frames
            out[...] = frames
            return out
        frames = np.ascontiguousarray(frames)
        out = np.empty_like(frames) if out is None else out
        table = self._table()

        def look(index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
            keys = _keys(frames[index])
            words = table.take(keys)
            if words.min() >= _MADE << 24:
                return keys, words, None
            return keys, words, np.flatnonzero(words < _MADE << 24)  # the pixels that landed in new cells

        def add(index: int, keys: np.ndarray, words: np.ndarray, new: np.ndarray | None) -> None:
            if new is not None and 8 * len(new) > len(keys):  # most of a frame: looking it all up again is cheaper
                words = table.take(keys)
            elif new is not None:
                words[new] = table.take(keys[new])
            steps, pixels, result = words.view(np.uint8).reshape(-1, 4), frames[index].reshape(-1, 3), \
                out[index].reshape(-1, 3)
            for channel in range(3):  # a channel at a time: numpy's add is slow over rows of 3 of 4 bytes
                np.add(steps[:, channel], pixels[:, channel], out=result[:, channel])

        with _threads(len(frames)) as run:
            first, batch = 0, 1  # the first frame on its own: it makes most of the cells the next frames need
            while first < len(frames):
                indexes = range(first, min(first + batch, len(frames)))
                first, batch = indexes.stop, 2 * min(os.cpu_count() or 1, MAX_THREADS)
                looked = run(look, indexes)
                new = [keys[pixels] for keys, _, pixels in looked if pixels is not None]
                if new:  # here, between the two passes: no lock, and no thread reads a cell while it is made
                    self._fill(np.concatenate(new))
                run(lambda job: add(*job), [(index, *parts) for index, parts in zip(indexes, looked, strict=True)])
        return out


class _Lut:
    """A map used for one frame only (a bridge's arrival changes its map every frame), as Pillow's 3D look-up
    table: the exact map at LUT_SIZE³ points (about 36,000, a few milliseconds) and every pixel interpolated
    from its cube in Pillow's C loop. Per frame that costs less than the cells of _Map, which are worth working
    out only for a map that many frames share."""

    def __init__(self, gain: np.ndarray, offset: np.ndarray):
        self.gain, self.offset = gain, offset
        self.identity = _is_identity(gain, offset)

    def apply(self, frames: np.ndarray, out: np.ndarray) -> np.ndarray:
        """`frames` (uint8 (F, H, W, 3)) through the map into `out`."""
        import numpy as np
        from PIL import Image, ImageFilter

        from storyforge.lab import lab_to_linear, linear_to_lab, linear_to_unit_srgb, unit_srgb_to_linear

        if self.identity or not frames.size:
            out[...] = frames
            return out
        axis = np.linspace(0.0, 1.0, LUT_SIZE)
        blue, green, red = np.meshgrid(axis, axis, axis, indexing="ij")  # red varies fastest: Pillow's order
        grid = np.stack([red, green, blue], axis=-1).reshape(-1, 3)
        mapped = linear_to_unit_srgb(lab_to_linear(linear_to_lab(unit_srgb_to_linear(grid)) * self.gain + self.offset))
        table = ImageFilter.Color3DLUT(LUT_SIZE, mapped.reshape(-1).astype(np.float32))

        def convert(index: int) -> None:
            out[index] = np.asarray(Image.fromarray(frames[index]).filter(table))

        with _threads(len(frames)) as run:
            run(convert, range(len(frames)))
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
        end, seams = len(held), []  # what goes out now (held[:end]) and the seams in it (indexes into held)
        for seam in self.seams:
            at = seam - self.position
            if at >= len(held):
                break
            if len(held) - at < self.side and not final:
                end = at  # wait for more of the window before deciding its map
                break
            seams.append(at)
        # one piece goes out as its map returns it (an identity map's: the frames fed, not a copy); more, into one array
        pieces = sum(1 for start, stop in itertools.pairwise([0, *seams, end]) if stop > start)
        out = np.empty((end, *held.shape[1:]), held.dtype) if pieces > 1 else None
        corrected, index = held[:0], 0
        for at in [*seams, None]:
            stop = end if at is None else at
            if stop > index:
                corrected = self.map.apply(held[index:stop], None if out is None else out[index:stop])
                self._keep_tail(corrected)
                index = stop
            if at is not None:
                if self.tail is not None and len(self.tail):
                    self.gain, self.offset = transfer(self.tail, held[at:at + self.side])
                    self.map = _Map(self.gain, self.offset)
                    self.maps.append((self.position + at, self.gain, self.offset))
                self.seams.remove(self.position + at)
        self.position += end
        if end < len(held):
            self.pending = [held[end:]]
        return out if out is not None else corrected

    def _keep_tail(self, corrected: np.ndarray) -> None:
        """Remember the last SIDE corrected frames out, as a copy (not a view that keeps a whole chunk alive)."""
        import numpy as np

        if self.tail is None or len(corrected) >= self.side:
            self.tail = corrected[-self.side:].copy()
        else:
            self.tail = np.concatenate([self.tail[len(corrected) - self.side:], corrected])


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
        held = np.concatenate(self.held) if len(self.held) > 1 else self.held[0]
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
            _Lut(1 + weight * (gain - 1), weight * offset).apply(held[index:index + 1], out[index:index + 1])
        return out


def match_job(frames: np.ndarray, starts: Sequence[int], reference: np.ndarray | None = None,
              *, side: int = SIDE) -> np.ndarray:
    """A whole job's frames corrected at every seam (see ColorMatch); the same result as feeding it in chunks."""
    import numpy as np

    matcher = ColorMatch(starts, reference, side=side)
    parts = [part for part in (matcher.feed(frames), matcher.finish()) if len(part)]
    return frames[:0] if not parts else parts[0] if len(parts) == 1 else np.concatenate(parts)
