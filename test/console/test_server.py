"""The console server's security and error handling, against a fake port (no sim needed)."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("aiohttp")

from console_helpers import FakePort, ServerThread, request  # noqa: E402

from nora_ros.console.security import TOKEN_HEADER, AccessPolicy, RateLimiter, is_loopback  # noqa: E402

CHANGING = [("/api/start", {"instruction": "put the carrot in the pot"}), ("/api/stop", {}),
            ("/api/score", {"text": "success"}), ("/api/reset", {}), ("/api/enable", {"enabled": False}),
            ("/api/estop", {})]


@pytest.fixture
def loopback():
    port = FakePort()
    server = ServerThread(port, AccessPolicy(host="127.0.0.1"))
    yield server, port
    server.close()


@pytest.fixture
def exposed():
    """Bound to all interfaces (a non-loopback address): the token is required."""
    port = FakePort()
    policy = AccessPolicy(host="0.0.0.0", token="t" * 24)
    server = ServerThread(port, policy)
    yield server, port, policy
    server.close()


def test_loopback_is_the_default_and_needs_no_token():
    assert AccessPolicy().host == "127.0.0.1" and not AccessPolicy().needs_token
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    assert not is_loopback("robot.lab")  # a name may resolve to anything


def test_non_loopback_bind_generates_a_token():
    policy = AccessPolicy(host="192.168.1.20")
    assert policy.needs_token and len(policy.token) >= 16
    assert AccessPolicy(host="192.168.1.20").token != policy.token


def test_loopback_page_and_controls(loopback):
    server, port = loopback
    status, page = request(server.url + "/")
    assert status == 200 and b"does not replace the hardware e-stop" in page
    assert request(server.url + "/api/start", "POST", {"instruction": "put the carrot in the pot"})[0] == 200
    assert request(server.url + "/api/estop", "POST", {})[0] == 200
    status, body = request(server.url + "/api/start", "POST", {"instruction": "again"})
    assert status == 409 and "e-stop" in body["error"]
    assert port.calls == [("start", "put the carrot in the pot"), ("estop",)]


def test_every_changing_request_without_the_token_is_refused(exposed):
    server, port, policy = exposed
    for path, body in CHANGING:
        for headers in ({}, {TOKEN_HEADER: "wrong" * 5}, {"Cookie": f"nora_token={policy.token}"}):
            status, reply = request(server.url + path, "POST", body, headers)
            assert status == 403, (path, headers)
            assert "token" in reply["error"]
    assert port.calls == []
    # reads need it too unless the view is public
    assert request(server.url + "/api/status")[0] == 403
    assert request(server.url + "/api/camera.jpg")[0] == 403
    assert request(server.url + "/api/status", headers={"Cookie": f"nora_token={policy.token}"})[0] == 200


def test_the_estop_works_with_the_token(exposed):
    server, port, policy = exposed
    status, _ = request(server.url + "/api/estop", "POST", {}, {TOKEN_HEADER: policy.token})
    assert status == 200 and port.estopped and port.calls == [("estop",)]
    status, body = request(server.url + "/api/start", "POST", {"instruction": "go"}, {TOKEN_HEADER: policy.token})
    assert status == 409


def test_public_view_opens_reads_only():
    port = FakePort()
    server = ServerThread(port, AccessPolicy(host="0.0.0.0", token="t" * 24, public_view=True))
    try:
        assert request(server.url + "/api/status")[0] == 200
        assert request(server.url + "/api/stop", "POST", {})[0] == 403
    finally:
        server.close()


@pytest.mark.parametrize("headers, want", [({"Content-Type": "text/plain"}, 415),
                                           ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
                                           ({"Origin": "http://evil.example"}, 403)])
def test_cross_site_requests_are_refused_on_loopback(loopback, headers, want):
    server, port = loopback
    status, body = request(server.url + "/api/start", "POST", {"instruction": "go"}, headers)
    assert status == want and body["error"]
    assert port.calls == []


@pytest.mark.parametrize("raw, reason", [(b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object"),
                                         (b'{"instruction": 5}', "must be text"),
                                         (b'{"instruction": "' + b"a" * 600 + b'"}', "longer than")])
def test_bad_requests_get_a_4xx_with_a_reason_never_a_traceback(loopback, raw, reason):
    server, _ = loopback
    status, body = request(server.url + "/api/start", "POST", raw=raw)
    assert status == 400 and reason in body["error"] and "Traceback" not in body["error"]


def test_internal_errors_say_so_without_a_traceback(loopback):
    server, port = loopback

    def boom(enabled):
        raise RuntimeError("secret internals")

    port.set_enabled = boom
    status, body = request(server.url + "/api/enable", "POST", {"enabled": True})
    assert status == 500 and "secret" not in body["error"] and "Traceback" not in body["error"]


@pytest.mark.parametrize("path", ["/static/../server.py", "/static/%2e%2e%2fserver.py", "/static/..%2Fport.py",
                                  "/static/index.html%00.js", "/static/nope.js", "/../../etc/passwd"])
def test_no_request_reaches_a_file_path(loopback, path):
    server, _ = loopback
    status, body = request(server.url + path)
    assert status == 404
    assert b"import" not in (body if isinstance(body, bytes) else str(body).encode())


def test_static_assets_are_shipped(loopback):
    server, _ = loopback
    for name in ("console.js", "console.css"):
        status, body = request(server.url + "/static/" + name)
        assert status == 200 and len(body) > 100
    assert b"innerHTML" not in request(server.url + "/static/console.js")[1]  # text only, never HTML


def test_rate_limiter_bucket():
    limiter = RateLimiter(rate=10.0, burst=3)
    assert [limiter.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b", 0.0)
    assert limiter.allow("a", 0.2)


def test_a_flood_cannot_starve_the_estop(loopback):
    server, port = loopback
    stop = threading.Event()
    codes: list[int] = []

    def flood() -> None:
        while not stop.is_set():
            codes.append(request(server.url + "/api/start", "POST", {"instruction": "spam"})[0])

    threads = [threading.Thread(target=flood) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    status, _ = request(server.url + "/api/estop", "POST", {})
    latency = time.perf_counter() - t0
    stop.set()
    for t in threads:
        t.join()
    assert status == 200 and port.estopped
    assert 429 in codes  # the flood was rate-limited
    assert latency < 0.5, f"e-stop took {latency * 1000:.0f} ms under a flood"
