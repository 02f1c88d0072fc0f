"""Stitching: exact frame counts, real blends and fades, copied frames bit-exact, fallbacks, audio."""

from __future__ import annotations

import subprocess
import sys
import wave
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storyforge.cut import Blend as _Blend
from storyforge.cut import Copy as _Copy
from storyforge.cut import edges as _edges
from storyforge.cut import timeline as _timeline
from storyforge.errors import StoryforgeError
from storyforge.stitch import (
    CutClip,
    StitchError,
    check_clip,
    cut_key,
    sync_frames,
    total_frames,
)

ROOT = Path(__file__).resolve().parents[2]
W, H, FPS, LENGTH = 96, 64, 24, 24
# Solid colours far apart, so a mixed frame's weight can be fitted from its mean colour.
COLOURS = [(220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 40), (40, 220, 220)]
MARK = 16  # columns 0..15 carry a moving bar, so copied frames differ from frame to frame


def timeline(*spec: tuple[str, int], frames: int = LENGTH) -> list[SimpleNamespace]:
    return [SimpleNamespace(id=f"s/{i}", frames=frames, transition=t, transition_frames=n) for i, (t, n) in
            enumerate(spec)]  # fmt: skip


# -- pure timeline arithmetic: no files ------------------------------------------------------------


def test_sync_frames_for_hard_cuts_are_none() -> None:
    assert sync_frames(timeline(("cut", 0), ("continue", 0), ("cut", 0))) == [[], [], []]


def test_sync_frames_at_both_ends_of_each_window() -> None:
    clips = timeline(("fade", 6), ("crossfade", 4), ("fade", 5), ("cut", 0))
    # clip 0 fades in over 6 and hands 4 to the crossfade; clip 1 gives 5 // 2 = 2 to the fade out;
    # clip 2 fades in over 5 - 2 = 3.
    assert sync_frames(clips) == [[6, 20], [4, 22], [3], []]
    assert total_frames(clips) == 4 * LENGTH - 4


def test_sync_frames_take_plan_jobs_without_paths() -> None:
    jobs = [SimpleNamespace(frames=30, transition=SimpleNamespace(type=t, frames=n))
            for t, n in (("cut", 0), ("crossfade", 8))]  # fmt: skip
    assert sync_frames(jobs) == [[22], [8]]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ((("crossfade", 4), ("cut", 0)), "nothing to crossfade from"),
        ((("cut", 0), ("wipe", 4)), "unknown transition 'wipe'"),
        ((("cut", 3),), "a cut has no length"),
        ((("cut", 0), ("fade", 0)), "a fade needs at least 1 frame"),
        ((("cut", 0), ("crossfade", 20), ("crossfade", 20)), "s/1: its transitions use 20 \\+ 20 frames"),
    ],
)
def test_impossible_timelines_are_refused(spec: tuple[tuple[str, int], ...], message: str) -> None:
    with pytest.raises(StitchError, match=message):
        sync_frames(timeline(*spec))


def test_stitch_error_is_a_user_error() -> None:
    assert issubclass(StitchError, StoryforgeError)


@st.composite
def timelines(draw: st.DrawFn) -> list[SimpleNamespace]:
    count = draw(st.integers(1, 6))
    frames = draw(st.lists(st.integers(8, 60), min_size=count, max_size=count))
    clips = []
    for i in range(count):
        kinds = ["cut", "continue", "fade"] + (["crossfade"] if i else [])
        kind = draw(st.sampled_from(kinds))
        length = draw(st.integers(1, 4)) if kind in ("fade", "crossfade") else 0
        clips.append(
            SimpleNamespace(id=f"s/{i}", frames=frames[i], transition=kind, transition_frames=length)
        )
    return clips


