"""The console's HTTP server: the page, its JSON API, the camera stream.

Built on aiohttp: one asyncio event loop serves the page, the API and any number of MJPEG
camera streams (multipart/x-mixed-replace) without a thread per viewer. A stream is a
long-lived response that mostly waits; async I/O is what keeps it cheap, and keeps a slow
viewer from holding up the e-stop. aiohttp is mature, maintained by the aio-libs team, and has
no native dependencies. Port calls that may wait for the control tick (the lock) run in
executors: the e-stop in its own single-thread executor, so a flood of other requests cannot
queue in front of it; trial plots (a bag read and a drawing, a fraction of a second each) in
another, so they queue behind each other and never hold the threads the status needs.

Routes (all answers JSON except the page, static files and images):

  GET  /                      the page           GET /static/<name>   its assets (a fixed list)
  GET  /api/status            state snapshot     GET /api/results     table and finished trials
  GET  /api/camera.mjpg       live camera        GET /api/camera.jpg  latest frame
  GET  /api/model_input.jpg   the 224x224 image the policy sees
  GET  /api/trials/<id>/plot.png  a finished trial's plot, from its bag (:mod:`.trial_plots`)
  POST /api/estop             latch the e-stop (checked first, never rate-limited)
  POST /api/start {instruction}   /api/stop   /api/score {text}   /api/reset   /api/enable {enabled}

Errors: 4xx with ``{"error": reason}``; an unexpected error is logged here and answered 500
"internal error" without the traceback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from importlib import resources
from typing import Any

from aiohttp import web

from nora_ros.console.port import ConsolePort
from nora_ros.console.security import TOKEN_COOKIE, TOKEN_HEADER, AccessPolicy, RateLimiter
from nora_ros.console.trial_plots import PlotNotFound, TrialPlots
from nora_ros.errors import BagError, NoraError
from nora_ros.trials.state import TrialStateError

log = logging.getLogger(__name__)

STATIC = {"console.js": "application/javascript", "console.css": "text/css", "index.html": "text/html"}
"""The only files served: request paths are looked up here, never joined to a folder."""

MAX_BODY = 16 * 1024
STREAM_FPS = 10.0

_PORT = web.AppKey("port", object)
_POLICY = web.AppKey("policy", AccessPolicy)
_LIMIT = web.AppKey("limit", RateLimiter)
_ESTOP_POOL = web.AppKey("estop_pool", concurrent.futures.ThreadPoolExecutor)
_PLOTS = web.AppKey("plots", TrialPlots)
_PLOT_POOL = web.AppKey("plot_pool", concurrent.futures.ThreadPoolExecutor)
MAX_ID_DIGITS = 9


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _asset(name: str) -> bytes:
    return resources.files("nora_ros.console").joinpath("static", name).read_bytes()


@web.middleware
async def _guard(request: web.Request, handler):
    """Access checks, rate limits and error translation for every route."""
    policy = request.app[_POLICY]
    changing = request.method not in ("GET", "HEAD")
    if changing:
        if request.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return _error(415, "changing requests must be application/json")
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            return _error(403, "cross-origin request refused")
        if not policy.token_ok(request.headers.get(TOKEN_HEADER)):
            return _error(403, f"missing or wrong {TOKEN_HEADER} header (the token is printed when the console starts)")
    elif not policy.public_view and request.path != "/" and not request.path.startswith("/static/"):
        given = request.headers.get(TOKEN_HEADER) or request.cookies.get(TOKEN_COOKIE)
        if not policy.token_ok(given):
            return _error(403, "this console needs its token to view (open the URL it printed)")
    if request.path != "/api/estop" and not request.app[_LIMIT].allow(request.remote or "?"):
        return _error(429, "too many requests; slow down")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason)
        raise
    except TrialStateError as exc:
        return _error(409, str(exc))
    except NoraError as exc:
        return _error(400, str(exc))
    except Exception:
        log.exception("console: internal error on %s %s", request.method, request.path)
        return _error(500, "internal error (see the console's log)")


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        raise web.HTTPBadRequest(reason="body is not valid JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="body must be a JSON object")
    return body


def _text(body: dict[str, Any], key: str, limit: int = 1000) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise web.HTTPBadRequest(reason=f"{key} must be text")
    if len(value) > limit:
        raise web.HTTPBadRequest(reason=f"{key} is longer than {limit} characters")
    return value


async def _call(request: web.Request, fn, *args) -> web.Response:
    await asyncio.get_running_loop().run_in_executor(None, fn, *args)
    return web.json_response({"ok": True})


async def index(request: web.Request) -> web.Response:
    return web.Response(body=_asset("index.html"), content_type="text/html",
                        headers={"Content-Security-Policy": "default-src 'self'; img-src 'self' blob:",
                                 "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        return _error(404, "no such asset")
    return web.Response(body=_asset(name), content_type=STATIC[name], headers={"X-Content-Type-Options": "nosniff"})


async def status(request: web.Request) -> web.Response:
    port: ConsolePort = request.app[_PORT]
    snap = await asyncio.get_running_loop().run_in_executor(None, port.status)
    return web.json_response(snap.to_dict(), headers={"Cache-Control": "no-store"})


async def results(request: web.Request) -> web.Response:
    port: ConsolePort = request.app[_PORT]
    data = await asyncio.get_running_loop().run_in_executor(None, port.results)
    return web.json_response(data, headers={"Cache-Control": "no-store"})


async def camera_jpg(request: web.Request) -> web.Response:
    frame = await asyncio.get_running_loop().run_in_executor(None, request.app[_PORT].camera_jpeg)
    if frame is None:
        return _error(404, "no camera frame yet")
    return web.Response(body=frame[1], content_type="image/jpeg", headers={"Cache-Control": "no-store"})


async def model_input_jpg(request: web.Request) -> web.Response:
    data = await asyncio.get_running_loop().run_in_executor(None, request.app[_PORT].model_input_jpeg)
    if data is None:
        return _error(404, "no camera frame yet")
    return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})


async def trial_plot(request: web.Request) -> web.Response:
    """A finished trial's plot (PNG). Only an integer id is taken from the request; the bag is
    the one the results file names for that trial."""
    raw = request.match_info["trial_id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_ID_DIGITS) or int(raw) < 1:
        return _error(400, "a trial id is a positive integer")
    try:
        png = await asyncio.get_running_loop().run_in_executor(request.app[_PLOT_POOL], request.app[_PLOTS].png,
                                                               int(raw))
    except PlotNotFound as exc:
        return _error(404, str(exc))
    except BagError as exc:
        return _error(422, f"trial {int(raw)} has no plot: {exc}")
    return web.Response(body=png, content_type="image/png",
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


async def camera_mjpg(request: web.Request) -> web.StreamResponse:
    """The live camera as an MJPEG stream: a new part whenever the frame changes, at most
    ``STREAM_FPS`` per second; ends when the viewer goes away."""
    port = request.app[_PORT]
    resp = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame",
                                       "Cache-Control": "no-store"})
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    last = -1
    try:
        while True:
            frame = await loop.run_in_executor(None, port.camera_jpeg)
            if frame is not None and frame[0] != last:
                last = frame[0]
                await resp.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(frame[1])).encode() + b"\r\n\r\n" + frame[1] + b"\r\n")
            await asyncio.sleep(1.0 / STREAM_FPS)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp


async def estop(request: web.Request) -> web.Response:
    """The e-stop: no body needed, own executor, never rate-limited."""
    await asyncio.get_running_loop().run_in_executor(request.app[_ESTOP_POOL], request.app[_PORT].estop,
                                                     "console e-stop")
    return web.json_response({"ok": True})


async def start(request: web.Request) -> web.Response:
    body = await _json_body(request)
    return await _call(request, request.app[_PORT].start, _text(body, "instruction", 500))


async def stop(request: web.Request) -> web.Response:
    return await _call(request, request.app[_PORT].stop)


async def score(request: web.Request) -> web.Response:
    body = await _json_body(request)
    return await _call(request, request.app[_PORT].score, _text(body, "text", 1100))


async def reset(request: web.Request) -> web.Response:
    return await _call(request, request.app[_PORT].reset)


async def enable(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if not isinstance(body.get("enabled"), bool):
        raise web.HTTPBadRequest(reason="enabled must be true or false")
    return await _call(request, request.app[_PORT].set_enabled, body["enabled"])


def make_app(port: ConsolePort, policy: AccessPolicy | None = None) -> web.Application:
    """The console's application for ``port`` under ``policy`` (default: loopback, no token)."""
    policy = policy or AccessPolicy()
    app = web.Application(middlewares=[_guard], client_max_size=MAX_BODY)
    app[_PORT] = port
    app[_POLICY] = policy
    app[_LIMIT] = RateLimiter(policy.rate_per_s, policy.burst)
    app[_ESTOP_POOL] = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="estop")
    app[_PLOTS] = TrialPlots(port.results)
    app[_PLOT_POOL] = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="plot")
    app.on_cleanup.append(_close_plot_pool)
    app.router.add_post("/api/estop", estop)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/results", results)
    app.router.add_get("/api/camera.jpg", camera_jpg)
    app.router.add_get("/api/camera.mjpg", camera_mjpg)
    app.router.add_get("/api/model_input.jpg", model_input_jpg)
    app.router.add_get("/api/trials/{trial_id}/plot.png", trial_plot)
    app.router.add_post("/api/start", start)
    app.router.add_post("/api/stop", stop)
    app.router.add_post("/api/score", score)
    app.router.add_post("/api/reset", reset)
    app.router.add_post("/api/enable", enable)
    return app


