"""A fake console port (the boundary to a robot cannot exist here) and a server in a thread."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from nora_ros.console.port import ConsoleStatus, SafetyView
from nora_ros.trials.state import TrialBusyError


@dataclass
class FakePort:
    """Records calls; the e-stop latches and refuses starts like the real one."""

    calls: list[tuple] = field(default_factory=list)
    estopped: bool = False

    def status(self) -> ConsoleStatus:
        return ConsoleStatus(instruction="<b>x</b>", safety=SafetyView(estopped=self.estopped))

    def camera_jpeg(self):
        return (1, b"\xff\xd8fakejpeg\xff\xd9")

    def model_input_jpeg(self):
        return b"\xff\xd8model\xff\xd9"

    def start(self, instruction: str = "", task: str = "") -> None:
        if self.estopped:
            raise TrialBusyError("e-stop is latched")
        self.calls.append(("start", instruction))

    def stop(self) -> None:
        self.calls.append(("stop",))

    def score(self, text: str) -> None:
        self.calls.append(("score", text))

    def estop(self, reason: str = "console e-stop") -> None:
        self.estopped = True
        self.calls.append(("estop",))

    def reset(self) -> None:
        self.estopped = False
        self.calls.append(("reset",))

    def set_enabled(self, enabled: bool) -> None:
        self.calls.append(("enable", enabled))

    def results(self):
        return {"models": [], "rows": [], "average": [], "trials": [], "warnings": []}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """The console app served on ``host``:free port in a background event loop."""

    def __init__(self, port, policy):
        from aiohttp import web

        from nora_ros.console.server import make_app

        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(make_app(port, policy), access_log=None)
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, policy.host, self.port)
            self.loop.run_until_complete(site.start())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def request(url: str, method: str = "GET", body=None, headers=None, raw: bytes | None = None):
    """(status, parsed JSON or bytes) for one request; never raises on 4xx/5xx."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    hdrs = {"Content-Type": "application/json"} if method == "POST" else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data if method == "POST" else None, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, payload, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, payload, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
    return status, (json.loads(payload) if "json" in ctype else payload)
