"""The studio's HTTP server: Starlette routes over one story, served by uvicorn on 127.0.0.1 by default.

Routes: `/` (the page), `/static/…` (its script and style, package data), `/media/<name>` (files the output
manifest lists), and the JSON API: `GET /api/film`, `GET /api/work`, `POST /api/pick` (`{"shot", "take"}` or
`{"shot", "keyframe"}`), `/api/reject`, `/api/note`, `/api/take`, `/api/render`, `/api/cut`."""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.errors import StoryError, StoryforgeError

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

DEFAULT_PORT = 8765
PORTS_TRIED = 20  # without --port: the next free one after 8765, as Jupyter does
ASSETS = {"studio.js": "text/javascript; charset=utf-8", "studio.css": "text/css; charset=utf-8"}
MAX_BODY = 64 * 1024


@dataclass
class Studio:
    """One studio session: the story, its output folder, the token, the film's state and the work queue."""

    story: Path
    out: Path
    story_arg: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    backend: str | None = None
    writing: threading.Lock = field(default_factory=threading.Lock)  # one lock-file update at a time

    def __post_init__(self) -> None:
        from storyforge.studio.film import Film
        from storyforge.studio.work import Worker

        self.film = Film(self.story, self.out, self.story_arg)
        self.worker = Worker(self.story, self.out, self.backend)


def _asset(name: str) -> bytes:
    return resources.files("storyforge.studio").joinpath("assets", name).read_bytes()


def build_app(studio: Studio, *, hosts: frozenset[str], cookie: str) -> Starlette:
    """The studio's ASGI app, every route behind the guard (token, Host, Origin, CSP)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from storyforge.studio import media
    from storyforge.studio.guard import Guard

    page = _asset("index.html").decode("utf-8").replace("{{token}}", studio.token)

    def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers={"cache-control": "no-store"})

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:  # by name from a fixed list: no path from the URL reaches the disk
            return JSONResponse({"error": "no such file"}, status_code=404)
        return Response(_asset(name), media_type=ASSETS[name], headers={"cache-control": "no-cache"})

    def film(request: Request) -> Response:
        return JSONResponse(studio.film.state(), headers={"cache-control": "no-store"})

    def work(request: Request) -> Response:
        return JSONResponse(studio.worker.status(), headers={"cache-control": "no-store"})

    def served(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            handle, size = media.open_listed(studio.out, name)
        except media.NotServed:
            return JSONResponse({"error": "not a file of this film"}, status_code=404)
        kind = media.TYPES[Path(name).suffix]
        try:
            span = media.byte_range(request.headers.get("range"), size)
        except ValueError:
            os.close(handle)
            return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
        headers = {"accept-ranges": "bytes", "cache-control": "private, max-age=3600"}
        if span is None:
            headers["content-length"] = str(size)
            return StreamingResponse(media.chunks(handle, 0, size - 1), media_type=kind, headers=headers)
        start, end = span
        headers.update({"content-length": str(end - start + 1), "content-range": f"bytes {start}-{end}/{size}"})
        return StreamingResponse(media.chunks(handle, start, end), status_code=206, media_type=kind,
                                 headers=headers)

    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise _Refused(413, "the request is too large")
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise _Refused(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise _Refused(400, "the body is not a JSON object")
        return data

    def write(action: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            from starlette.concurrency import run_in_threadpool

            try:
                data = await body(request)
                answer = await run_in_threadpool(action, data)
            except _Refused as refused:
                return JSONResponse({"error": refused.message}, status_code=refused.status)
            except StoryError as error:
                return JSONResponse({"error": str(error), "problems": [str(p) for p in error.problems]},
                                    status_code=400)
            except StoryforgeError as error:
                return JSONResponse({"error": str(error)}, status_code=400)
            return JSONResponse(answer, headers={"cache-control": "no-store"})

        return endpoint

    def pick(data: dict[str, Any]) -> dict[str, Any]:
        from storyforge.enhance.lock import pick as pick_take
        from storyforge.enhance.lock import pick_keyframe

        shot = _text(data, "shot")
        with studio.writing:
            if "keyframe" in data:
                number = _number(data, "keyframe")
                pick_keyframe(studio.story, shot, number)
                return {"shot": shot, "keyframe": number}
            report = pick_take(studio.story, shot, _number(data, "take"))
        return {"shot": shot, "take": report.take, "previous": report.previous, "changed": report.changed}

    def reject(data: dict[str, Any]) -> dict[str, Any]:
        from storyforge.enhance.lock import reject as reject_take

        shot, take = _text(data, "shot"), _number(data, "take")
        rejected = data.get("rejected", True)
        if not isinstance(rejected, bool):
            raise _Refused(400, "'rejected' is true or false")
        with studio.writing:
            reject_take(studio.story, shot, take, rejected)
        return {"shot": shot, "take": take, "rejected": rejected}

    def note(data: dict[str, Any]) -> dict[str, Any]:
        from storyforge.enhance.lock import note as note_take

        shot, take, text = _text(data, "shot"), _number(data, "take"), _text(data, "text", empty=True)
        with studio.writing:
            note_take(studio.story, shot, take, text)
        return {"shot": shot, "take": take, "note": text.strip()}

    def another(data: dict[str, Any]) -> dict[str, Any]:
        from storyforge.enhance.lock import add_take

        shot = _text(data, "shot")
        with studio.writing:
            take = add_take(studio.story, shot)
        task = studio.worker.submit("take", shot, f"take {take} of {shot}")
        return {"shot": shot, "take": take, "task": task.id}

    def render(data: dict[str, Any]) -> dict[str, Any]:
        return {"task": studio.worker.submit("render", None, "render what changed").id}

    def cut(data: dict[str, Any]) -> dict[str, Any]:
        waiting = studio.film.state().get("to_render") or []
        if waiting:
            raise StoryforgeError(f"a cut renders nothing, and {', '.join(waiting)} "
                                  f"{'is' if len(waiting) == 1 else 'are'} not rendered yet: choose "
                                  "“Render what changed”")
        return {"task": studio.worker.submit("cut", None, "cut again").id}

    def nothing(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", index), Route("/favicon.ico", nothing), Route("/static/{name}", static),
        Route("/api/film", film), Route("/api/work", work),
        Route("/media/{name:path}", served),
        *(Route(f"/api/{name}", write(action), methods=["POST"])
          for name, action in (("pick", pick), ("reject", reject), ("note", note), ("take", another),
                               ("render", render), ("cut", cut))),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Guard, token=studio.token, hosts=hosts, cookie=cookie)])


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _text(data: dict[str, Any], name: str, *, empty: bool = False) -> str:
    value = data.get(name)
    if not isinstance(value, str) or (not empty and not value):
        raise _Refused(400, f"'{name}' must be text")
    return value


def _number(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 1000:
        raise _Refused(400, f"'{name}' must be a whole number from 1")
    return value


def listen(host: str, port: int | None) -> socket.socket:
    """A socket bound to `host`: at `port`, or without one at the first free port from 8765."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    ports = [port] if port is not None else list(range(DEFAULT_PORT, DEFAULT_PORT + PORTS_TRIED))
    last: OSError | None = None
    for number in ports:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, number))
        except OSError as error:
            sock.close()
            last = error
            continue
        sock.listen(128)
        sock.set_inheritable(True)
        return sock
    if port is not None:
        raise StoryforgeError(f"cannot listen on {host}:{port} ({last.strerror if last else 'in use'}); choose "
                              "another port with --port")
    raise StoryforgeError(f"ports {ports[0]} to {ports[-1]} on {host} are all in use; choose one with --port")


