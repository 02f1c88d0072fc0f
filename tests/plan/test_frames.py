"""The DF frame arithmetic: SkyReels' README cases, the async rules, the cost model, snapping."""

from __future__ import annotations

import pytest
from conftest import within
from hypothesis import given
from hypothesis import strategies as st

from storyforge.plan import frames as fx
from storyforge.plan.frames import denoising_rows

SYNC = fx.Geometry(base_frames=97, overlap_frames=17, causal_block_size=1, ar_step=0, steps=30)
ASYNC = fx.Geometry(base_frames=97, overlap_frames=17, causal_block_size=5, ar_step=5, steps=30)


@pytest.mark.parametrize("frames, expected", [
    (97, [25]),
    (237, [25, 25, 20]),
    (257, [25, 25, 25]),
    (289, [25, 25, 25, 13]),
    (377, [25, 25, 25, 25, 15]),
    (737, [25] * 9),
    (1457, [25] * 18),
])
def test_skyreels_readme_windows(frames: int, expected: list[int]) -> None:
    assert fx.windows(fx.latents(frames), 25, 5) == expected
    assert fx.pixel_frames(fx.latents(frames)) == frames


def test_readme_worked_example() -> None:
    # (237 - 97 - (97 - 17) x 1 + 17 - 1) // 4 + 1 = 20: the last window of a 237-frame generation
    assert (237 - 97 - (97 - 17) * 1 + 17 - 1) // 4 + 1 == 20
    assert fx.windows(fx.latents(237), fx.latents(97), fx.latents(17))[-1] == 20


@pytest.mark.parametrize("frames, expected", [(121, [31]), (257, [31, 31, 13]), (377, [31, 31, 31, 17])])
def test_720p_windows(frames: int, expected: list[int]) -> None:
    assert fx.windows(fx.latents(frames), 31, 5) == expected


def test_async_valid_lengths_are_20k_plus_17() -> None:
    valid = [n for n in range(1, 1500) if fx.is_generation_length(n) and fx.window_problem(n, ASYNC) is None]
    assert valid == list(range(17, 1500, 20))


def test_cost_model_matches_the_research_examples() -> None:
    assert fx.generation(257, SYNC).rows == 90
    assert [w.rows for w in fx.generation(257, ASYNC).windows] == [50, 45, 45]
    assert fx.transformer_calls(140, guidance=6.0) == 280
    assert fx.transformer_calls(140, guidance=1.0) == 140


@given(blocks=st.integers(1, 12), ready=st.integers(0, 3), steps=st.integers(1, 40), ar_step=st.integers(0, 45))
def test_rows_follow_the_closed_form(blocks: int, ready: int, steps: int, ar_step: int) -> None:
    ready = min(ready, blocks - 1)
    generated = blocks - ready
    expected = steps + (generated - 1) * min(ar_step, steps) if ar_step else steps
    assert fx.denoising_rows(blocks, ready, steps, ar_step) == expected


@given(frames=st.integers(1, 3000).map(lambda k: 4 * k + 1), base=st.sampled_from([17, 37, 57, 97, 121]),
       overlap=st.sampled_from([5, 9, 17, 37]))
def test_windows_cover_the_generation(frames: int, base: int, overlap: int) -> None:
    b, o = fx.latents(base), fx.latents(overlap)
    if o >= b:
        return
    counts = fx.windows(fx.latents(frames), b, o)
    assert all(1 <= count <= b for count in counts)
    assert counts[0] + sum(count - o for count in counts[1:]) == fx.latents(frames)
    if len(counts) > 1:
        assert o + 1 <= counts[-1] <= b


def test_the_last_window_must_have_a_block_to_generate() -> None:
    geometry = fx.Geometry(97, 37, 5, 5, 30)  # o = 10, prefix 10: a last window of 10 has nothing new
    assert fx.window_problem(fx.pixel_frames(25 + 15 + 0), geometry) is None
    # an extension of 5 latents after a 10-latent prefix: nothing new for the pipeline to generate
    assert fx.window_problem(fx.pixel_frames(5), geometry, extend=True) == (
        "the last window would have no block of 5 latents to generate beyond its 10-latent prefix")


def test_snap_prefers_the_nearest_and_the_longer_on_a_tie() -> None:
    assert fx.snap(96, fx.is_generation_length) == 97
    assert fx.snap(95, fx.is_generation_length) == 97
    assert fx.snap(94, fx.is_generation_length) == 93
    assert fx.nearest(289, lambda n: fx.is_generation_length(n) and fx.window_problem(n, ASYNC) is None) == (277, 297)


def test_an_end_image_is_one_more_block_in_the_schedule() -> None:
    # measured on the real I2V pipeline: 17 frames, 4 steps -> 8/12/16/20 rows for ar_step 1/2/3/5
    rows = [fx.generation(17, fx.Geometry(17, 5, 1, ar, 4), start_image=True, end_image=True).rows
            for ar in (1, 2, 3, 5)]
    assert rows == [8, 12, 16, 20]


def test_window_start_frames_follow_the_pipelines() -> None:
    # diffusers appends each later window from latent o on, whatever the causal block kept as prefix
    assert fx.window_start_frames(325, 97, 21) == [0, 97, 173, 249]
    assert fx.window_start_frames(737, 97, 17) == [0] + [97 + 80 * k for k in range(8)]
    assert fx.window_start_frames(17 + 240, 97, 17, extend=True) == [0, 80, 160]
    assert fx.window_start_frames(97, 97, 17) == [0]
    assert [w.start_frame for w in fx.generation(257, ASYNC).windows] == [0, 97, 177]


@given(frames=st.integers(1, 800).map(lambda k: 4 * k + 1), base=st.sampled_from([17, 37, 97, 121]),
       overlap=st.sampled_from([5, 17, 21, 37]))
def test_each_window_starts_at_its_first_new_latent(frames: int, base: int, overlap: int) -> None:
    b, o = fx.latents(base), fx.latents(overlap)
    if o >= b:
        return
    counts = fx.windows(fx.latents(frames), b, o)
    starts = fx.window_start_frames(frames, base, overlap)
    first_latents = [0] + [counts[0] + sum(c - o for c in counts[1:k]) for k in range(1, len(counts))]
    assert starts == [0 if n == 0 else fx.pixel_frames(n) for n in first_latents]  # latent n begins at 4n - 3
    assert starts[-1] < frames



# -- the denoising schedule's closed form -----------------------------------------------------------------------------

def _replayed_rows(blocks: int, ready: int, steps: int, ar_step: int) -> int:
    """The row-by-row replay of diffusers' generate_timestep_matrix that denoising_rows' closed form stands for."""
    done = steps + 1
    row = [done if i < ready else 0 for i in range(blocks)]
    count = 0
    while not all(value >= steps for value in row):
        new = [0] * blocks
        for i in range(blocks):
            new[i] = row[i] + 1 if i == 0 or row[i - 1] >= steps else new[i - 1] - ar_step
        row = [min(max(value, 0), done) for value in new]
        count += 1
    return count


def test_the_df_arithmetic_is_constant_time_and_equals_the_replay() -> None:
    for blocks in range(0, 12):
        for ready in range(0, blocks + 2):
            for steps in range(1, 20):
                for ar_step in range(0, 24):
                    assert denoising_rows(blocks, ready, steps, ar_step) == _replayed_rows(blocks, ready, steps,
                                                                                           ar_step)
    with within():
        assert denoising_rows(10**9, 0, 1000, 1000) == 1000 + (10**9 - 1) * 1000
