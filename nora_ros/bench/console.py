"""``python -m nora_ros.bench console``: click-to-latch latency of the console's e-stop.

What the operator relies on: from the E-stop click on the page to the safety filter latched
and holding the arm. Runs the simulated closed loop in real time behind the console server
(as ``nora-ros demo --console``), starts a trial, lets it run, then presses E-stop and polls
the safety filter in-process. With headless Chromium and selenium the click is a real click
on the page (driver round trip included: an upper bound); without them, the page's own
request (``POST /api/estop``) is sent from Python. Prints each repeat and the median / max.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("console", help="e-stop latency: page click -> safety filter holding (ms)")
    p.add_argument("--repeats", type=int, default=5, help="e-stops to time (default 5)")
    p.add_argument("--http", action="store_true", help="send the page's request instead of clicking in Chromium")
    p.set_defaults(func=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser(url: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.get(url)
    return driver


def run(args: argparse.Namespace) -> int:
    import json
    import urllib.request

    from nora_ros.console.security import AccessPolicy
    from nora_ros.console.server import start_server
    from nora_ros.console.sim_port import SimConsolePort
    from nora_ros.runner import LoopConfig, build_sim_stack
    from nora_ros.sim.expert import ScriptedExpertPolicy

    stack = build_sim_stack(ScriptedExpertPolicy, loop_config=LoopConfig(control_rate_hz=10.0, camera_rate_hz=5.0),
                            max_steps=400)
    port = SimConsolePort(stack, None, realtime=True)
    port.start_thread()
    listen = _free_port()
    server = start_server(port, AccessPolicy(), listen, print_fn=lambda s: None)
    url = f"http://127.0.0.1:{listen}/"
    use_browser = not args.http and shutil.which("chromium") and shutil.which("chromedriver")
    driver = None
    try:
        if use_browser:
            try:
                driver = _browser(url)
            except Exception as exc:  # no selenium, or Chromium would not start: fall back, and say so
                print(f"console bench: no browser ({exc}); timing the page's request instead")
        flt = stack.safe_arm.filter
        samples = []
        for k in range(args.repeats):
            port.reset()
            port.start(stack.world.task.instruction)
            deadline = time.monotonic() + 10
            while port.status().state != "RUNNING" or port.status().steps < 3:
                if time.monotonic() > deadline:
                    raise RuntimeError("the trial did not start running")
                time.sleep(0.01)
            if driver is not None:
                from selenium.webdriver.common.by import By

                button = driver.find_element(By.ID, "estop")
                t0 = time.perf_counter()
                button.click()
            else:
                req = urllib.request.Request(url + "api/estop", data=json.dumps({}).encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
                t0 = time.perf_counter()
                urllib.request.urlopen(req, timeout=5).read()
            while not flt.estopped:
                time.sleep(0.0002)
            t_latch = time.perf_counter()
            while stack.safe_arm.last is None or not stack.safe_arm.last.holding or not flt.estopped:
                time.sleep(0.0002)
            t_hold = time.perf_counter()
            samples.append((t_latch - t0, t_hold - t0))
            print(f"  e-stop {k + 1}: latched {1000 * (t_latch - t0):6.1f} ms, holding {1000 * (t_hold - t0):6.1f} ms")
        how = "Chromium click" if driver is not None else "POST /api/estop"
        latch = [a for a, _ in samples]
        print(f"console e-stop ({how}, control 10 Hz): latched median {1000 * statistics.median(latch):.1f} ms, "
              f"max {1000 * max(latch):.1f} ms")
    finally:
        if driver is not None:
            driver.quit()
        server.close()
        port.close()
        stack.close()
    return 0