@settings(max_examples=60, deadline=None)  # pure arithmetic; no deadline flakes on a busy CI box
@given(timelines())
def test_timeline_covers_every_frame_once_and_copies_start_at_sync_frames(clips: list[SimpleNamespace]) -> None:
    pieces = _timeline(clips, _edges(clips))
    kfs = sync_frames(clips)
    assert sum(p.count if isinstance(p, _Copy) else len(p.frames) for p in pieces) == total_frames(clips)
    assert total_frames(clips) == sum(c.frames for c in clips) - sum(
        c.transition_frames for c in clips if c.transition == "crossfade"
    )
    used: dict[int, list[int]] = {i: [] for i in range(len(clips))}
    for piece in pieces:
        if isinstance(piece, _Copy):
            assert piece.start == 0 or piece.start in kfs[piece.clip]
            used[piece.clip] += range(piece.start, piece.start + piece.count)
        else:
            for terms in piece.frames:
                assert 0.0 <= sum(w for _, _, w in terms) <= 1.0 + 1e-9
                used.update({c: used[c] + [k] for c, k, w in terms})
    for i, clip in enumerate(clips):  # every source frame lands in the film exactly once
        assert sorted(used[i]) == list(range(clip.frames))


def test_cut_key_changes_with_what_changes_the_film() -> None:
    clips = timeline(("cut", 0), ("crossfade", 4))
    base = cut_key(clips, ["k1", "k2"], None)
    assert base == cut_key(timeline(("cut", 0), ("crossfade", 4)), ["k1", "k2"], None)
    assert len(base) == 64
    assert cut_key(clips, ["k1", "k3"], None) != base
    assert cut_key(timeline(("cut", 0), ("crossfade", 5)), ["k1", "k2"], None) != base
    assert cut_key(timeline(("cut", 0), ("fade", 4)), ["k1", "k2"], None) != base
    assert cut_key(clips, ["k1", "k2"], "ab" * 32) != base
    with pytest.raises(ValueError, match="2 clips but 1 keys"):
        cut_key(clips, ["k1"], None)


