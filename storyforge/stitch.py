"""Muxing the film: renders the cut's transition windows, stream-copies the rest of the clips and the soundtrack into one mp4."""  # noqa: E501

# What goes where is storyforge.cut's plan; this module reads and writes the files.

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from storyforge import cut
from storyforge.atomic import replacing

# clipfile and errors import only the standard library at module level; numpy and av are imported
# inside the functions that need them, so `import storyforge.stitch` stays cheap for validate/plan.
from storyforge.clipfile import (
    ENCODER,
    ClipError,
    ClipWriter,
    check_frames,
    count_frames,
    ffmpeg_exe,
    iter_frames,
    open_video,
)
from storyforge.cut import (
    STITCH_VERSION,
    TRANSITIONS,
    CutClip,
    Probe,
    StitchError,
    cut_key,
    sync_frames,
    total_frames,
)

__all__ = ["STITCH_VERSION", "TRANSITIONS", "ClipCheck", "CutClip", "StitchError", "StitchReport", "check_clip",
           "cut_key", "stitch", "sync_frames", "total_frames"]

if TYPE_CHECKING:
    import numpy as np

# check_clip thresholds, on 0-255 RGB: a frame is black when nothing in it is brighter than this...
_BLACK_MAX = 16
# ...and two frames are the same picture when they differ by less than this on average (codec noise).
_FROZEN_MEAN_DIFF = 1.0


@dataclass(frozen=True)
class StitchReport:
    """What stitch() did."""

    total_frames: int
    seconds: float  # wall time spent stitching
    method: str  # "stream-copy", or "re-encode" when some clips had to be re-encoded to match (see warnings)
    warnings: list[str] = field(default_factory=list)
    duration_s: float = 0.0  # length of the film
    copied_frames: int = 0  # frames whose packets were copied untouched from the clip files
    reencoded_frames: int = 0  # transition windows and re-encoded clips


# -- reading clip files ----------------------------------------------------------------------------


def _nal_types(data: bytes, length_size: int) -> list[int]:
    types, i = [], 0
    while i + length_size < len(data):
        size = int.from_bytes(data[i : i + length_size], "big")
        types.append(data[i + length_size] & 0x1F)
        i += length_size + size
    return types


