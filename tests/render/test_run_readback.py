"""run.json read back by the typed reader (storyforge.readback): the driver, and where each take and keyframe was
made, as the writer (storyforge.report) spells them; a hand-edited value of the wrong shape is dropped, no crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyforge.confined import Folder
from storyforge.readback import read_run
from storyforge.report import Host, JobRecord, KeyframeRecord, RunReport

WORKER, DRIVER = Host("gpu-3", 777), Host("head", 4242)


def written(folder: Path) -> dict:
    """run.json of a film whose keyframe and first take a worker made, and whose second take came from the cache."""
    take1 = JobRecord("s/a", "k1", "rendered", "takes/s__a/take1.mp4", 2.0, 10.0, 12.0, take=1, rendered_by=WORKER)
    take2 = JobRecord("s/a", "k2", "cached", "takes/s__a/take2.mp4", 0.0, 12.0, 12.0, take=2)
    job = JobRecord("s/a", "k1", "rendered", "clips/s__a.mp4", 2.0, 10.0, 12.0, takes=(take1, take2),
                    rendered_by=WORKER)
    keyframe = KeyframeRecord("s/a", "p", "rendered", "keyframes/s__a.png", 1.5, None, 8.0, 9.5, WORKER)
    data = RunReport(out=folder, backend="skyreels-df", jobs=[job], keyframes=[keyframe], driver=DRIVER).to_json()
    assert data["keyframes"] == [{"id": "s/a", "key": "p", "status": "rendered", "image": "keyframes/s__a.png",
                                  "seconds": 1.5, "started": 8.0, "finished": 9.5,
                                  "rendered_by": {"host": "gpu-3", "pid": 777}}]
    return data


def read(folder: Path, data: dict):  # type: ignore[no-untyped-def]
    (folder / "run.json").write_text(json.dumps(data), encoding="utf-8")
    with Folder.open(folder) as out:
        return read_run(out)


def test_where_each_take_and_keyframe_was_made_reads_back_as_written(tmp_path: Path) -> None:
    run = read(tmp_path, written(tmp_path))
    assert run.found and run.driver == DRIVER
    [keyframe] = run.keyframes
    assert (keyframe.id, keyframe.status, keyframe.image, keyframe.started, keyframe.finished, keyframe.rendered_by) \
        == ("s/a", "rendered", "keyframes/s__a.png", 8.0, 9.5, WORKER)
    assert [(take.take, take.rendered_by) for take in run.job("s/a").takes] == [(1, WORKER), (2, None)]
    assert "keyframes/s__a.png" in run.files() and "review/s__a.keyframe.jpg" in run.files()


@pytest.mark.parametrize("host", [None, "gpu-3", [], {"host": "gpu-3"}, {"pid": 777}, {"host": 3, "pid": 777},
                                  {"host": "gpu-3", "pid": -1}, {"host": "gpu-3", "pid": True},
                                  {"host": "gpu-3", "pid": 7.5}, {"host": "x" * 5000, "pid": 777},
                                  {"host": "\ud800", "pid": 777}])
def test_a_hand_edited_host_is_dropped(tmp_path: Path, host: object) -> None:
    data = written(tmp_path)
    data["driver"] = data["keyframes"][0]["rendered_by"] = data["jobs"][0]["takes"][0]["rendered_by"] = host
    data["keyframes"][0]["started"] = "yesterday"
    run = read(tmp_path, data)
    assert run.found and run.driver is None
    assert [(k.image, k.rendered_by, k.started, k.finished) for k in run.keyframes] == [
        ("keyframes/s__a.png", None, None, 9.5)]
    assert run.job("s/a").takes[0].rendered_by is None


def test_a_keyframe_line_without_a_plain_image_is_left_out(tmp_path: Path) -> None:
    data = written(tmp_path)
    data["keyframes"] += [{"id": "s/b", "image": "../outside.png"}, {"id": "s/c"}, "keyframes/s__d.png"]
    assert [k.image for k in read(tmp_path, data).keyframes] == ["keyframes/s__a.png"]
