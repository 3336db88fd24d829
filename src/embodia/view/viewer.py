"""`embodia view`: a local web app that browses datasets, evaluation results and training runs.

    create_viewer_app(root)          the FastAPI app (tests drive it with TestClient)
    serve_viewer(root, host, port)   run it with uvicorn until Ctrl-C
    running_viewer(root, live=feed)  run it in a thread beside a control loop, with its live cameras
                                     (embodia.view.live: `embodia teleop`)

HTTP surface (GET; JSON errors are {"error": message} with a 4xx status; the teleoperation session's
POST endpoints are in embodia.view.teleop):

    /                                  the single-page front end (static/index.html, plain JS, no build step)
    /static/...                        its script and style sheet
    /api/index                         datasets, eval folders, training runs, doctor outputs, reports under root
    /api/dataset?path=P                episodes (length, task strings, doctor flag), cameras, doctor summary
    /api/dataset/episode?path=P&episode=N   state/action series, each camera's video file and time range
    /api/eval?path=P                   success by task / group / overall (Wilson 95 % CI), rollout videos
    /api/run?path=P                    loss / LR / grad-norm curves from metrics.jsonl, checkpoints
    /files/REL                         any file under root, with HTTP Range (browsers seek mp4s with it);
                                       report.html files open here too, since their videos are relative

Safety: nothing here authenticates, so the server binds loopback only (serve_viewer refuses any other
address) and answers only requests whose Host header names a loopback address, which stops a web page
the user visits from reading the files through DNS rebinding. Every path from a request goes through
`viewer_data.resolve_inside`: resolved with symlinks followed, it must stay inside the served root.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from embodia.net import LOOPBACK_HOSTS, is_loopback
from embodia.view import viewer_data as vd
from embodia.view.live import LiveFeed, add_live_routes
from embodia.view.viewer_data import ViewerError, resolve_inside

STATIC_DIR = Path(__file__).parent / "static"
# Media types the browser needs to play or render files; anything else is sent as a download-safe default.
_MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".jsonl": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


def _host_name(header: str) -> str:
    """The host part of a Host header, IPv6 brackets removed ('[::1]:8765' -> '::1')."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def create_viewer_app(
    root: str | Path, allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS, live: LiveFeed | None = None,
    teleop=None,
) -> FastAPI:  # fmt: skip
    """The viewer over `root` (a folder). `allowed_hosts`: Host header names to answer (see module doc).
    `live`: a running loop's feed, shown at #/live; `teleop`: a browser teleoperation session
    (embodia.data.sim_teleop.SimTeleop), driven from #/teleop through embodia.view.teleop's API."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    allowed = {h.lower() for h in allowed_hosts}
    app = FastAPI(title="embodia view", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.root = root

    @app.middleware("http")
    async def only_local_hosts(request: Request, call_next):
        if _host_name(request.headers.get("host", "")) not in allowed:
            return JSONResponse({"error": "unexpected Host header; open the viewer via 127.0.0.1"}, 421)
        response = await call_next(request)
        # Reports and data are local files: never let another origin frame them or sniff types.
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        return response

    @app.exception_handler(ViewerError)
    async def viewer_error(request: Request, exc: ViewerError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError):
        where = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'body'}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": f"malformed request: {where}"}, status_code=422)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index_page() -> FileResponse:
        # no-cache: after an upgrade the page must not run against a stale script.
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)  # browsers ask for it; a 404 would be a console error

    @app.get("/api/index")
    def api_index() -> dict[str, Any]:
        return vd.scan(root) | {"live": None if live is None else live.title, "teleop": teleop is not None}

    if live is not None:
        add_live_routes(app, live)
    if teleop is not None:
        from embodia.view.teleop import add_teleop_routes

        add_teleop_routes(app, teleop)

    @app.get("/api/dataset")
    def api_dataset(path: str = Query(..., description="dataset folder, relative to the root")):
        return vd.dataset_summary(root, _folder(root, path))

    @app.get("/api/dataset/episode")
    def api_episode(path: str = Query(...), episode: int = Query(..., ge=0)):
        return vd.episode_detail(root, _folder(root, path), episode)

    @app.get("/api/eval")
    def api_eval(path: str = Query(...)):
        return vd.eval_summary(root, _folder(root, path))

    @app.get("/api/run")
    def api_run(path: str = Query(...)):
        return vd.run_summary(root, _folder(root, path))

    @app.get("/files/{rel:path}")
    def files(rel: str) -> FileResponse:
        path = resolve_inside(root, rel)
        if not path.is_file():
            raise ViewerError(404, f"{rel!r} is a folder, not a file")
        media = _MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        # Starlette's FileResponse answers Range requests (206, Content-Range) and sets Accept-Ranges.
        return FileResponse(path, media_type=media)

    @app.get("/api/{rest:path}", include_in_schema=False)
    def unknown_api(rest: str):
        raise ViewerError(404, f"no such endpoint /api/{rest}")

    return app


def _folder(root: Path, rel: str) -> Path:
    path = resolve_inside(root, rel)
    if not path.is_dir():
        raise ViewerError(400, f"{rel!r} is a file; give the folder that holds it")
    return path


def _bind(host: str, port: int) -> socket.socket:
    """Bind before starting uvicorn so that a busy port is a clear error instead of a log line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    sock.listen(128)
    return sock


def _server(root, host: str, port: int, log_level: str, live: LiveFeed | None = None, teleop=None):
    """A uvicorn server for the viewer on a bound socket. Loopback only: the viewer has no authentication."""
    import uvicorn

    if not is_loopback(host):
        raise ValueError(
            f"refusing to serve the viewer on {host}: it has no authentication and serves every file "
            "under its folder. Bind 127.0.0.1 and reach it from elsewhere through an SSH tunnel "
            "(ssh -L 8765:127.0.0.1:8765 HOST)."
        )
    app = create_viewer_app(root, allowed_hosts=tuple({*LOOPBACK_HOSTS, host}), live=live, teleop=teleop)
    sock = _bind(host, port)
    config = uvicorn.Config(app, log_level=log_level, lifespan="off", timeout_graceful_shutdown=2)
    return uvicorn.Server(config), sock


def serve_viewer(root: str | Path, host: str = "127.0.0.1", port: int = 8765, log_level: str = "warning"):
    """Serve the viewer until interrupted."""
    server, sock = _server(root, host, port, log_level)
    server.run(sockets=[sock])


@contextlib.contextmanager
def running_viewer(root: str | Path, host: str = "127.0.0.1", port: int = 8765, live: LiveFeed | None = None,
                   log_level: str = "warning", teleop=None) -> Iterator[str]:  # fmt: skip
    """The viewer in a background thread while the block runs; yields its URL (the live page with a
    feed, the teleoperation page with a session). Port 0 picks a free port. On exit the feed closes (its
    streams end) and the server stops."""
    server, sock = _server(root, host, port, log_level, live, teleop)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="embodia-viewer", daemon=True
    )
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.01)
    bound = sock.getsockname()[1]
    name = f"[{host}]" if ":" in host else host
    try:
        page = "#/teleop" if teleop is not None else "#/live" if live is not None else ""
        yield f"http://{name}:{bound}/" + page
    finally:
        if live is not None:
            live.close()
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