def _probe(path: Path) -> Probe:
    with open_video(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        extradata = bytes(ctx.extradata or b"")
        # avcC (mp4's H.264 config) begins with version 1; its 5th byte holds the NAL length size.
        length_size = (extradata[4] & 3) + 1 if len(extradata) > 4 and extradata[0] == 1 else 0
        pts: list[int] = []
        idr: set[int] = set()
        in_order = True
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None or packet.pts != packet.dts or packet.is_discard:
                in_order = False
            if packet.is_keyframe and length_size and 5 in _nal_types(bytes(packet), length_size):
                idr.add(len(pts))
            pts.append(packet.pts if packet.pts is not None else -1)
        in_order = in_order and all(a < b for a, b in zip(pts, pts[1:], strict=False))
        return Probe(
            codec=ctx.name, size=(ctx.width, ctx.height), extradata=extradata, in_order=in_order,
            pts=tuple(pts), idr=frozenset(idr),
        )  # fmt: skip


def _film_planes(frame: Any, size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """A decoded frame as the encoder's own input, plane by plane (Y, Cb, Cr): BT.709 limited-range yuv420p at
    the film's size. Frames of our own clips are used as the decoder left them: views of its buffers, no copy."""
    import numpy as np

    ours = frame.format.name == "yuv420p" and frame.colorspace == 1 and frame.color_range != 2  # 709, limited
    if not ours or (frame.width, frame.height) != size:
        rgb = frame.reformat(width=size[0], height=size[1], format="rgb24")
        frame = rgb.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
    # a view keeps its plane, and the plane its frame, alive
    return tuple(np.frombuffer(plane, np.uint8, plane.line_size * plane.height).reshape(plane.height, -1)
                 [:, : plane.width] for plane in frame.planes)


class _ClipFrames:
    """Frames lo..hi-1 of one clip as planes (see _film_planes), decoded one by one as a window asks for them, in
    order: a window holds one frame per clip, however long it is. Seeks to the keyframe before lo when it can."""

    def __init__(self, path: Path, probe: Probe, lo: int, hi: int, size: tuple[int, int]) -> None:
        self._path, self._lo, self._hi = path, lo, hi
        self._frames = self._decode(probe, size)
        self._index = lo - 1
        self._planes: tuple[np.ndarray, ...] = ()

    def __getitem__(self, k: int) -> tuple[np.ndarray, ...]:
        if not self._lo <= k < self._hi or k < self._index:  # cut.timeline asks each clip for its frames in order
            raise IndexError(f"frame {k} of {self._path} (frames {self._lo}..{self._hi - 1}, at {self._index})")
        while self._index < k:
            planes = next(self._frames, None)
            if planes is None:
                raise StitchError(f"{self._path}: could only decode {self._index - self._lo + 1} of its frames "
                                  f"{self._lo}..{self._hi - 1}")
            self._index, self._planes = self._index + 1, planes
        return self._planes

    def close(self) -> None:
        self._frames.close()

    def _decode(self, probe: Probe, size: tuple[int, int]) -> Iterator[tuple[np.ndarray, ...]]:
        # No frame threads: for the dozen frames a window reads they cost about a quarter more CPU (measured), and
        # the window encoder keeps the other cores busy meanwhile.
        with open_video(self._path) as container:
            stream = container.streams.video[0]
            index_of = None
            if probe.in_order:
                index_of = {p: i for i, p in enumerate(probe.pts)}
                start = max((k for k in probe.idr if k <= self._lo), default=0)
                if start:
                    container.seek(probe.pts[start], stream=stream, backward=True, any_frame=False)
            count = 0
            for frame in container.decode(stream):
                index = index_of[frame.pts] if index_of is not None else count
                count += 1
                if index >= self._lo:
                    yield _film_planes(frame, size)
                if index >= self._hi - 1:
                    return


class _Mixer:
    """Window frames from pictures given as their (Y, Cb, Cr) planes: weighted and summed over black (limited
    range: Y 16, Cb = Cr = 128), rounded to uint8: exactly the float32 sum `black * (1 - sum(weights)) + w1 * p1
    + w2 * p2 ...`, returned as planar yuv420p (H * 3 // 2, W), the layout PyAV's to_ndarray() gives.

    With one or two pictures (every fade and crossfade) that sum is taken once per possible input value, into a
    table of 256 or 65536 results per plane, and the frame is looked up in it: a third of the time of summing
    float32 frames (measured at 540p). The buffers are reused frame after frame (a frame is returned in the same
    buffer each time: write it before the next), as fresh pages for each cost about as much as the arithmetic.
    """

    def __init__(self, width: int, height: int) -> None:
        import numpy as np

        self._out = np.empty(height * width * 3 // 2, np.uint8)
        self._index = np.empty(height * width, np.uint16)
        self._table = np.empty((256, 256), np.float32)
        self._lookup = np.empty(256 * 256, np.uint8)
        self._shape = (height * 3 // 2, width)

    def __call__(self, weights: Sequence[float], pictures: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        import numpy as np

        base = np.float32(1 - sum(weights))
        # per input value v, weight * v as the float32 product the sum takes
        terms = [np.arange(256, dtype=np.float32) * np.float32(weight) for weight in weights]
        at = 0
        for plane in range(3):
            planes = [picture[plane] for picture in pictures]
            target = self._out[at : at + planes[0].size].reshape(planes[0].shape)
            at += planes[0].size
            start = np.float32(16 if plane == 0 else 128) * base
            if len(planes) > 2:
                mix = np.full(target.shape, start, np.float32)
                for weight, values in zip(weights, planes, strict=True):
                    mix += np.multiply(values, np.float32(weight), dtype=np.float32)
                target[:] = np.clip(np.rint(mix), 0, 255)
                continue
            if plane < 2:  # Cr's table is Cb's
                table = self._table[0] if len(planes) == 1 else self._table
                if len(planes) == 1:
                    np.add(start, terms[0], out=table)
                else:  # (start + w1 * a) + w2 * b, in the sum's order
                    np.add((start + terms[0])[:, None], terms[1][None, :], out=table)
                np.rint(table, out=table)
                np.clip(table, 0, 255, out=table)
                lookup = self._lookup[: table.size].reshape(table.shape)
                np.copyto(lookup, table, casting="unsafe")
            if len(planes) == 1:
                index = planes[0]
            else:
                index = self._index[: planes[0].size].reshape(planes[0].shape)
                np.left_shift(planes[0], 8, out=index, dtype=np.uint16)
                index |= planes[1]
            np.take(self._lookup[: 256 ** len(planes)], index, out=target, mode="clip")  # every index is in it
        return self._out.reshape(self._shape)


def _render_windows(
    windows: list[cut.Blend],
    sources: list[Path],
    probes: list[Probe],
    size: tuple[int, int],
    fps: int,
    path: Path,
) -> None:
    """Encode every window, one after the other, into one file with a keyframe where each begins.

    One encoder for all windows: starting ffmpeg and x264 once per window cost more than the frames.
    Mixing happens in YUV, which is linear in RGB, so no colour conversion touches the frames.
    """
    starts = [0]
    for window in windows[:-1]:
        starts.append(starts[-1] + len(window.frames))
    width, height = size
    mix = _Mixer(width, height)
    with ClipWriter(path, width=width, height=height, fps=fps, keyframes=starts, pix_fmt="yuv420p",
                    window=True) as writer:
        for window in windows:
            spans: dict[int, tuple[int, int]] = {}
            for terms in window.frames:
                for clip, k, _ in terms:
                    lo, hi = spans.get(clip, (k, k + 1))
                    spans[clip] = (min(lo, k), max(hi, k + 1))
            # decoded as the frames are mixed: the encoder gets its first frame at once, and memory stays flat
            decoded = {c: _ClipFrames(sources[c], probes[c], lo, hi, size) for c, (lo, hi) in spans.items()}
            try:
                for terms in window.frames:
                    pictures = [decoded[clip][k] for clip, k, _ in terms]
                    writer.write(mix([weight for _, _, weight in terms], pictures))
            finally:
                for frames in decoded.values():
                    frames.close()


def _reencode_clip(
    source: Path, path: Path, *, name: str, frames: int, size: tuple[int, int], fps: int, keys: list[int]
) -> Path:
    with ClipWriter(path, width=size[0], height=size[1], fps=fps, keyframes=keys) as writer:
        for frame in iter_frames(source, size=size):
            writer.write(frame)
    if writer.frames != frames:
        raise StitchError(f"{name}: {source} has {writer.frames} frames, but the timeline gives it {frames}")
    return path


# -- audio -----------------------------------------------------------------------------------------


_AudioJob = tuple[subprocess.Popen[bytes], Any, Path]  # ffmpeg, its stderr file, the soundtrack


def _start_audio(audio: Path, seconds: float, path: Path) -> _AudioJob:
    """Build the film's one audio track (AAC, cut or padded with silence to `seconds`) in the background.

    The soundtrack is a file the story names: it is opened once here (a link swapped in since the plan is
    refused, a FIFO never blocks) and ffmpeg reads that open file (`/dev/fd/N`), not the name again."""
    from storyforge.story.root import PathRefused, open_regular

    try:
        fd = open_regular(audio, shown=f"the soundtrack {audio}", nofollow=True)
    except PathRefused as refused:
        raise StitchError(f"{refused} (it was checked when the story was planned)") from None
    source = f"/dev/fd/{fd}" if os.path.isdir("/dev/fd") else str(audio)
    log = tempfile.TemporaryFile()
    cmd = [
        ffmpeg_exe(), "-v", "error", "-y", "-i", source, "-map", "0:a:0", "-vn",
        "-af", f"apad=whole_dur={seconds:.6f},atrim=duration={seconds:.6f}",
        "-ar", "48000", "-c:a", "aac", "-b:a", "192k", "-f", "mp4", str(path),
    ]  # fmt: skip
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                pass_fds=(fd,) if source != str(audio) else ())
    finally:
        os.close(fd)  # the child has its own copy
    return proc, log, audio


def _finish_audio(job: _AudioJob, *, cancel: bool = False) -> None:
    proc, log, audio = job
    with log:
        if cancel:
            proc.kill()
        if proc.wait() != 0 and not cancel:
            log.seek(0)
            detail = log.read().decode(errors="replace").strip()
            raise StitchError(f"cannot use {audio} as the soundtrack: {detail or 'ffmpeg failed'}")


# -- writing the film ------------------------------------------------------------------------------


def _remux(segments: list[tuple[Path, int, int]], path: Path, fps: int, audio: Path | None,
           metadata: dict[str, str] | None = None) -> None:
    """Copy the segments' video packets, frame n at n ticks, and the audio packets, into one mp4 (with
    `metadata` as container tags: custom keys need movflags=use_metadata_tags)."""
    import av

    ticks = ENCODER.ticks_per_frame
    time_base = Fraction(1, ENCODER.timescale(fps))
    options = {"video_track_timescale": str(ENCODER.timescale(fps))}
    if metadata:
        options["movflags"] = "use_metadata_tags"
    with av.open(str(path), "w", format="mp4", options=options) as out:
        out.metadata.update(metadata or {})
        with open_video(segments[0][0]) as first:
            video = out.add_stream_from_template(first.streams.video[0])
        video.time_base = time_base
        sound = av.open(str(audio)) if audio else None
        try:
            pending: Any = iter(())
            if sound is not None:
                track = out.add_stream_from_template(sound.streams.audio[0])
                pending = (p for p in sound.demux(sound.streams.audio[0]) if p.size)
            next_audio = next(pending, None)
            n = 0
            for source, start, count in segments:
                with open_video(source) as container:
                    stream = container.streams.video[0]
                    index = -1
                    for packet in container.demux(stream):
                        if packet.size == 0:
                            continue
                        index += 1
                        if index < start:
                            continue
                        if index >= start + count:
                            break
                        # Interleave: audio up to this frame's time goes first.
                        while next_audio is not None and next_audio.pts * next_audio.time_base <= n / fps:
                            next_audio.stream = track
                            out.mux(next_audio)
                            next_audio = next(pending, None)
                        packet.stream = video
                        packet.time_base = time_base
                        packet.pts = packet.dts = n * ticks
                        packet.duration = ticks
                        out.mux(packet)
                        n += 1
            while next_audio is not None:
                next_audio.stream = track
                out.mux(next_audio)
                next_audio = next(pending, None)
        finally:
            if sound is not None:
                sound.close()


def _verify(path: Path, total: int, verify: str) -> None:
    """The output must hold exactly `total` frames, evenly spaced; decode it too unless told otherwise."""
    with open_video(path) as container:
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.size]
    ticks = ENCODER.ticks_per_frame
    if pts != [n * ticks for n in range(total)]:
        raise StitchError(
            f"the stitched film has {len(pts)} frames (expected {total}) or uneven timestamps; "
            "this is a bug, please report it"
        )
    if verify == "decode":
        decoded = count_frames(path)
        if decoded != total:
            raise StitchError(f"the stitched film decodes to {decoded} frames, not {total}; please report it")


def stitch(
    clips: Sequence[CutClip],
    out: Path,
    *,
    fps: int,
    audio: Path | None = None,
    work_dir: Path,
    verify: Literal["decode", "packets"] = "decode",
    metadata: dict[str, str] | None = None,
) -> StitchReport:
    """Join the clips into `out` along their transitions, atomically, and check the result.

    Packets no transition touches are copied; transition windows are re-encoded with the clips' encoder
    settings (so clips need sync frames where sync_frames() says). A clip that cannot sit in the same H.264
    stream (other size or settings, B-frames, no keyframe where it is cut) is re-encoded first, with a
    warning. verify="decode" decodes the result to count its frames; "packets" counts its packets and
    checks their timestamps only, which skips the decode that dominates a hard-cut film's time.
    """
    started = time.perf_counter()
    if verify not in ("decode", "packets"):
        raise ValueError(f"verify must be 'decode' or 'packets', got {verify!r}")
    if not isinstance(fps, int) or fps <= 0:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    clips = list(clips)
    out = Path(out)
    edges = cut.edges(clips)
    total = total_frames(clips)
    pieces = cut.timeline(clips, edges)
    names = cut.names(clips)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="stitch-", dir=work_dir))
    track = audio_job = None
    try:
        if audio is not None:
            track = scratch / "audio.m4a"
            audio_job = _start_audio(Path(audio), total / fps, track)
        probes = []
        for name, clip in zip(names, clips, strict=True):
            try:
                probes.append(_probe(Path(clip.path)))
            except Exception as e:  # av raises its own error tree, and IndexError for no video stream
                raise StitchError(f"{name}: cannot read its clip {clip.path}: {e}") from e
            if probes[-1].in_order and len(probes[-1].pts) != clip.frames:  # else counted when re-encoded
                raise StitchError(
                    f"{name}: {clip.path} has {len(probes[-1].pts)} frames, but the timeline gives it "
                    f"{clip.frames}; render it again"
                )
        sources = [Path(c.path) for c in clips]
        # The film takes the most common clip size (the first clip's on a tie).
        size = Counter(p.size for p in probes).most_common(1)[0][0]
        windows = [p for p in pieces if isinstance(p, cut.Blend)]
        window_file = scratch / "windows.mp4"
        if windows:
            _render_windows(windows, sources, probes, size, fps, window_file)
        reference = _reference(probes, window_file if windows else None, size, fps, scratch)
        redo, warnings = cut.reencoded(probes, reference, size, edges, names)
        for i in redo:
            sources[i] = _reencode_clip(
                sources[i], scratch / f"clip{i}.mp4", name=names[i], frames=clips[i].frames, size=size,
                fps=fps, keys=sync_frames(clips)[i],
            )  # fmt: skip
        segments, copied = cut.segments(pieces, sources, window_file, redo)
        if audio_job is not None:
            job, audio_job = audio_job, None
            _finish_audio(job)
        with replacing(out, suffix=".mp4") as partial:
            _remux(segments, partial, fps, track, metadata)
            _verify(partial, total, verify)
    except ClipError as e:
        raise StitchError(str(e)) from e
    finally:
        if audio_job is not None:  # stitching failed before the soundtrack was needed
            _finish_audio(audio_job, cancel=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return StitchReport(
        total_frames=total,
        seconds=round(time.perf_counter() - started, 3),
        method="re-encode" if redo else "stream-copy",
        warnings=warnings,
        duration_s=round(total / fps, 3),
        copied_frames=copied,
        reencoded_frames=total - copied,
    )


def _reference(
    probes: list[Probe], windows: Path | None, size: tuple[int, int], fps: int, scratch: Path
) -> tuple[object, ...]:
    """The stream signature every segment must share.

    Clips that all match each other (and the windows, if any) are copied as they are. Otherwise the
    reference is what this encoder writes at the film's size, so that re-encoded clips match it.
    """
    import numpy as np

    if windows is not None:
        return _probe(windows).signature
    signatures = {p.signature for p in probes}
    if len(signatures) == 1:
        return signatures.pop()
    sample = scratch / "reference.mp4"
    with ClipWriter(sample, width=size[0], height=size[1], fps=fps) as writer:
        writer.write(np.zeros((size[1], size[0], 3), np.uint8))
    return _probe(sample).signature


# -- checks and cache key --------------------------------------------------------------------------


class ClipCheck:
    """Whether a clip is all black or frozen, told frame by frame (chunks of frames may be added as they come)."""

    def __init__(self) -> None:
        self.count = 0
        self.black = self.frozen = True
        self._first: np.ndarray | None = None

    @property
    def settled(self) -> bool:
        """Known to be fine: no further frame can change the answer."""
        return not self.black and not self.frozen

    def add(self, frames: np.ndarray) -> None:
        """Look at uint8 RGB frames (F, H, W, 3) that follow the ones added before."""
        import numpy as np

        for frame in frames:
            if self.settled:
                return
            self.count += 1
            self.black = self.black and int(frame.max()) < _BLACK_MAX
            if self._first is None:
                self._first = frame.astype(np.int16)
            elif self.frozen:
                self.frozen = float(np.abs(frame.astype(np.int16) - self._first).mean()) < _FROZEN_MEAN_DIFF

    def warning(self) -> str | None:
        if self.settled:
            return None
        if self.count == 0:
            return "the clip has no frames"
        if self.black:
            return f"the clip is entirely black ({self.count} frames)"
        if self.frozen and self.count > 1:
            return f"the clip is frozen: all {self.count} frames show the same picture"
        return None


def check_clip(clip: Path | str | np.ndarray) -> str | None:
    """A warning if a clip (a file, or uint8 RGB frames (F, H, W, 3)) is all black or frozen, else None."""
    if isinstance(clip, (str, os.PathLike)):
        frames = iter_frames(Path(clip))
    else:
        check_frames(clip, (-1, -1, -1, 3), what="frames")
        frames = iter(clip)
    check = ClipCheck()
    try:
        for frame in frames:
            check.add(frame[None])
            if check.settled:
                return None  # stop decoding as soon as the clip is known to be fine
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()
    return check.warning()