def url_of(sock: socket.socket, host: str, token: str) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def serve(story: Path, *, out: Path | None = None, host: str = "127.0.0.1", port: int | None = None,
          backend: str | None = None, say: Callable[[str], None], ready: Callable[[str], None] | None = None,
          warn: Callable[[str], None] | None = None) -> None:
    """Run the studio until interrupted. `say(url)` gets the address with its token first (before any request
    is answered); `ready(url)` is called then too (e.g. to open a browser). A story that does not validate
    still opens (its problems are on the page, and told to `warn`): it is being written."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ModuleNotFoundError as error:
        from storyforge.errors import MissingExtra

        raise MissingExtra((error.name or "starlette").split(".")[0], "studio", "storyforge studio") from None
    from storyforge import api
    from storyforge.errors import display_path
    from storyforge.outdir import check_out, looking_from
    from storyforge.render import default_out

    if not Path(story).is_file():
        raise StoryforgeError(f"{display_path(Path(story))}: no such story file; name a story file (like "
                              "film.yaml), or make one with `storyforge init`")
    try:
        api.plan(story)
    except StoryError as error:
        if warn is not None:
            warn(f"the story does not validate yet; the page shows where:\n{error}")
    given = Path(out) if out is not None else default_out(story)
    check_out(given, story)
    # as named, not resolved: the studio's renders reach it through the door from the story's folder (a link
    # below it refused, never followed to a folder elsewhere), and so is it checked here before anything is served
    folder = Path(os.path.abspath(given))
    with looking_from(folder, story):
        pass
    studio = Studio(story=story, out=folder, story_arg=display_path(story), backend=backend)
    sock = listen(host, port)
    hosts = frozenset(allowed_hosts(host))
    app = build_app(studio, hosts=hosts, cookie=f"storyforge-studio-{sock.getsockname()[1]}")
    url = url_of(sock, host, studio.token)
    say(url)
    if ready is not None:
        ready(url)
    # no access log: request lines would print the token; a player streaming a film must not hold up Ctrl-C
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", server_header=False,
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])


def allowed_hosts(host: str) -> set[str]:
    """The Host names the studio answers to: loopback names, and the address given with --host (for every
    address, this machine's names)."""
    from storyforge.studio.guard import LOCAL_HOSTS

    names = set(LOCAL_HOSTS)
    if host in ("0.0.0.0", "::", ""):
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    else:
        names.add(host.lower().strip("[]"))
    return names
