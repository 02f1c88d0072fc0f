"""The clip cache: atomic entries, keys, corrupt entries discarded, keyframes re-encoded, leftovers swept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from surroundings import FILM, TOTAL

from storyforge import api
from storyforge.cache import Cache, CorruptEntry, default_root, entry_key
from storyforge.clipfile import count_frames, read_frames
from storyforge.plan.model import Job
from storyforge.render import render

STORY = """\
storyforge: 1
title: Cache
render: {resolution: 64x48, fps: 16, base_frames: 17, overlap_frames: 5}
scenes:
  - id: s
    shots:
      - id: a
        prompt: a fox
        duration: 13f
"""
IDENTITY = {"backend": "test", "version": 1}


@pytest.fixture
def job(write_story) -> Job:
    return api.plan(write_story(STORY)).jobs[0]


def frames(count: int = 13) -> np.ndarray:
    """A bar that moves one column a frame over a grey ramp: cheap, and every frame differs."""
    clip = np.tile(np.linspace(30, 220, 64, dtype=np.uint8)[None, None, :, None], (count, 48, 1, 3))
    for n in range(count):
        clip[n, :, n * 4: n * 4 + 4] = 255
    return clip


def put(cache: Cache, job: Job, key: str = "ab" * 32, keyframes: tuple[int, ...] = ()) -> object:
    return cache.put(key, frames(job.frames), job=job, fps=12, keyframes=keyframes, identity=IDENTITY, seconds=0.5)


def test_default_root_is_beside_the_story(tmp_path: Path) -> None:
    assert default_root(tmp_path / "film.yaml") == tmp_path.resolve() / ".storyforge" / "cache"


def test_the_entry_key_covers_the_backend_identity_and_the_job_key() -> None:
    key = entry_key(IDENTITY, "1" * 64)
    assert len(key) == 64
    assert key == entry_key(dict(IDENTITY), "1" * 64)
    assert key != entry_key({**IDENTITY, "version": 2}, "1" * 64)
    assert key != entry_key(IDENTITY, "2" * 64)


def test_put_then_get_returns_a_complete_entry(tmp_path: Path, job: Job) -> None:
    cache = Cache(tmp_path / "cache")
    entry = put(cache, job, keyframes=(4,))
    assert entry.folder == tmp_path / "cache" / "ab" / ("ab" * 32)
    assert sorted(p.name for p in entry.folder.iterdir()) == ["clip.mp4", "clip.verified", "meta.json"]
    meta = json.loads((entry.folder / "meta.json").read_text())
    assert {"job", "frames", "width", "height", "fps", "keyframes", "backend", "seconds", "created"} <= set(meta)
    assert (meta["job"], meta["frames"], meta["width"], meta["height"], meta["fps"]) == ("s/a", 13, 64, 48, 12)
    assert meta["keyframes"] == [4] and meta["backend"] == IDENTITY
    assert count_frames(entry.clip) == 13
    assert cache.get("ab" * 32) == entry
    assert cache.get("cd" * 32) is None
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []  # the staging folder was renamed into place


def test_a_lookup_hashes_a_clip_only_when_its_stat_changed(tmp_path: Path, job: Job,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An untouched clip is trusted by its stat (no byte read); a write of the same size is hashed and healed."""
    from storyforge import cache as cache_module

    cache = Cache(tmp_path / "cache")
    entry = put(cache, job)
    hashed: list[str] = []
    real = cache_module._sha256_of
    monkeypatch.setattr(cache_module, "_sha256_of", lambda handle: hashed.append(handle.name) or real(handle))
    assert Cache(tmp_path / "cache").get(entry.key) == entry and cache.get(entry.key) == entry
    assert hashed == []
    entry.clip.write_bytes(bytes(entry.clip.stat().st_size))  # garbage of the same size
    assert cache.get(entry.key) is None and len(hashed) == 1
    assert cache.discarded == [f"cache entry {entry.key[:12]} was discarded: its clip's content changed (its hash "
                               "does not match)"]


def test_a_finished_entry_is_kept_when_another_writer_finishes_the_same_key(tmp_path: Path, job: Job) -> None:
    cache = Cache(tmp_path / "cache")
    first = put(cache, job)
    again = cache.put("ab" * 32, frames(job.frames)[::-1].copy(), job=job, fps=12, keyframes=(), identity=IDENTITY,
                      seconds=9.0)
    assert again.meta["created"] == first.meta["created"] and again.seconds == 0.5
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


@pytest.mark.parametrize("damage", ["truncate clip", "delete clip", "garble meta", "delete meta"])
def test_a_damaged_entry_is_discarded_and_reported(tmp_path: Path, job: Job, damage: str) -> None:
    cache = Cache(tmp_path / "cache")
    entry = put(cache, job)
    clip, meta = entry.folder / "clip.mp4", entry.folder / "meta.json"
    if damage == "truncate clip":
        clip.write_bytes(clip.read_bytes()[:500])
    elif damage == "delete clip":
        clip.unlink()
    elif damage == "garble meta":
        meta.write_text("{not json")
    else:
        meta.unlink()
    assert cache.get(entry.key) is None
    assert not entry.folder.exists()
    assert cache.discarded and cache.discarded[0].startswith(f"cache entry {entry.key[:12]} was discarded: ")


