"""Writing and reading one job's clip: H.264 mp4 with one timescale and keyframes where transitions will cut it."""  # noqa: E501

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from storyforge.errors import StoryforgeError

# numpy, av and imageio_ffmpeg are imported where they are used, so that importing this module (and
# storyforge.stitch, which reads ENCODER) stays cheap for `validate` and `plan`.
if TYPE_CHECKING:
    import av.container
    import numpy as np


class ClipError(StoryforgeError):
    """A clip could not be encoded or decoded."""


@dataclass(frozen=True)
class Encoder:
    """The H.264 settings of every clip and every re-encoded transition window.

    Stitching stream-copies clip packets next to freshly encoded window packets, so both must come from
    identical settings: the stream headers (SPS/PPS) then match byte for byte.
    """

    preset: str = "veryfast"  # 2-3x medium's speed; the windows are encoded while the user waits
    crf: int = 18
    # stitchable: headers independent of the rate control; bframes=0: decode order == display order, so a
    # span can be cut at any frame boundary, timestamps are just n * ticks and mp4 needs no edit list;
    # forced-idr: forced keyframes are IDR, so nothing after them refers to frames before.
    x264_params: str = "stitchable=1:bframes=0:forced-idr=1"
    # Transition windows search motion as the superfast preset does (diamond, one subpixel pass; veryfast: hexagon,
    # two): a quarter less CPU per frame, the headers untouched (ref, weightp, 8x8dct, cabac, deblock stay
    # veryfast's; a test compares them). Measured on 48 crossfade frames at 540p: PSNR 0.07 to 0.5 dB higher,
    # 9 to 24 % more bits on smooth pictures, 24 % fewer on bench/cut_bench.py's noisy ones.
    window_params: str = "me=dia:subme=1"
    colour: str = "bt709"
    ticks_per_frame: int = 512  # mp4 timescale = fps * 512: 12288 at 24 fps, exact for any integer fps

    def timescale(self, fps: int) -> int:
        return fps * self.ticks_per_frame

    def input_args(self, pix_fmt: str, width: int, height: int, fps: int) -> list[str]:
        """ffmpeg options for raw frames on stdin: rgb24, or yuv420p already in this encoder's colours."""
        if pix_fmt not in ("rgb24", "yuv420p"):
            raise ValueError(f"pix_fmt must be rgb24 or yuv420p, got {pix_fmt!r}")
        # Untagged YUV input would be converted from an assumed BT.601 (Y 81 -> 62 measured): tag it.
        tags = ["-colorspace", self.colour, "-color_range", "tv"] if pix_fmt == "yuv420p" else []
        size = f"{width}x{height}"
        return ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", size, "-framerate", str(fps), *tags]

    def output_args(self, fps: int, keyframes: Iterable[int], *, window: bool = False) -> list[str]:
        """ffmpeg output options; `keyframes` are frame indices forced to IDR; `window`: a transition window's."""
        forced = "+".join(f"eq(n,{k})" for k in sorted({0, *keyframes}))
        params = f"{self.x264_params}:{self.window_params}" if window else self.x264_params
        return [
            "-vf", f"scale=out_color_matrix={self.colour}:out_range=tv,format=yuv420p",
            "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf),
            "-x264-params", params,
            "-colorspace", self.colour, "-color_primaries", self.colour, "-color_trc", self.colour,
            "-color_range", "tv",
            "-force_key_frames", f"expr:{forced}",
            "-video_track_timescale", str(self.timescale(fps)),
            "-an", "-f", "mp4",
        ]  # fmt: skip


ENCODER = Encoder()


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


