"""The folder door itself, both ways it works: by descriptor (openat, O_NOFOLLOW) and by looking at each
component before use (platforms without openat)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from storyforge import confined
from storyforge.confined import Folder, Refused


@pytest.fixture(params=["descriptors", "lstat"])
def kept(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Folder:
    if request.param == "lstat":
        monkeypatch.setattr(confined, "_AT", False)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret", encoding="utf-8")
    folder = Folder.open(tmp_path / "kept", create=True, nonce="n0nce")
    yield folder
    folder.close()


def test_reads_take_regular_files_up_to_a_bound_and_refuse_the_rest(kept: Folder, tmp_path: Path) -> None:
    kept.write_text("a/b.json", '{"x": 1}')
    assert kept.read_json("a/b.json", 100) == {"x": 1}
    kept.write(Path("big"), b"x" * 5000)
    with pytest.raises(Refused, match="it is larger than 1 KB"):
        kept.read("big", 1000)
    os.symlink(tmp_path / "outside" / "secret.txt", kept.path / "link.txt")
    os.mkfifo(kept.path / "fifo")
    os.symlink(tmp_path / "outside", kept.path / "dir")
    for name, what in [("link.txt", "a symbolic link"), ("fifo", "not a regular file (a FIFO, device or socket)"),
                       ("dir/secret.txt", "a symbolic link")]:
        with pytest.raises(Refused) as refused:
            kept.read(name, 100)
        shown = kept.path / (name.split("/")[0] if "/" in name else name)
        assert str(refused.value).startswith(f"refusing to use {shown}: it is {what}, and storyforge follows no links")
    with pytest.raises(FileNotFoundError):
        kept.read("missing", 10)
    kept.write_text("deep.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        kept.read_json("deep.json", 10**6)
    kept.write_text("many.json", "[" + ",".join("1" * 20) + "]")
    with pytest.raises(ValueError, match="it holds more than 10 entries"):
        kept.read_json("many.json", 10**6, items=10)


def test_writes_are_staged_beside_and_renamed_and_never_go_through_a_link(kept: Folder, tmp_path: Path) -> None:
    kept.write_text("clips/a.txt", "one")
    assert (kept.path / "clips" / "a.txt").read_text() == "one"
    kept.write_text("clips/a.txt", "two")
    assert sorted(os.listdir(kept.path / "clips")) == ["a.txt"]  # no temporary left
    os.symlink(tmp_path / "outside" / "secret.txt", kept.path / "clips" / "b.txt")
    os.symlink(tmp_path / "outside", kept.path / "takes")
    for name in ("clips/b.txt", "takes/x.txt"):
        with pytest.raises(Refused, match="it is a symbolic link"):
            kept.write_text(name, "evil")
    assert (tmp_path / "outside" / "secret.txt").read_text() == "secret"
    assert sorted(os.listdir(tmp_path / "outside")) == ["secret.txt"]
    with kept.staged("clips/c.txt", suffix=".mp4") as temporary:
        assert temporary.name == ".c.txt.n0nce.mp4"
        temporary.write_text("by name")
    assert (kept.path / "clips" / "c.txt").read_text() == "by name"
    mode = stat.S_IMODE(os.stat(kept.path / "clips" / "c.txt").st_mode)
    assert mode == 0o666 & ~_umask()  # what open() gives; the process umask was never changed


def _umask() -> int:
    import subprocess
    import sys

    return int(subprocess.run([sys.executable, "-c", "import os; print(os.umask(0))"], capture_output=True,
                              text=True, check=True).stdout)


def test_removing_never_follows_and_a_staged_file_swapped_is_refused(kept: Folder, tmp_path: Path) -> None:
    os.symlink(tmp_path / "outside", kept.path / "scratch-link")
    kept.remove_folder("scratch-link")  # the link goes, never what it points to
    assert not os.path.lexists(kept.path / "scratch-link")
    assert (tmp_path / "outside" / "secret.txt").exists()
    os.symlink(tmp_path / "outside" / "secret.txt", kept.path / "x")
    assert kept.remove("x") and (tmp_path / "outside" / "secret.txt").exists()
    with pytest.raises(Refused, match="no longer the file storyforge was writing"), kept.staged("y") as temporary:
        temporary.unlink()
        temporary.symlink_to(tmp_path / "outside" / "secret.txt")
    assert not os.path.lexists(kept.path / "y")
    with kept.scratch("stitch") as scratch:
        assert scratch.name == ".stitch-n0nce" and stat.S_IMODE(scratch.stat().st_mode) == 0o700
        (scratch / "w.mp4").write_bytes(b"w")
    assert not scratch.exists()
    with pytest.raises(Refused, match="storyforge keeps files only below its own folders"):
        kept.read("../outside/secret.txt", 100)


def test_a_name_no_file_system_can_be_asked_about_is_refused_not_a_crash(tmp_path: Path) -> None:
    with Folder.open(tmp_path) as folder:
        for call in (lambda: folder.stat("clips/\ud800.mp4"), lambda: folder.read("\udfff", 10),
                     lambda: folder.write_text("a/\ud800", "x")):
            with pytest.raises(Refused) as refused:
                call()
            assert str(refused.value).endswith(": it is not a file name storyforge writes")
    assert list(tmp_path.iterdir()) == []
