"""A backend's frames on their way into the cache: checked (size, count, black or frozen), colour-matched at their
seams and measured; only a few frames are ever held."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from storyforge.plan.model import Job


class Checked:
    """A backend's chunks of frames, checked as they pass: uint8 of the job's size, as many as it plans, and
    (when `look`) whether the clip is all black or frozen; `seconds` counts the time spent in the backend."""

    def __init__(self, job: Job, backend: str, chunks: Iterable[np.ndarray], *, look: bool):
        from storyforge.stitch import ClipCheck

        self.job, self.backend, self.chunks = job, backend, chunks
        self.look = ClipCheck() if look else None
        self.seconds = 0.0
        self.warning: str | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        import numpy as np

        job, s = self.job, self.job.settings
        expected = (s.height, s.width, 3)
        count = 0
        chunks = iter(self.chunks)
        while True:
            started = time.perf_counter()
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            finally:
                self.seconds += time.perf_counter() - started
            if not isinstance(chunk, np.ndarray) or chunk.dtype != np.uint8 or chunk.ndim != 4 \
                    or chunk.shape[1:] != expected:
                got = f"{chunk.dtype} {chunk.shape}" if isinstance(chunk, np.ndarray) else type(chunk).__name__
                raise RuntimeError(f"the {self.backend} backend returned {got} for {job.id}; "
                                   f"expected uint8 {(job.frames, *expected)}")
            count += len(chunk)
            if count > job.frames:
                break
            if self.look is not None:
                self.look.add(chunk)
            yield chunk
        if count != job.frames:
            raise RuntimeError(f"the {self.backend} backend returned {count} frames for {job.id}; "
                               f"expected uint8 {(job.frames, *expected)}")
        if self.look is not None:
            self.warning = self.look.warning()


class Seams:
    """A job's checked chunks on their way to the encoder: colour-matched at its seams (when `match`) and
    measured for the seam report; after the last chunk, `tail` holds its last overlap_frames frames and
    `measured` the seam numbers (storyforge.seams.SeamMeter). Only a few frames are ever held."""

    def __init__(self, job: Job, chunks: Iterable[np.ndarray], previous: np.ndarray | None, *, match: bool,
                 following: np.ndarray | None = None, score: bool = True):
        self.job, self.chunks, self.previous, self.match = job, chunks, previous, match
        self.score = score  # False: its seams are listed without numbers (the animatic's cards)
        self.following = following  # a bridge: the first frames of the shot it leads into
        self.tail: np.ndarray | None = None
        self.measured: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        import numpy as np

        from storyforge.colormatch import Arrival, ColorMatch
        from storyforge.seams import SeamMeter, window_starts

        job, keep = self.job, self.job.settings.overlap_frames
        matcher = ColorMatch(window_starts(job), self.previous if job.continues else None) \
            if self.match else None
        # a bridge also arrives in the colours of the shot after it (rendered before it): its last window eases there
        arrival = Arrival(window_starts(job)[-1], job.frames, self.following) \
            if self.match and job.is_bridge and self.following is not None else None
        meter = SeamMeter(job, self.previous, self.following if job.is_bridge else None)

        def out(frames: np.ndarray) -> Iterator[np.ndarray]:
            if arrival is not None:
                frames = arrival.feed(frames)
            if len(frames):
                meter.add(frames)
                self.tail = (frames if self.tail is None else np.concatenate([self.tail, frames]))[-keep:].copy()
                yield frames

        for chunk in self.chunks:
            yield from out(matcher.feed(chunk) if matcher is not None else chunk)
        if matcher is not None:
            yield from out(matcher.finish())
        if arrival is not None:
            last = arrival.finish()
            arrival = None
            yield from out(last)
        self.measured = meter.result() if self.score else None