class ClipWriter:
    """Streams frames into one clip file through the ffmpeg binary, written atomically on close.

    Frames are uint8 RGB (H, W, 3), or with pix_fmt="yuv420p" planar BT.709 YUV (H * 3 // 2, W) as
    PyAV's VideoFrame.to_ndarray() gives them. window=True encodes a transition window (see
    Encoder.window_params): the same stream headers as a clip's, a cheaper motion search. Piping to ffmpeg
    measured as fast as PyAV's in-process encoder for whole clips and for the cut's 48 window frames alike
    (the same CPU), and lets conversion and x264 run in another process while Python works: in process,
    encode() blocks while x264's frame threads fill, so the windows' decoding could not run ahead.
    """

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        fps: int,
        keyframes: Iterable[int] = (),
        pix_fmt: str = "rgb24",
        window: bool = False,
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"frame size must be even for yuv420p, got {width}x{height}")
        if not isinstance(fps, int) or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        self.path = Path(path)
        self.shape: tuple[int, ...] = (height, width, 3) if pix_fmt == "rgb24" else (height * 3 // 2, width)
        self.frames = 0
        # A partial file never sits at `path`: a killed render leaves only the .part file behind.
        self._part = self.path.with_name(self.path.name + ".part")
        self._stderr: BinaryIO = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would deadlock
        cmd = [
            ffmpeg_exe(), "-v", "error", "-y", *ENCODER.input_args(pix_fmt, width, height, fps), "-i", "-",
            *ENCODER.output_args(fps, keyframes, window=window), str(self._part),
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._stderr)

    def write(self, frame: np.ndarray) -> None:
        import numpy as np

        check_frames(frame, self.shape, what="frame")
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(memoryview(np.ascontiguousarray(frame)).cast("B"))
        except BrokenPipeError:
            self._fail("ffmpeg stopped reading frames")
        self.frames += 1

    def close(self) -> None:
        """Finish the encode and move the file into place; raises ClipError when ffmpeg failed."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        if self._proc.wait() != 0:
            self._fail(f"ffmpeg exited with status {self._proc.returncode}")
        if self.frames == 0:
            self._fail("no frames were written")
        self._stderr.close()
        os.replace(self._part, self.path)

    def abort(self) -> None:
        self._proc.kill()
        self._proc.wait()
        self._stderr.close()
        self._part.unlink(missing_ok=True)

    def _fail(self, why: str) -> None:
        self._proc.kill()
        self._proc.wait()
        self._stderr.seek(0)
        detail = self._stderr.read().decode(errors="replace").strip()
        self._stderr.close()
        self._part.unlink(missing_ok=True)
        raise ClipError.several([f"could not encode {self.path}: {why}", *detail.splitlines()])

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def check_frames(frames: object, shape: tuple[int, ...], *, what: str) -> None:
    """Reject what would encode to garbage: float frames in [0, 1] give black video elsewhere."""
    import numpy as np

    if not isinstance(frames, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise ValueError(
            f"{what} must be uint8 RGB, got {frames.dtype}; convert float frames in [0, 1] with "
            "(frames * 255).round().astype(np.uint8)"
        )
    if frames.ndim != len(shape) or any(w not in (-1, g) for w, g in zip(shape, frames.shape, strict=True)):
        dims = ", ".join("N" if d == -1 else str(d) for d in shape)
        raise ValueError(f"{what} must have shape ({dims}), got {frames.shape}")


def poster_frame(count: int) -> int:
    """The frame a clip of `count` frames shows as its poster (the review page's): its middle. Clips get a
    keyframe there, so the poster decodes from that one frame."""
    return max(0, count // 2)


def write_clip(frames: np.ndarray | Iterator[np.ndarray], path: Path, *, fps: int,
               keyframes: Sequence[int] = ()) -> tuple[int, int, int]:
    """Encode uint8 RGB frames (F, H, W, 3) to an H.264 mp4 with IDR frames at 0 and at `keyframes`.

    `frames` may also be an iterator (a generator, say) of such arrays, chunks of any length, each encoded as it
    comes: the whole clip is never in memory. Returns the clip's (frames, height, width).
    """
    chunks: Iterable[np.ndarray]
    if isinstance(frames, Iterator):
        chunks = frames
    else:
        check_frames(frames, (-1, -1, -1, 3), what="frames")
        if not len(frames):
            raise ValueError("frames is empty")
        _check_keyframes(keyframes, len(frames))
        chunks = (frames,)
    writer: ClipWriter | None = None
    try:
        for chunk in chunks:
            check_frames(chunk, (-1, -1, -1, 3), what="frames")
            if writer is None and len(chunk):
                height, width = chunk.shape[1:3]
                writer = ClipWriter(Path(path), width=width, height=height, fps=fps, keyframes=keyframes)
            for frame in chunk:
                assert writer is not None
                writer.write(frame)
        if writer is None:
            raise ValueError("frames is empty")
        _check_keyframes(keyframes, writer.frames)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    writer.close()
    return writer.frames, writer.shape[0], writer.shape[1]


def _check_keyframes(keyframes: Sequence[int], count: int) -> None:
    bad = [k for k in keyframes if not 0 <= k < count]
    if bad:
        raise ValueError(f"keyframes {bad} are outside the clip's {count} frames")


def open_video(path: Path) -> av.container.InputContainer:
    """Open a media file with PyAV, without the ~40 ms (at 540p) FFmpeg spends decoding frames to probe it.

    Demuxing and decoding work the same; only the codec context's pix_fmt stays unknown until decoded.
    """
    import av

    try:
        return av.open(str(path), stream_options=[{"skip_frame": "all"}])
    except ValueError:  # a format whose streams only appear while probing (MPEG-TS): open it plainly
        return av.open(str(path))


def iter_frames(path: Path, *, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Decode a video's frames in display order as uint8 RGB (H, W, 3), scaled to `size` (w, h) if given."""
    import av

    width, height = size if size is not None else (None, None)
    try:
        with open_video(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threads: ~1.5x on 2 cores
            for frame in container.decode(stream):
                yield frame.to_ndarray(width=width, height=height, format="rgb24")
    except (av.FFmpegError, IndexError) as e:
        raise ClipError(f"cannot decode {path}: {e}") from e


def read_frames(path: Path) -> np.ndarray:
    """All frames of a video, decoded, as uint8 RGB (F, H, W, 3)."""
    import numpy as np

    frames = list(iter_frames(path))
    if not frames:
        raise ClipError(f"{path} has no video frames")
    return np.stack(frames)


def count_frames(path: Path) -> int:
    """The number of frames a decoder really outputs (no ffprobe here, and container counts can lie)."""
    import av

    try:
        with open_video(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            return sum(1 for _ in container.decode(stream))
    except (av.FFmpegError, IndexError) as e:
        raise ClipError(f"cannot decode {path}: {e}") from e
