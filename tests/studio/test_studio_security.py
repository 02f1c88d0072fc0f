"""The studio's doors, tried with raw HTTP: the token, the Host header (DNS rebinding), the Origin of writes, media
paths that try to leave the manifest, links in the output folder, story text in the page, and concurrent writes."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from running_studio import Session, running_studio

from storyforge import api
from storyforge.outdir import read_manifest

HOSTILE = """<script>alert("pwned")</script> & <img src=x onerror=alert(1)>"""
STORY = f"""\
storyforge: 1
title: Guarded
render: {{resolution: 128x80, fps: 24, base_frames: 17, overlap_frames: 5, takes: 3}}
scenes:
  - id: s
    shots:
      - id: a
        prompt: {json.dumps(HOSTILE)}
        duration: 9f
      - id: b
        prompt: the second shot
        duration: 9f
"""


def request(studio: Session, method: str, path: str, *, body: object = None, headers: dict[str, str] | None = None,
            token: str | None = "bearer") -> tuple[int, dict[str, str], bytes]:
    """One raw request: `path` is sent exactly as written (no client-side normalisation of `..` or `%2e`)."""
    connection = http.client.HTTPConnection("127.0.0.1", studio.port, timeout=60)
    sent = {"Host": f"127.0.0.1:{studio.port}"}
    if token == "bearer":
        sent["Authorization"] = f"Bearer {studio.token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in sent.items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(data or b"")))
    connection.endheaders(data)
    answer = connection.getresponse()
    content = answer.read()
    connection.close()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, content


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("guarded")
    story = folder / "film.yaml"
    story.write_text(STORY, encoding="utf-8")
    out = api.render(api.plan(story), backend="animatic").out
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.mp4").write_bytes(b"SECRET" * 100)
    with running_studio(story) as studio:
        yield {"studio": studio, "story": story, "out": out, "outside": outside}


def test_no_token_or_a_wrong_one_is_refused_everywhere(guarded) -> None:
    studio: Session = guarded["studio"]
    for path in ("/", "/api/film", "/api/work", "/static/studio.js", "/media/film.mp4"):
        assert request(studio, "GET", path, token=None)[0] == 401, path
        assert request(studio, "GET", path, token=None, headers={"Authorization": "Bearer wrong"})[0] == 401, path
        assert request(studio, "GET", f"{path}?token=wrong", token=None)[0] == 401, path
        assert request(studio, "GET", path, token=None, headers={
            "Cookie": f"storyforge-studio-{studio.port}=wrong"})[0] == 401, path
    status, _, body = request(studio, "POST", "/api/pick", body={"shot": "s/a", "take": 2}, token=None)
    assert status == 401 and not guarded["story"].with_name("film.lock.json").exists()


def test_the_token_in_the_address_becomes_a_cookie(guarded) -> None:
    studio: Session = guarded["studio"]
    status, headers, _ = request(studio, "GET", f"/?token={studio.token}", token=None)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"storyforge-studio-{studio.port}={studio.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, headers, page = request(studio, "GET", "/", token=None, headers={"Cookie": cookie.split(";")[0]})
    assert status == 200 and b"<video" in page
    # the page holds no text of the story (the script writes it as text) and no inline script
    assert b"pwned" not in page and b"<script>" not in page and b"onerror" not in page
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    status, _, data = request(studio, "GET", "/api/film")
    film = json.loads(data)
    assert status == 200 and film["shots"][0]["prompt"].startswith(HOSTILE)  # JSON, for textContent
    assert [shot["id"] for shot in film["shots"]] == ["s/a", "s/b"] and film["stale"] is False
    assert [take["take"] for take in film["shots"][0]["takes"]] == [1, 2, 3]
    assert film["shots"][0]["takes"][1] | {"note": "", "rejected": False} == film["shots"][0]["takes"][1]
    assert film["shots"][0]["takes"][1]["clip"] == "takes/s__a/take2.mp4"


def test_a_foreign_host_is_refused(guarded) -> None:
    studio: Session = guarded["studio"]
    for host in ("evil.example", f"evil.example:{studio.port}", "127.0.0.1.evil.example", "localhost.evil.example",
                 "", "10.0.0.1"):
        status, headers, _ = request(studio, "GET", "/api/film", headers={"Host": host})
        assert status == 403, host
        assert "content-security-policy" in headers
    for host in (f"localhost:{studio.port}", f"[::1]:{studio.port}", "127.0.0.1:9999"):  # ssh -L may change the port
        assert request(studio, "GET", "/api/film", headers={"Host": host})[0] == 200, host


def test_a_write_from_another_origin_is_refused(guarded) -> None:
    studio: Session = guarded["studio"]
    lock = guarded["story"].with_name("film.lock.json")
    pick = {"shot": "s/b", "take": 3}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": f"http://evil.example:{studio.port}"},
                    {"Origin": "null"}, {"Origin": f"https://127.0.0.1:{studio.port}"},
                    {"Referer": "http://evil.example/page"}):
        status, _, _ = request(studio, "POST", "/api/pick", body=pick, headers=headers)
        assert status == 403, headers
    assert not lock.exists() or "s/b" not in json.loads(lock.read_text()).get("picks", {})
    # the cookie alone (what a foreign page's form would carry) is not enough to write
    status, _, _ = request(studio, "POST", "/api/pick", body=pick, token=None, headers={
        "Cookie": f"storyforge-studio-{studio.port}={studio.token}", "Origin": f"http://127.0.0.1:{studio.port}"})
    assert status == 401
    status, _, _ = request(studio, "POST", "/api/pick", body=None, headers={"Content-Type": "text/plain"})
    assert status == 415
    status, _, body = request(studio, "POST", "/api/pick", body=pick,
                              headers={"Origin": f"http://127.0.0.1:{studio.port}"})
    assert status == 200, body
    assert json.loads(lock.read_text())["picks"]["s/b"] == 3
    status, _, body = request(studio, "POST", "/api/pick", body={"shot": "s/b", "take": 9})
    assert status == 400 and json.loads(body)["error"] == "film.yaml:10: s/b: has takes 1 to 3; there is no take 9"
    assert request(studio, "POST", "/api/pick", body=pick, token=None)[0] == 401  # ?token= also works:
    assert request(studio, "POST", f"/api/pick?token={studio.token}", body=pick, token=None)[0] == 200


@pytest.mark.parametrize("path", [
    "/media/../run.json", "/media/../../film.yaml", "/media/%2e%2e/film.yaml", "/media/%2E%2E%2Ffilm.yaml",
    "/media/takes/s__a/..%2f..%2frun.json", "/media/takes/s__a/%2e%2e/%2e%2e/plan.json", "/media/%2Fetc%2Fpasswd",
    "/media//etc/passwd", "/media/takes%5cs__a%5ctake1.mp4", "/media/./film.mp4", "/media/film.mp4%00.png",
    "/media/run.json", "/media/.storyforge-out.json", "/media/review.html", "/static/../film.yaml",
    "/static/%2e%2e%2fserver.py", "/media/takes/s__a/take1.mp4/..", "/media/takes/s__a",
])
def test_media_paths_never_leave_the_manifest(guarded, path: str) -> None:
    status, _, body = request(guarded["studio"], "GET", path)
    assert status in (400, 404), (path, status)
    assert b"storyforge" not in body.lower().replace(b"not a file of this film", b"")


def test_listed_media_is_served_with_byte_ranges(guarded) -> None:
    studio, out = guarded["studio"], guarded["out"]
    clip = (out / "takes/s__a/take2.mp4").read_bytes()
    status, headers, body = request(studio, "GET", "/media/takes/s__a/take2.mp4?v=1")
    assert (status, body, headers["content-type"], headers["accept-ranges"]) == (200, clip, "video/mp4", "bytes")
    status, headers, body = request(studio, "GET", "/media/takes/s__a/take2.mp4", headers={"Range": "bytes=100-199"})
    assert (status, body, headers["content-range"]) == (206, clip[100:200], f"bytes 100-199/{len(clip)}")
    status, _, body = request(studio, "GET", "/media/takes/s__a/take2.mp4", headers={"Range": "bytes=-50"})
    assert (status, body) == (206, clip[-50:])
    assert request(studio, "GET", "/media/film.mp4", headers={"Range": f"bytes={len(clip) * 99}-"})[0] == 416
    # a file in the folder that storyforge did not write is not served, even with a media name
    (out / "takes/s__a/mine.mp4").write_bytes(b"not storyforge's")
    assert request(studio, "GET", "/media/takes/s__a/mine.mp4")[0] == 404


def test_a_link_in_the_output_folder_is_not_followed(guarded, tmp_path: Path) -> None:
    studio, out, outside = guarded["studio"], guarded["out"], guarded["outside"]
    assert "takes/s__b/take3.mp4" in read_manifest(out)
    folder = out / "takes/s__b"
    kept = tmp_path / "kept"
    shutil.copytree(folder, kept)  # put back afterwards: the other tests render into this folder
    try:
        target = folder / "take3.mp4"
        target.unlink()
        target.symlink_to(outside / "secret.mp4")  # a listed name, now a link out of the folder
        status, _, body = request(studio, "GET", "/media/takes/s__b/take3.mp4")
        assert status == 404 and b"SECRET" not in body
        shutil.rmtree(folder)
        folder.symlink_to(outside)  # a listed folder, now a link
        os.link(outside / "secret.mp4", outside / "take1.mp4")
        status, _, body = request(studio, "GET", "/media/takes/s__b/take1.mp4")
        assert status == 404 and b"SECRET" not in body
    finally:
        if folder.is_symlink():
            folder.unlink()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(kept, folder)


@pytest.mark.parametrize("damage", [
    {"jobs": 5}, {"jobs": [{"id": "s/a", "key": 7, "takes": "all"}], "seams": [{"job": "s/a", "frame": "x"}]},
    {"seams": 3, "backend": ["x"]}, {"jobs": [None, {"id": ["s/a"]}], "seams": [{"job": "s/a", "frame": 10**40}]},
])
def test_a_damaged_run_json_shows_as_not_rendered(guarded, damage: dict) -> None:
    studio, out = guarded["studio"], guarded["out"]
    run = out / "run.json"
    kept = run.read_bytes()
    try:
        run.write_text(json.dumps(damage), encoding="utf-8")
        status, _, body = request(studio, "GET", "/api/film")
        assert status == 200, body
        film = json.loads(body)
        assert film["stale"] is True and film["to_render"] == ["s/a", "s/b"]
    finally:
        run.write_bytes(kept)


def test_concurrent_writes_lose_nothing_and_leave_the_last_pick(guarded) -> None:
    studio, story = guarded["studio"], guarded["story"]
    failures: list[object] = []

    def picks() -> None:
        for n in range(12):
            status, _, body = request(studio, "POST", "/api/pick", body={"shot": "s/a", "take": 1 + n % 3})
            if status != 200:
                failures.append(body)
        status, _, body = request(studio, "POST", "/api/pick", body={"shot": "s/a", "take": 2})  # the last pick
        if status != 200:
            failures.append(body)

    def notes() -> None:
        for n in range(12):
            status, _, body = request(studio, "POST", "/api/note", body={"shot": "s/b", "take": 1 + n % 3,
                                                                          "text": f"note {n}"})
            if status != 200:
                failures.append(body)

    threads = [threading.Thread(target=picks), threading.Thread(target=notes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert failures == []
    lock = json.loads(story.with_name("film.lock.json").read_text())  # valid JSON: never a torn write
    assert lock["picks"]["s/a"] == 2
    assert lock["notes"]["s/b"] == {"1": "note 9", "2": "note 10", "3": "note 11"}  # no update lost
    assert api.plan(story).job("s/a").take == 2


def test_a_render_from_a_terminal_holds_the_folder_and_the_page_says_the_studio_waits(guarded) -> None:
    from storyforge import outdir

    studio, story, out = guarded["studio"], guarded["story"], guarded["out"]
    holding = threading.Event()
    release = threading.Event()

    def terminal() -> None:  # what `storyforge render` holds while it writes the folder
        with outdir.claimed(out, story, []):
            holding.set()
            release.wait(timeout=300)

    thread = threading.Thread(target=terminal)
    thread.start()
    try:
        assert holding.wait(timeout=60)
        status, _, body = request(studio, "POST", "/api/take", body={"shot": "s/b"})
        assert status == 200, body
        task = json.loads(body)["task"]
        deadline = time.monotonic() + 120
        waiting = None
        while time.monotonic() < deadline and waiting is None:
            entry = next(t for t in json.loads(request(studio, "GET", "/api/work")[2])["tasks"] if t["id"] == task)
            waiting = entry["progress"].get("waiting")
            time.sleep(0.1)
        assert waiting is not None and waiting.startswith("another render (process ") and "waiting for it to " \
            "finish" in waiting
        assert entry["state"] == "running"
    finally:
        release.set()
        thread.join(timeout=60)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        entry = next(t for t in json.loads(request(studio, "GET", "/api/work")[2])["tasks"] if t["id"] == task)
        if entry["state"] in ("done", "failed"):
            break
        time.sleep(0.2)
    assert entry["state"] == "done", entry["message"]
    assert (out / "takes/s__b/take4.mp4").is_file()