def test_importing_stitch_loads_no_video_library() -> None:
    code = (
        "import sys, storyforge.stitch\n"
        "video = ('av', 'moviepy', 'numpy', 'imageio_ffmpeg')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in video))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


# -- real encodes ----------------------------------------------------------------------------------

np = pytest.importorskip("numpy")
av = pytest.importorskip("av")
pytest.importorskip("imageio_ffmpeg")

from storyforge.clipfile import ClipWriter, ffmpeg_exe, read_frames, write_clip  # noqa: E402
from storyforge.stitch import stitch  # noqa: E402


def content(
    colour: tuple[int, int, int], frames: int = LENGTH, width: int = W, height: int = H
) -> np.ndarray:
    clip = np.empty((frames, height, width, 3), np.uint8)
    clip[:] = colour
    for i in range(frames):  # a bar whose brightness changes every frame
        clip[i, :, :MARK] = (i * 9) % 256
    return clip


@pytest.fixture(scope="module")
def sources() -> dict[str, np.ndarray]:
    return {f"c{i}": content(colour) for i, colour in enumerate(COLOURS)}


Film = Callable[..., tuple[list[CutClip], Path, object]]


@pytest.fixture
def film(tmp_path: Path, sources: dict[str, np.ndarray]) -> Film:
    """Writes the clips of a timeline (with sync_frames() as the renderer would) and stitches them."""

    def make(*spec: tuple[str, int], audio: Path | None = None, **kwargs: object):
        clips = [CutClip(f"s/{i}", tmp_path / f"c{i}.mp4", LENGTH, t, n) for i, (t, n) in enumerate(spec)]
        for clip, keys in zip(clips, sync_frames(clips), strict=True):
            write_clip(sources[clip.path.stem], clip.path, fps=FPS, keyframes=keys)
        out = tmp_path / "out" / "film.mp4"
        report = stitch(clips, out, fps=FPS, audio=audio, work_dir=tmp_path / "work", **kwargs)
        return clips, out, report

    return make


def mean_colour(frame: np.ndarray) -> np.ndarray:
    return frame[:, MARK:].reshape(-1, 3).mean(axis=0)


def incoming_weight(frame: np.ndarray, a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """Least-squares w in frame = (1 - w) * a + w * b."""
    a_, b_ = np.array(a, float), np.array(b, float)
    return float(np.dot(mean_colour(frame) - a_, b_ - a_) / np.dot(b_ - a_, b_ - a_))


@pytest.mark.parametrize(
    "spec",
    [
        (("cut", 0), ("cut", 0), ("continue", 0)),
        (("cut", 0), ("crossfade", 6)),
        (("cut", 0), ("fade", 7)),
        (("fade", 10), ("cut", 0)),
        (("fade", 4), ("crossfade", 5), ("continue", 0), ("fade", 6), ("crossfade", 1)),
    ],
    ids=["cuts", "crossfade", "fade", "first-fade", "mix"],
)
def test_exact_frame_count(film: Film, spec: tuple[tuple[str, int], ...]) -> None:
    clips, out, report = film(*spec)
    expected = len(spec) * LENGTH - sum(n for t, n in spec if t == "crossfade")
    decoded = read_frames(out)
    assert decoded.shape == (expected, H, W, 3)
    assert report.total_frames == expected and report.method == "stream-copy" and report.warnings == []
    assert report.duration_s == round(expected / FPS, 3)
    assert not list(out.parent.glob(".*")), "the temporary output was left behind"
    assert not list((out.parent.parent / "work").iterdir()), "the scratch folder was left behind"


def test_crossfade_is_a_linear_blend(film: Film) -> None:
    _, out, _ = film(("cut", 0), ("crossfade", 8))
    decoded = read_frames(out)
    start = LENGTH - 8
    weights = [incoming_weight(decoded[start + k], COLOURS[0], COLOURS[1]) for k in range(8)]
    assert all(0 < w < 1 for w in weights)
    assert all(a < b for a, b in zip(weights, weights[1:], strict=False))
    assert np.allclose(weights, [(k + 1) / 9 for k in range(8)], atol=0.02)
    assert incoming_weight(decoded[start - 1], COLOURS[0], COLOURS[1]) == pytest.approx(0, abs=0.02)
    assert incoming_weight(decoded[start + 8], COLOURS[0], COLOURS[1]) == pytest.approx(1, abs=0.02)


def test_fade_dips_to_black(film: Film) -> None:
    _, out, _ = film(("cut", 0), ("fade", 8))
    levels = [float(mean_colour(f).mean()) for f in read_frames(out)[LENGTH - 6 : LENGTH + 6]]
    # clip 0's frames 18..23 (two whole, then darkening over 4 to black), clip 1's 0..5 (from black over 4)
    assert levels[5] < 1.0 and levels[6] < 1.0
    dip = levels.index(min(levels))
    assert min(levels) < 1.0
    assert all(a > b for a, b in zip(levels[1:dip], levels[2 : dip + 1], strict=True))
    assert all(a < b for a, b in zip(levels[dip + 1 : 10], levels[dip + 2 : 11], strict=True))


def test_first_clip_fades_in_from_black(film: Film) -> None:
    _, out, _ = film(("fade", 6), ("cut", 0))
    levels = [float(mean_colour(f).mean()) for f in read_frames(out)[:8]]
    assert levels[0] < 1.0
    assert all(a < b for a, b in zip(levels[:6], levels[1:7], strict=True))
    assert levels[6] == pytest.approx(levels[7], abs=1)


def test_frames_outside_windows_are_the_clips_own_bits(film: Film) -> None:
    clips, out, report = film(("cut", 0), ("crossfade", 6), ("fade", 4), ("cut", 0), verify="packets")
    decoded = read_frames(out)
    sources = [read_frames(c.path) for c in clips]
    # copied spans on the film's timeline: clip 0 [0, 18), clip 1 [6, 22), clip 2 [2, 24), clip 3 all
    spans = [(0, 0, 18), (1, 6, 16), (2, 2, 22), (3, 0, 24)]
    at = {0: 0, 1: 18 + 6, 2: 18 + 6 + 16 + 4, 3: 18 + 6 + 16 + 4 + 22}
    for clip, start, count in spans:
        assert np.array_equal(decoded[at[clip] : at[clip] + count], sources[clip][start : start + count])
    assert report.copied_frames == 18 + 16 + 22 + 24 and report.reencoded_frames == 6 + 4


def test_a_clip_of_another_size_is_re_encoded_with_a_warning(tmp_path: Path) -> None:
    clips = [
        CutClip("s/a", tmp_path / "a.mp4", LENGTH),
        CutClip("s/b", tmp_path / "b.mp4", LENGTH, "crossfade", 4),
        CutClip("s/c", tmp_path / "c.mp4", LENGTH),
    ]
    write_clip(content(COLOURS[0]), clips[0].path, fps=FPS, keyframes=sync_frames(clips)[0])
    write_clip(content(COLOURS[1], width=48, height=32), clips[1].path, fps=FPS)
    write_clip(content(COLOURS[2]), clips[2].path, fps=FPS)
    report = stitch(clips, tmp_path / "film.mp4", fps=FPS, work_dir=tmp_path / "work")
    decoded = read_frames(tmp_path / "film.mp4")
    assert decoded.shape == (3 * LENGTH - 4, H, W, 3)
    assert report.method == "re-encode"
    assert report.warnings == [
        "s/b: its size is 48x32, not the film's 96x64 (scaled), so it was re-encoded to match the film"
    ]
    # encoded twice and scaled up 2x: a few levels of generation loss
    assert np.allclose(decoded[LENGTH + 6, :, W // 2 :].reshape(-1, 3).mean(axis=0), COLOURS[1], atol=6)


@pytest.mark.parametrize(
    ("x264", "reason"),
    [
        (["-preset", "medium"], "it has B-frames or an edit list"),
        (["-preset", "ultrafast", "-x264-params", "bframes=0"], "it was encoded with other settings"),
    ],
    ids=["b-frames", "other-headers"],
)
def test_a_foreign_encode_is_re_encoded_with_a_warning(tmp_path: Path, x264: list[str], reason: str) -> None:
    """Another tool's x264 clip (untagged BT.601 colours, default GOP): re-encoded, colours kept."""
    foreign = tmp_path / "foreign.mp4"
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", str(FPS), "-i", "-"]
    cmd = [ffmpeg_exe(), "-v", "error", *raw, "-c:v", "libx264", *x264, "-pix_fmt", "yuv420p", str(foreign)]
    subprocess.run(cmd, input=content(COLOURS[3]).tobytes(), check=True)
    clips = [CutClip("s/a", tmp_path / "a.mp4", LENGTH), CutClip("s/b", foreign, LENGTH, "fade", 6)]
    write_clip(content(COLOURS[0]), clips[0].path, fps=FPS, keyframes=sync_frames(clips)[0])
    report = stitch(clips, tmp_path / "film.mp4", fps=FPS, work_dir=tmp_path / "work")
    decoded = read_frames(tmp_path / "film.mp4")
    assert len(decoded) == 2 * LENGTH
    assert report.method == "re-encode" and len(report.warnings) == 1
    assert report.warnings[0].startswith(f"s/b: {reason}")
    # The fade's last frame brightens the foreign clip to 2/3, then the clip itself follows. Two encodes
    # cost a few levels; reading BT.601 colours as BT.709 would put green off by about 10.
    assert np.allclose(mean_colour(decoded[LENGTH + 2]), np.array(COLOURS[3]) * 2 / 3, atol=6)
    assert np.allclose(mean_colour(decoded[LENGTH + 3]), COLOURS[3], atol=6)


def test_a_clip_without_keyframes_at_its_cut_is_re_encoded(tmp_path: Path, sources: dict) -> None:
    clips = [
        CutClip("s/a", tmp_path / "a.mp4", LENGTH),
        CutClip("s/b", tmp_path / "b.mp4", LENGTH, "crossfade", 5),
    ]
    write_clip(sources["c0"], clips[0].path, fps=FPS)
    write_clip(sources["c1"], clips[1].path, fps=FPS)  # no keyframe at 5: its copy could not start there
    report = stitch(clips, tmp_path / "film.mp4", fps=FPS, work_dir=tmp_path / "work")
    assert len(read_frames(tmp_path / "film.mp4")) == 2 * LENGTH - 5
    assert report.warnings == ["s/b: it has no sync frame at frame 5, where its copied part starts "
                               "(see cut.sync_frames), so it was re-encoded to match the film"]  # fmt: skip


def test_another_timescale_is_still_copied_with_even_timestamps(tmp_path: Path, sources: dict) -> None:
    """Research pitfall 2: frames are re-timed on copy, so a clip's own timescale cannot squeeze them."""
    clips = [CutClip("s/a", tmp_path / "a.mp4", LENGTH), CutClip("s/b", tmp_path / "b.mp4", LENGTH)]
    write_clip(sources["c0"], clips[0].path, fps=FPS)
    remux = ["-i", str(clips[0].path), "-c", "copy", "-video_track_timescale", "90000", str(clips[1].path)]
    subprocess.run([ffmpeg_exe(), "-v", "error", *remux], check=True)
    report = stitch(clips, tmp_path / "film.mp4", fps=FPS, work_dir=tmp_path / "work")
    with av.open(str(tmp_path / "film.mp4")) as container:
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.size]
    assert report.method == "stream-copy"
    assert pts == [512 * n for n in range(2 * LENGTH)]


def test_a_clip_shorter_than_the_timeline_says_is_an_error(tmp_path: Path, sources: dict) -> None:
    write_clip(sources["c0"], tmp_path / "a.mp4", fps=FPS)
    with pytest.raises(StitchError, match="s/a: .* has 24 frames, but the timeline gives it 30"):
        stitch([CutClip("s/a", tmp_path / "a.mp4", 30)], tmp_path / "film.mp4", fps=FPS, work_dir=tmp_path)


def sine(path: Path, seconds: float, rate: int = 44100) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).tobytes())
    return path


@pytest.mark.parametrize("seconds", [0.7, 9.0], ids=["padded", "trimmed"])
def test_audio_is_cut_to_the_film(film: Film, tmp_path: Path, seconds: float) -> None:
    _, out, report = film(("cut", 0), ("crossfade", 6), audio=sine(tmp_path / "music.wav", seconds))
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        rate = stream.rate
    assert report.total_frames == 2 * LENGTH - 6
    assert abs(samples - rate * report.total_frames / FPS) <= 1024  # one AAC frame
    assert len(read_frames(out)) == report.total_frames


def test_a_failed_stitch_keeps_the_previous_film(film: Film, tmp_path: Path) -> None:
    clips, out, _ = film(("cut", 0), ("cut", 0))
    before = out.read_bytes()
    bad = tmp_path / "music.mp3"
    bad.write_text("not audio")
    with pytest.raises(StitchError, match="cannot use .*music.mp3 as the soundtrack"):
        stitch(clips, out, fps=FPS, audio=bad, work_dir=tmp_path / "work")
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["film.mp4"]


# -- clip checks -----------------------------------------------------------------------------------


def test_check_clip_finds_black_and_frozen_clips(tmp_path: Path) -> None:
    black = np.zeros((5, H, W, 3), np.uint8)
    still = np.full((5, H, W, 3), 120, np.uint8)
    assert check_clip(black) == "the clip is entirely black (5 frames)"
    assert check_clip(still) == "the clip is frozen: all 5 frames show the same picture"
    assert check_clip(content(COLOURS[0], frames=5)) is None
    write_clip(black, tmp_path / "black.mp4", fps=FPS)
    write_clip(still, tmp_path / "still.mp4", fps=FPS)
    assert check_clip(tmp_path / "black.mp4") == "the clip is entirely black (5 frames)"
    assert check_clip(str(tmp_path / "still.mp4")) == "the clip is frozen: all 5 frames show the same picture"


def test_check_clip_refuses_float_frames() -> None:
    with pytest.raises(ValueError, match="uint8"):
        check_clip(np.zeros((2, H, W, 3), np.float32))


def test_window_frames_mix_the_decoded_clips() -> None:
    """The window recipe itself: weights per frame of a crossfade and of a fade through black."""
    clips = timeline(("cut", 0), ("crossfade", 3), ("fade", 4))
    windows = [p for p in _timeline(clips, _edges(clips)) if isinstance(p, _Blend)]
    assert windows[0].frames == (
        ((0, 21, 0.75), (1, 0, 0.25)),
        ((0, 22, 0.5), (1, 1, 0.5)),
        ((0, 23, 0.25), (1, 2, 0.75)),
    )
    assert windows[1].frames == (((1, 22, 0.5),), ((1, 23, 0.0),), ((2, 0, 0.0),), ((2, 1, 0.5),))


@pytest.mark.parametrize(("width", "height"), [(W, H), (960, 544)], ids=["tiny", "540p"])
def test_windows_have_the_clips_stream_headers(tmp_path: Path, width: int, height: int) -> None:
    """A window is encoded with a cheaper motion search than a clip (ClipWriter(window=True)), from planar YUV,
    yet its stream headers are a write_clip clip's byte for byte: so their packets sit in one stream."""
    write_clip(content(COLOURS[0], frames=3, width=width, height=height), tmp_path / "clip.mp4", fps=FPS,
               keyframes=[2])
    with ClipWriter(tmp_path / "window.mp4", width=width, height=height, fps=FPS, keyframes=[2],
                    pix_fmt="yuv420p", window=True) as writer:
        for k in range(4):
            writer.write(np.full((height * 3 // 2, width), 60 + 10 * k, np.uint8))
    with av.open(str(tmp_path / "clip.mp4")) as a, av.open(str(tmp_path / "window.mp4")) as b:
        assert a.streams.video[0].codec_context.extradata == b.streams.video[0].codec_context.extradata


def planes(frame: np.ndarray, height: int, width: int) -> tuple[np.ndarray, ...]:
    """A planar yuv420p frame (H * 3 // 2, W) as its Y, Cb and Cr planes."""
    flat, luma, chroma = frame.ravel(), height * width, height * width // 4
    return (flat[:luma].reshape(height, width), flat[luma : luma + chroma].reshape(height // 2, width // 2),
            flat[luma + chroma :].reshape(height // 2, width // 2))  # fmt: skip


def float_mix(weights: list[float], frames: list[np.ndarray], height: int) -> np.ndarray:
    """The window recipe as plain float32 arithmetic over black (limited range: Y 16, Cb = Cr = 128)."""
    black = np.full(frames[0].shape, 128, np.float32)
    black[:height] = 16
    mix = black * np.float32(1 - sum(weights))
    for weight, frame in zip(weights, frames, strict=True):
        mix += np.multiply(frame, np.float32(weight), dtype=np.float32)
    return np.clip(np.rint(mix), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_window_mixing_is_the_float32_sum_exactly(count: int) -> None:
    """The mixer's lookup tables give every pixel the float32 sum gives, for a fade's one picture, a
    crossfade's two, and more, at the weights transitions use and at any others."""
    from storyforge.stitch import _Mixer

    rng = np.random.default_rng(count)
    mix = _Mixer(W, H)
    weights = [[(k + 1) / 13, 1 - (k + 1) / 13] for k in range(12)] + [[k / 6, 1 - k / 6] for k in range(7)]
    weights += [list(rng.random(2)) for _ in range(8)] + [[0.5, 0.25], [1.0, 0.0]]
    for pair in weights:
        chosen = (pair + [float(rng.random())])[:count]
        frames = [rng.integers(0, 256, (H * 3 // 2, W), np.uint8) for _ in range(count)]
        frames[0][:2] = np.arange(256, dtype=np.uint8).reshape(2, -1)[:, :W]  # every value shows up somewhere
        got = mix(chosen, [planes(f, H, W) for f in frames])
        assert got.shape == (H * 3 // 2, W)
        assert np.array_equal(got, float_mix(chosen, frames, H)), chosen


def test_window_frames_are_the_decoded_clips_mixed(film: Film, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the window encoder is fed: exactly the recipe's sum over the clips' own decoded frames (read here
    with plain PyAV, whole clip by whole clip), however the cut seeks into them and whatever buffers it reuses."""
    import storyforge.stitch as module

    fed: list[np.ndarray] = []

    class Recording(ClipWriter):
        def write(self, frame: np.ndarray) -> None:
            fed.append(frame.copy())
            super().write(frame)

    monkeypatch.setattr(module, "ClipWriter", Recording)
    clips, _, report = film(("fade", 4), ("crossfade", 6), ("fade", 5), ("cut", 0), ("crossfade", 3))
    decoded = []
    for clip in clips:
        with av.open(str(clip.path)) as container:
            decoded.append([frame.to_ndarray() for frame in container.decode(video=0)])
    windows = [p for p in _timeline(clips, _edges(clips)) if isinstance(p, _Blend)]
    expected = [float_mix([w for _, _, w in terms], [decoded[c][k] for c, k, _ in terms], H)
                for window in windows for terms in window.frames]  # fmt: skip
    assert len(fed) == len(expected) == 4 + 6 + 5 + 3 == report.reencoded_frames
    for index, (got, want) in enumerate(zip(fed, expected, strict=True)):
        assert np.array_equal(got, want), f"window frame {index}"


def test_window_sources_are_read_in_order_and_must_hold_their_frames(tmp_path: Path, sources: dict) -> None:
    """A window reads each clip's frames one by one from a sync frame; a clip that ends early is named."""
    from storyforge.stitch import _ClipFrames, _probe

    path = tmp_path / "a.mp4"
    write_clip(sources["c0"], path, fps=FPS, keyframes=[16])
    probe = _probe(path)
    frames = _ClipFrames(path, probe, 16, 20, (W, H))
    try:
        with av.open(str(path)) as container:
            expected = [f.to_ndarray() for f in container.decode(video=0)][16:20]
        for k in range(16, 20):
            assert np.array_equal(np.concatenate([p.ravel() for p in frames[k]]), expected[k - 16].ravel())
        assert frames[19] is frames[19]  # the frame it holds, not decoded again
        with pytest.raises(IndexError):
            frames[18]  # behind: cut.timeline never asks for a frame twice or backwards
    finally:
        frames.close()
    beyond = _ClipFrames(path, probe, 20, LENGTH + 2, (W, H))
    with pytest.raises(StitchError, match=rf"a\.mp4: could only decode 4 of its frames 20\.\.{LENGTH + 1}$"):
        for k in range(20, LENGTH + 2):
            beyond[k]
    beyond.close()


def test_the_ffmpeg_binary_decodes_every_join_strictly(film: Film) -> None:
    """The ffmpeg binary, told to stop at the first bitstream error, decodes the film across every kind of join
    (window after copy, copy after window, window after window, cut) to the frame count the timeline gives, and
    to the same pictures PyAV decodes."""
    clips, out, report = film(("fade", 4), ("crossfade", 6), ("fade", 5), ("cut", 0), ("crossfade", 3),
                              verify="packets")
    strict = ["-v", "error", "-xerror", "-err_detect", "+crccheck+bitstream+buffer+explode"]
    done = subprocess.run([ffmpeg_exe(), *strict, "-i", str(out), "-map", "0:v", "-f", "framemd5", "-"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    hashes = [line.rsplit(",", 1)[-1].strip() for line in done.stdout.splitlines() if not line.startswith("#")]
    assert len(hashes) == report.total_frames == 5 * LENGTH - 6 - 3
    assert report.method == "stream-copy" and report.reencoded_frames == 4 + 6 + 5 + 3
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert np.array_equal(np.stack(frames), read_frames(out))
    # The moving bar makes every frame unique but the three all-black ones (the fade-in's first frame, the fade's
    # middle two): nothing repeated or dropped at a join.
    assert len(set(hashes)) == len(hashes) - 2