def test_a_clip_that_decodes_to_the_wrong_count_is_discarded_when_read(tmp_path: Path, job: Job) -> None:
    cache = Cache(tmp_path / "cache")
    entry = put(cache, job)
    meta = dict(entry.meta, frames=14)  # same bytes on disk, but the meta promises one frame more
    (entry.folder / "meta.json").write_text(json.dumps(meta))
    lying = cache.get(entry.key)
    assert lying is not None and lying.frames == 14
    with pytest.raises(CorruptEntry):
        cache.read(lying)
    assert cache.get(entry.key) is None
    assert "decodes to 13 frames, not 14" in cache.discarded[-1]


def test_read_gives_the_decoded_frames(tmp_path: Path, job: Job) -> None:
    cache = Cache(tmp_path / "cache")
    decoded = cache.read(put(cache, job))
    assert decoded.shape == (13, 48, 64, 3)
    assert np.abs(decoded.astype(int) - frames().astype(int)).mean() < 3  # lossy, but close


def test_reencode_adds_keyframes_without_the_backend(tmp_path: Path, job: Job) -> None:
    cache = Cache(tmp_path / "cache")
    entry = put(cache, job)
    fresh = cache.reencode(entry, [4, 9])
    assert fresh.keyframes == (4, 9) and fresh.key == entry.key and fresh.seconds == entry.seconds
    assert cache.get(entry.key) == fresh
    assert count_frames(fresh.clip) == 13
    assert {0, 4, 9} <= set(_keyframe_indices(fresh.clip))  # x264 may add scene-cut keyframes of its own


def _keyframe_indices(path: Path) -> list[int]:
    import av

    with av.open(str(path)) as container:
        return [n for n, packet in enumerate(container.demux(container.streams.video[0]))
                if packet.size and packet.is_keyframe]


def test_writes_stay_under_the_root(tmp_path: Path, job: Job) -> None:
    root = tmp_path / "root"
    before = set(tmp_path.rglob("*"))
    cache = Cache(root)
    put(cache, job)
    cache.reencode(cache.get("ab" * 32), [3])
    cache.discard("ab" * 32, "test")
    new = set(tmp_path.rglob("*")) - before
    assert new and all(path == root or root in path.parents for path in new)


def test_leftovers_of_a_killed_writer_are_swept(tmp_path: Path, job: Job) -> None:
    """A staging folder whose process is dead is removed; a live writer's is left alone."""
    import socket

    root = tmp_path / "cache"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    stale = root / "tmp" / f"{host}-{int(dead.stdout)}-abcdef"
    live = root / "tmp" / f"{host}-{os.getpid()}-123456"
    for folder in (stale, live):
        folder.mkdir(parents=True)
        (folder / "clip.mp4.part").write_bytes(b"half")
    Cache(root)
    assert not stale.exists() and live.exists()



# -- the cache heals in a real render ---------------------------------------------------------------------------------



def _entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("[0-9a-f][0-9a-f]/*/meta.json"))


@pytest.mark.parametrize("damage", [
    "garbage clip of the same size", "meta is a list", "meta without a hash", "meta with a wrong type",
    "meta is a folder", "clip unreadable",
])
def test_a_damaged_cache_entry_is_discarded_with_a_notice_and_rendered_again(write_story, story_dir: Path,
                                                                             damage: str) -> None:
    story = write_story(FILM)
    out = story_dir / "out"
    first = render(api.plan(story), out=out, backend="animatic")
    frames = read_frames(first.film)
    meta_path = _entries(story_dir / ".storyforge" / "cache")[0]
    clip = meta_path.parent / "clip.mp4"
    meta = json.loads(meta_path.read_text())
    if damage == "garbage clip of the same size":
        clip.write_bytes(bytes(len(clip.read_bytes())))
    elif damage == "meta is a list":
        meta_path.write_text("[1, 2]")
    elif damage == "meta without a hash":
        meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "clip_sha256"}))
    elif damage == "meta with a wrong type":
        meta_path.write_text(json.dumps({**meta, "frames": "many"}))
    elif damage == "meta is a folder":
        meta_path.unlink()
        meta_path.mkdir()
    else:
        clip.unlink()
        clip.mkdir()
    second = render(api.plan(story), out=out, backend="animatic")
    assert second.rendered >= 1
    assert any("was discarded" in notice for notice in second.notices)
    assert count_frames(second.film) == TOTAL
    assert np.array_equal(read_frames(second.film), frames)  # the animatic is deterministic: the same film


def test_a_cache_that_cannot_be_written_is_one_clear_error(write_story, story_dir: Path) -> None:
    write_story(FILM)
    (story_dir / ".storyforge").mkdir()
    (story_dir / ".storyforge" / "cache").write_text("not a folder", encoding="utf-8")
    done = run_cli("render", "film.yaml", "--backend", "animatic", "--out", "out", cwd=story_dir)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: cannot write to the cache folder {story_dir.resolve() / '.storyforge' / 'cache'}: ")
    assert errors[0].endswith("(read-only?); make it writable, or render with --no-cache")
