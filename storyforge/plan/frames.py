"""Diffusion-Forcing frame arithmetic in plain integers: latents, windows, validity rules and cost.

The Wan VAE compresses time by 4: a generation of n frames is ``latents(n) = (n - 1) // 4 + 1``
latent frames, and only ``4k + 1`` frame counts round-trip exactly::

    pixels   0 | 1 2 3 4 | 5 6 7 8 | ...      97 frames
    latents  0 |    1    |    2    | ...      25 latents

A long generation is cut into windows of at most ``b = latents(base_frames)`` latents; every window
after the first starts with the last ``o = latents(overlap_frames)`` latents of the one before::

    window 0  [=========================]                          b latents
    window 1                      [ooooo====================]      o prefix + new
    window 2                                         [ooooo=========]   the last: L - (n-1)(b - o)

Asynchronous mode (``ar_step > 0``) denoises blocks of ``c = causal_block_size`` latents in a wave::

    block    0 1 2 3 4
    row 0    1 . . . .      each block starts ar_step rows after the one before it,
    row 5    6 1 . . .      so a window of g blocks costs T + (g - 1) * min(ar_step, T) rows
    row 10  11 6 1 . .      (T = steps); a synchronous window costs T rows.

Nothing here imports torch: the planner runs in CI on every story file in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

TIME_COMPRESSION = 4
SPACE_COMPRESSION = 16  # the VAE's 8 times the transformer's 2x2 patch


def latents(frames: int) -> int:
    """Latent frames for a generation of `frames` pixel frames."""
    return (frames - 1) // TIME_COMPRESSION + 1


def pixel_frames(latent_frames: int) -> int:
    """Pixel frames decoded from `latent_frames` latents (the causal VAE's first latent is one frame)."""
    return (latent_frames - 1) * TIME_COMPRESSION + 1


def is_generation_length(frames: int) -> bool:
    """True for the 4k+1 frame counts a generation produces exactly (others are floored by the pipeline)."""
    return frames >= 1 and (frames - 1) % TIME_COMPRESSION == 0


def windows(total_latents: int, base_latents: int, overlap_latents: int) -> list[int]:
    """Latent count of every window of one generation, as the diffusers DF pipelines compute them.

    >>> windows(60, 25, 5)   # 237 frames, base 97, overlap 17: the README worked example
    [25, 25, 20]
    """
    if total_latents <= base_latents:
        return [total_latents]
    step = base_latents - overlap_latents
    n_iter = 1 + (total_latents - base_latents - 1) // step + 1
    return [min(total_latents - i * step, base_latents) for i in range(n_iter)]


def prefix_latents(overlap_latents: int, causal_block_size: int) -> int:
    """Conditioning latents a window keeps: the pipelines drop `o % c` of the newest to align blocks."""
    return overlap_latents - overlap_latents % causal_block_size


def window_start_frames(num_frames: int, base_frames: int, overlap_frames: int, *, extend: bool = False) -> list[int]:
    """Where each window's new frames begin, as frame indices of the job's own frames (0 for the first).

    The pipelines append every later window's latents from index ``o`` on, whatever the causal block
    size kept as its prefix (a truncated prefix's missing latents are regenerated and then dropped), so
    window k >= 1 adds call latents from ``b + (k - 1)(b - o)``; latent n > 0 decodes to frames
    ``4n - 3 .. 4n``. An extension's call begins with the ``overlap_frames`` it continues from, which
    are not the job's frames::

        >>> window_start_frames(325, 97, 21)      # b = 25, o = 6: 97, then every 4 x 19 frames
        [0, 97, 173, 249]
        >>> window_start_frames(17 + 160, 97, 17, extend=True)
        [0, 80]
    """
    b, o = latents(base_frames), latents(overlap_frames)
    counts = windows(latents(num_frames), b, o)
    if extend:
        return [TIME_COMPRESSION * (b - o) * k for k in range(len(counts))]
    return [0] + [TIME_COMPRESSION * (b + (k - 1) * (b - o)) - TIME_COMPRESSION + 1 for k in range(1, len(counts))]


@lru_cache(maxsize=4096)
def denoising_rows(blocks: int, ready_blocks: int, steps: int, ar_step: int) -> int:
    """Rows of the DF step matrix for one window: the transformer runs once per row (twice with CFG).

    A replay, in integers, of `generate_timestep_matrix` in diffusers' SkyReels-V2 DF pipelines:
    each row advances every block that may move; in asynchronous mode a block trails the block
    before it by `ar_step` rows until that one is clean. That replay settles into a closed form (checked
    row by row against it in tests/plan/test_frames.py): the first waiting block takes `steps` rows and each
    later one finishes min(ar_step, steps) rows after the one before, so no setting can make planning loop.
    """
    waiting = max(blocks - ready_blocks, 0)
    if waiting == 0:
        return 0
    return steps + (waiting - 1) * min(ar_step, steps) if ar_step else steps


@dataclass(frozen=True)
class Window:
    """One window of a generation: its latents, the conditioning latents it starts from, its cost, and the
    job-relative index of the first frame it adds (see `window_start_frames`)."""

    latent_frames: int
    prefix_latents: int
    rows: int
    start_frame: int = 0


@dataclass(frozen=True)
class Generation:
    """The shape of one pipeline call."""

    num_frames: int  # passed to the pipeline as num_frames
    windows: tuple[Window, ...]

    @property
    def rows(self) -> int:
        return sum(window.rows for window in self.windows)


@dataclass(frozen=True)
class Geometry:
    """The settings the arithmetic depends on."""

    base_frames: int
    overlap_frames: int
    causal_block_size: int
    ar_step: int
    steps: int

    @property
    def base_latents(self) -> int:
        return latents(self.base_frames)

    @property
    def overlap_latents(self) -> int:
        return latents(self.overlap_frames)


def generation(num_frames: int, geometry: Geometry, *, extend: bool = False, start_image: bool = False,
               end_image: bool = False) -> Generation:
    """Windows and cost of one call; `extend` starts from `overlap_frames` frames of video (V2V).

    For an extension the first window, too, begins with the (block-aligned) overlap prefix; for
    image-to-video the first window begins with the image's one latent. An end image is one more
    latent the I2V pipeline appends to the schedule as an extra block (measured: 17 frames at 4 steps
    and ar_step 2 run 12 rows, not 10).
    """
    b, o, c = geometry.base_latents, geometry.overlap_latents, geometry.causal_block_size
    counts = windows(latents(num_frames), b, o)
    starts = window_start_frames(num_frames, geometry.base_frames, geometry.overlap_frames, extend=extend)
    result = []
    for index, count in enumerate(counts):
        if index > 0 or extend:
            prefix = prefix_latents(o, c)
        elif start_image:
            prefix = 1
        else:
            prefix = 0
        blocks, ready = count // c, prefix // c
        if end_image and index == len(counts) - 1:
            blocks += 1
        result.append(Window(count, prefix, denoising_rows(blocks, ready, geometry.steps, geometry.ar_step),
                             starts[index]))
    return Generation(num_frames, tuple(result))


def attention_mask_bytes(latent_frames: int, width: int, height: int) -> int:
    """Bytes of the dense boolean mask that block-causal attention builds for one transformer call on a window.

    diffusers' SkyReels-V2 transformer materialises a (tokens x tokens) bool mask whenever its
    ``num_frame_per_block`` is above 1, and an explicit mask rules out flash attention. Tokens are
    latents x (height / 16) x (width / 16): 51,000 for a 97-frame window at 540p (2.4 GiB), 111,600 for
    121 frames at 720p (11.6 GiB).
    """
    tokens = latent_frames * (height // SPACE_COMPRESSION) * (width // SPACE_COMPRESSION)
    return tokens * tokens


def transformer_calls(rows: int, guidance: float) -> int:
    """Transformer forward passes: one per row, two with classifier-free guidance."""
    return rows * (2 if guidance > 1 else 1)


def window_problem(num_frames: int, geometry: Geometry, *, extend: bool = False) -> str | None:
    """Why the windows of this call would silently break with this causal_block_size, or None (the compiler says
    which settings or lengths to use instead, each tried first).

    With c > 1 every window's latent count must be divisible by c (otherwise its trailing latents are
    never denoised and stay noise), and the last window must have a block to generate beyond its prefix
    (otherwise the pipeline fails with an empty stack).
    """
    c = geometry.causal_block_size
    if c == 1:
        return None
    counts = windows(latents(num_frames), geometry.base_latents, geometry.overlap_latents)
    if (len(counts) > 1 or extend) and prefix_latents(geometry.overlap_latents, c) == 0:
        return (f"overlap_frames {geometry.overlap_frames} ({geometry.overlap_latents} latents) is less than one block "
                f"of causal_block_size {c}: the pipeline would drop the whole overlap and continue from nothing")
    if len(counts) > 1 and geometry.base_latents % c:
        return (f"its full windows of base_frames {geometry.base_frames} ({geometry.base_latents} latents) are never "
                f"divisible by causal_block_size {c}")
    for index, count in enumerate(counts):
        if count % c:
            which = "the last window" if index == len(counts) - 1 and len(counts) > 1 else (
                "the window" if len(counts) == 1 else f"window {index + 1} of {len(counts)}")
            return (f"{which} would have {count} latents, not divisible by causal_block_size {c}, "
                    f"so its last {count % c} latents would stay pure noise")
    prefix = prefix_latents(geometry.overlap_latents, c) if (len(counts) > 1 or extend) else 0
    if counts[-1] - prefix < c:
        return f"the last window would have no block of {c} latents to generate beyond its {prefix}-latent prefix"
    return None


def nearest(requested: int, valid: Callable[[int], bool], *, limit: int = 1_000) -> tuple[int | None, int | None]:
    """The nearest valid counts at or below and at or above `requested` (None where there is none), looked for
    within `limit` of it, and below that among the `limit` shortest counts.

    Valid lengths repeat every 4 x (base - overlap) latents' worth of frames, under 4 x base_frames, so a
    `limit` past that finds every one there is; the shortest counts hold the lengths of one window. The bound
    keeps a setting with no valid long length from scanning (and splitting into windows) tens of thousands.
    """
    below = next((n for n in range(requested, max(requested - limit, 0), -1) if valid(n)), None)
    if below is None:
        below = next((n for n in range(min(requested, limit), 0, -1) if valid(n)), None)
    above = next((n for n in range(max(requested, 1), requested + limit) if valid(n)), None)
    return below, above


def snap(requested: int, valid: Callable[[int], bool], *, limit: int = 1_000) -> int | None:
    """The valid count nearest to `requested`; a tie goes to the longer one."""
    below, above = nearest(requested, valid, limit=limit)
    if below is None:
        return above
    if above is None:
        return below
    return above if above - requested <= requested - below else below