async def _close_plot_pool(app: web.Application) -> None:
    app[_PLOT_POOL].shutdown(wait=False, cancel_futures=True)


class ServerHandle:
    """A console server running in its own thread and event loop (the ROS node's case: the
    executor must not block the page, nor the page the executor)."""

    def __init__(self, port: ConsolePort, policy: AccessPolicy, listen_port: int):
        import threading

        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(make_app(port, policy), access_log=None)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(policy.host, listen_port), name="console-http",
                                       daemon=True)
        self.thread.start()
        self._ready.wait(10.0)
        if self._error is not None:
            from nora_ros.errors import ConfigurationError

            raise ConfigurationError(f"console cannot listen on {policy.host}:{listen_port}: {self._error}") \
                from self._error

    def _run(self, host: str, listen_port: int) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, host, listen_port).start())
        except OSError as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10.0)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)


def console_url(policy: AccessPolicy, listen_port: int) -> str:
    """What the operator opens (with the token in the fragment when one is needed)."""
    host = policy.host
    url = f"http://{'[' + host + ']' if ':' in host else host}:{listen_port}/"
    return url + (f"#token={policy.token}" if policy.needs_token else "")


def announce(policy: AccessPolicy, listen_port: int, print_fn=print) -> None:
    if policy.needs_token:
        print_fn(f"console: {console_url(policy, listen_port)}  (bound to {policy.host}: the token is required; "
                 "keep it secret)")
    else:
        print_fn(f"console: {console_url(policy, listen_port)}  (this machine only; from another computer: "
                 f"ssh -L {listen_port}:127.0.0.1:{listen_port} THIS_HOST)")
    print_fn("console: this page does not replace the hardware e-stop")


def start_server(port: ConsolePort, policy: AccessPolicy, listen_port: int, print_fn=print) -> ServerHandle:
    """Serve in a background thread; returns the handle to close it."""
    handle = ServerHandle(port, policy, listen_port)
    announce(policy, listen_port, print_fn)
    return handle


def serve(port: ConsolePort, policy: AccessPolicy, listen_port: int = 8080, print_fn=print) -> None:
    """Serve until interrupted (blocks; the caller's control loop runs in its own thread)."""
    app = make_app(port, policy)
    announce(policy, listen_port, print_fn)
    web.run_app(app, host=policy.host, port=listen_port, print=None, handle_signals=True, access_log=None)
