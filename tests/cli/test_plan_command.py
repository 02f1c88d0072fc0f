"""`storyforge plan`'s table: the columns that stay at 80 and 50 columns, and the GPU time and memory estimate
for the film's own models, saying what it assumes."""

from __future__ import annotations

from conftest import EXAMPLES, ROOT, run_cli

# -- the plan table in 80 columns -------------------------------------------------------------------------------------

def test_plan_table_in_80_columns_keeps_shot_frames_and_start_whole() -> None:
    narrow = run_cli("plan", "examples/stories/swan-lake.yaml", env={"COLUMNS": "80"}, cwd=ROOT)
    assert narrow.returncode == 0, narrow.stderr
    table = [line for line in narrow.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and all(len(line) <= 80 for line in table)
    assert "…" not in narrow.stdout
    header = table[1]
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == ["shot", "kind", "frames", "calls", "in",
                                                                       "start"]
    assert "│ flight/takeoff │ i2v    │ 97 → 97 │    60 │ fade 24f      │ 00:00:14:03 │" in table
    assert "left out at 80 columns: drift, windows (latents); plan --json has them" in narrow.stdout.splitlines()
    wide = run_cli("plan", "examples/stories/swan-lake.yaml", env={"COLUMNS": "140"}, cwd=ROOT)
    header = [line for line in wide.stdout.splitlines() if line.startswith("┃")][0]
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == [
        "shot", "kind", "frames", "drift", "windows (latents)", "calls", "in", "start"]
    assert "left out" not in wide.stdout


def test_plan_table_in_50_columns_still_shows_shot_frames_and_start() -> None:
    narrow = run_cli("plan", "examples/stories/swan-lake.yaml", env={"COLUMNS": "50"}, cwd=ROOT)
    header = [line for line in narrow.stdout.splitlines() if line.startswith("┃")][0]
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == ["shot", "frames", "start"]
    assert "│ flight/takeoff │ 97 → 97 │ 00:00:14:03 │" in narrow.stdout


# -- the GPU estimate -------------------------------------------------------------------------------------------------

def test_gpu_estimate_is_for_the_films_own_models_and_says_what_it_assumes(write_story, story_dir) -> None:
    done = run_cli("plan", str(EXAMPLES / "swan-lake.yaml"), cwd=ROOT)
    assert done.stdout.splitlines()[-5:] == [
        "7 shots, 521 frames = 21.71s (00:00:21:17), 420 transformer calls",
        "rough GPU time on one H100: df-1.3b-540p ≈ 3 min",
        "  assumes 0.45 s a call for df-1.3b-540p on a full 960x544 window of 97 frames",
        "  (other window sizes scale as tokens^1.5; loading the model and decoding are not counted)",
        # the largest window is 26 latents: an end image is one more (storyforge.plan.memory)
        "GPU memory for df-1.3b-540p at 960x544: ≈ 11.6 GiB with offload model (weights 13.7 GiB, activations of "
        "the largest window 6.3 GiB, VAE decode 1.3 GiB, tiled); none 25.0 GiB, sequential 9.3 GiB",
    ]
    # a 14B film at 540p: one line for its model, none for a 720p preset computed at the wrong size
    done = run_cli("plan", str(EXAMPLES / "swan-lake.yaml"), "--model", "df-14b-540p", cwd=ROOT)
    assert "rough GPU time on one H100: df-14b-540p ≈ 22 min" in done.stdout.splitlines()
    assert "720p" not in done.stdout
    # a 720p film whose first shot uses the 1.3B model (a window of 25 latents of 3600 tokens, not 2040: each
    # call costs (3600 / 2040)^1.5 = 2.34 times its 0.45 s) and whose second uses the 14B 720p model
    write_story("storyforge: 1\ntitle: Mixed\nrender: {resolution: 720p}\nscenes:\n  - id: s\n    shots:\n"
                "      - {id: a, prompt: a fox, duration: 177f}\n"
                "      - {id: b, prompt: a fox runs, duration: 5s, render: {model: df-14b-720p}}\n")
    lines = run_cli("plan", "film.yaml", cwd=story_dir).stdout.splitlines()
    assert lines[-7:] == [
        "2 shots, 298 frames = 12.42s (00:00:12:10), 180 transformer calls",
        "rough GPU time on one H100: df-1.3b-540p ≈ 2 min, df-14b-720p ≈ 6 min",  # 120 × 0.45 × 2.34; 60 × 6.5
        "  assumes 0.45 s a call for df-1.3b-540p on a full 960x544 window of 97 frames",
        "  assumes 6.5 s a call for df-14b-720p on a full 1280x720 window of 121 frames",
        "  (other window sizes scale as tokens^1.5; loading the model and decoding are not counted)",
        "GPU memory for df-1.3b-540p at 1280x720: ≈ 14.4 GiB with offload model (weights 13.7 GiB, activations of "
        "the largest window 10.7 GiB, VAE decode 1.3 GiB, tiled); none 25.5 GiB, sequential 13.7 GiB",
        "GPU memory for df-14b-720p at 1280x720: ≈ 65.3 GiB with offload model (weights 37.7 GiB, activations of "
        "the largest window 37.7 GiB, VAE decode 1.3 GiB, tiled); none 76.3 GiB, sequential 40.6 GiB"]
    hub = run_cli("plan", str(EXAMPLES / "minimal.yaml"), "--model", "someone/some-model", cwd=ROOT)
    assert hub.stdout.splitlines()[-1] == ("no GPU time estimate for someone/some-model: only the presets have "
                                           "measured speeds")
