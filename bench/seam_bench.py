"""Benchmark: seam detection and colour-matching reduction on synthetic clips, and the time per minute of video.

Part 1 injects known faults at a seam (brightness steps, hue turns) and along a chain (window-by-window drift)
into a moving synthetic picture, and prints what the seam report measures against what was put in, before and
after colour matching. Part 2 times, on 540p frames, what the render adds per minute of video with
`color_match` off (the seam report alone) and on (matching, then the report), beside the H.264 encode every
clip gets anyway. Part 3 measures what a continued shot conditions on against the frames the backend made
(PSNR): the H.264 decode of the clip (before) and the cache entry's lossless tail (now), on the same 540p
picture and on a real tiny-model render (`--no-tiny` skips that one; it needs the render extra).
Run: PYTHONPATH=. python bench/seam_bench.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from seamclips import drift, moving_lab, step, to_frames  # noqa: E402

from storyforge import colormatch, seams  # noqa: E402
from storyforge.clipfile import write_clip  # noqa: E402
from storyforge.lab import delta_e_2000  # noqa: E402

SEAM, SIDE = 30, seams.SIDE
FPS, WIDTH, HEIGHT = 24, 960, 544


def detection() -> None:
    print("seam faults (CIEDE2000; jump: 1 = invisible)")
    print(f"{'fault':<28}{'put in':>8}{'measured':>10}{'jump':>8}{'| matched: shift':>18}{'jump':>8}{'reduction':>11}")
    clean_lab = moving_lab(60)
    clean = to_frames(clean_lab)
    base = seams.measure(clean[:SEAM], clean[SEAM:])
    print(f"{'none (clean seam)':<28}{0.0:>8.2f}{base['color_shift']:>10.2f}{base['jump']:>8.2f}")
    for name, lightness, hue in (("brightness +6 L", 6, 0), ("brightness -10 L", -10, 0), ("hue turn 25 deg", 0, 25),
                                 ("+3 L and hue 15 deg", 3, 15)):
        lab = step(clean_lab, SEAM, lightness=lightness, hue_degrees=hue)
        frames = to_frames(lab)
        put = float(delta_e_2000(lab[SEAM - SIDE:SEAM].reshape(-1, 3).mean(0),
                                 lab[SEAM:SEAM + SIDE].reshape(-1, 3).mean(0)))
        found = seams.measure(frames[:SEAM], frames[SEAM:])
        matched = colormatch.match_job(frames, [SEAM])
        after = seams.measure(matched[:SEAM], matched[SEAM:])
        factor = found["color_shift"] / max(after["color_shift"], 1e-3)
        print(f"{name:<28}{put:>8.2f}{found['color_shift']:>10.2f}{found['jump']:>8.2f}{after['color_shift']:>18.3f}"
              f"{after['jump']:>8.2f}{factor:>10.0f}x")
    starts = [0, 20, 40, 60, 80]
    for lightness, yellow in ((2.5, 2.0), (-1.5, 3.0)):
        lab = drift(moving_lab(100), starts, lightness=lightness, yellow=yellow)
        frames = to_frames(lab)
        put = float(delta_e_2000(lab[:20].reshape(-1, 3).mean(0), lab[80:].reshape(-1, 3).mean(0)))
        found = seams.chain_drift(seams.window_colours(frames, starts))
        matched = colormatch.match_job(frames, starts)
        after = seams.chain_drift(seams.window_colours(matched, starts))
        name = f"chain drift {lightness:+} L {yellow:+} b /window"
        print(f"{name:<28}{put:>8.2f}{found:>10.2f}{'':>8}{after:>18.3f}{'':>8}{found / max(after, 1e-3):>10.0f}x")


def picture(frames: int) -> np.ndarray:
    """540p frames with motion and grain, and a brightness step at frame 17 (a continued shot's seam)."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    base = np.stack([np.sin(x / 97 + c) * np.cos(y / 71 - c) for c in (0.0, 2.1, 4.2)], axis=-1) * 0.4 + 0.5
    field = ((base + rng.normal(0, 0.03, base.shape)).clip(0, 1) * 255).astype(np.uint8)
    clip = np.stack([np.roll(field, (2 * i, 3 * i), axis=(0, 1)) for i in range(frames)])
    clip[17:] = np.clip(clip[17:].astype(np.int16) + 8, 0, 255).astype(np.uint8)
    return clip


def timing(repeats: int) -> None:
    frames = picture(17 + 97)
    previous, shot = frames[:17], frames[17:]  # a continued shot of 97 frames with a window seam at 48 as well
    starts = [0, 48]

    def report_only() -> None:
        for site in (0, 48):
            seams.measure(previous if site == 0 else shot[:site], shot[site:])
        seams.window_colours(shot, starts)

    def matching() -> None:
        colormatch.match_job(shot, starts, reference=previous)

    with tempfile.TemporaryDirectory() as folder:
        def encode() -> None:
            write_clip(shot, Path(folder) / "clip.mp4", fps=FPS, keyframes=[0])

        results = {}
        for name, work in (("H.264 encode (every render)", encode), ("seam report", report_only),
                           ("colour matching", matching)):
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                work()
                times.append(time.perf_counter() - started)
            results[name] = statistics.median(times)
    per_minute = 60 * FPS / len(shot)
    print(f"\nseconds per minute of 540p video at {FPS} fps (median of {repeats}; one seam per 48 frames)")
    off = results["seam report"]
    on = results["seam report"] + results["colour matching"]
    encode_s = results["H.264 encode (every render)"]
    print(f"{'':<30}{'color_match off':>16}{'color_match on':>16}")
    print(f"{'H.264 encode (every render)':<30}{encode_s * per_minute:>16.1f}{encode_s * per_minute:>16.1f}")
    print(f"{'seam report':<30}{off * per_minute:>16.2f}{off * per_minute:>16.2f}")
    print(f"{'colour matching':<30}{0.0:>16.2f}{results['colour matching'] * per_minute:>16.1f}")
    print(f"{'added / encode':<30}{off / encode_s:>15.2f}x{on / encode_s:>15.2f}x")


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    error = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else 10 * np.log10(255.0**2 / error)


def conditioning(tiny: bool) -> None:
    from storyforge.cache import TAIL, Cache
    from storyforge.clipfile import read_frames

    print("\nPSNR of a continuation's conditioning frames against the backend's output (dB; inf = exact)")
    print(f"{'source':<44}{'H.264 decode (before)':>22}{'lossless tail (now)':>22}")
    frames = picture(97)
    with tempfile.TemporaryDirectory() as folder:
        cache = Cache(Path(folder) / "cache")

        class Job:  # what Cache.put reads of a job
            id, key = "bench/shot", "0" * 64

        entry = cache.put("1" * 64, frames, job=Job, fps=FPS, keyframes=[0], identity={},  # type: ignore[arg-type]
                          seconds=0, tail=lambda: frames[-17:])
        decoded, lossless = read_frames(entry.clip)[-17:], np.load(entry.folder / TAIL)
        print(f"{'540p moving texture with grain, 17 frames':<44}{psnr(frames[-17:], decoded):>22.2f}"
              f"{psnr(frames[-17:], lossless):>22.2f}")
        if not tiny:
            return
        from conftest import TINY

        from storyforge import api

        story = Path(folder) / "film.yaml"
        story.write_text(TINY, encoding="utf-8")
        plan = api.plan(story)
        api.render(plan, out=Path(folder) / "out", cache_root=Path(folder) / "tiny-cache")
        cache = Cache(Path(folder) / "tiny-cache")
        for meta in sorted((Path(folder) / "tiny-cache").glob("*/*/meta.json")):
            entry = cache.get(meta.parent.name)
            assert entry is not None
            lossless = cache.tail(entry)
            decoded = cache.read(entry)[-len(lossless):]
            # the tail is the frames as they went to the encoder: the backend's output (after colour matching)
            print(f"{'tiny model ' + entry.meta['job'] + f', {len(lossless)} frames':<44}"
                  f"{psnr(lossless, decoded):>22.2f}{psnr(lossless, lossless):>22.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-tiny", action="store_true", help="skip the tiny-model render of part 3")
    args = parser.parse_args()
    detection()
    timing(args.repeats)
    conditioning(not args.no_tiny)


if __name__ == "__main__":
    main()
