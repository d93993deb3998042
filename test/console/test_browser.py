"""The console page in headless Chromium against a real ``nora-ros demo --console`` process.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium;
skipped with the reason where they are absent. ``NORA_CONSOLE_SCREENSHOT=docs/console.png``
also saves the page as README's screenshot.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
import time

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("mujoco")

from console_helpers import free_port, request  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
INSTRUCTION = "put the carrot in the pot"
XSS = "<img src=x onerror=alert(1)>"
RECORDS = importlib.util.find_spec("rosbags") is not None
NAMES = ("Start", "Stop", "Success", "Failure", "Partial", "Abort", "E-stop", "Reset", "Enable", "Disable")


def spawn_console(tmp_path, *extra: str, record: bool = False) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "osmesa"),
           "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "osmesa")}
    log = open(tmp_path / "console.log", "w")  # noqa: SIM115 -- closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "nora_ros.cli", "demo", "--console",
                             *(() if record else ("--no-record",)),
                             "--out", str(tmp_path / "out"), "--console-port", str(port), *extra],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("console exited:\n" + (tmp_path / "console.log").read_text())
        try:
            if request(url + "/", headers={})[0] in (200, 403):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("console did not start:\n" + (tmp_path / "console.log").read_text())


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def console(tmp_path):
    """The demo console, recording a bag per trial when rosbags is installed (for the plot links)."""
    proc, url = spawn_console(tmp_path, record=RECORDS)
    yield url
    stop(proc)


@pytest.fixture
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("headless Chromium is absent (apt-get install chromium chromium-driver; .ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1150,1250"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(fn, timeout: float = 30.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or fn}")


def button(driver, name: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.XPATH, f"//button[normalize-space()='{name}']")


def text(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def start(driver, instruction: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "instruction")
    box.clear()
    box.send_keys(instruction)
    button(driver, "Start").click()


@pytest.mark.slow
def test_operator_runs_scores_and_estops_a_trial_in_the_browser(console, browser, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = browser
    d.get(console + "/")
    wait_for(lambda: text(d, "state") == "IDLE", what="the page's first status")
    for name in NAMES:
        assert button(d, name).accessible_name == name
    assert "does not replace the hardware e-stop" in d.find_element(By.TAG_NAME, "header").text

    # type an instruction, Start: the state goes RUNNING and the camera image changes
    camera = d.find_element(By.ID, "camera")
    wait_for(lambda: camera.size["height"] > 10 and d.execute_script("return arguments[0].naturalWidth", camera) > 0,
             what="the camera stream")
    before = camera.screenshot_as_png
    start(d, INSTRUCTION)
    wait_for(lambda: text(d, "state") == "RUNNING", what="RUNNING")
    wait_for(lambda: camera.screenshot_as_png != before, timeout=10, what="the camera image to change")
    wait_for(lambda: int(text(d, "steps") or 0) >= 3, what="policy steps")
    assert "latency" in text(d, "policy") and "Hz" in text(d, "policy")
    button(d, "Success").click()
    wait_for(lambda: text(d, "state") == "DONE", what="DONE")
    wait_for(lambda: "100.0% (1/1)" in d.find_element(By.ID, "results").text, what="the row in the results table")
    assert INSTRUCTION in d.find_element(By.ID, "results").text
    assert "success" in d.find_element(By.ID, "trials").text
    if RECORDS:  # the finished trial links its plot, drawn from its bag
        link = wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#trials a"), what="the plot link")[0]
        assert link.text == "plot" and link.get_attribute("target") == "_blank"
        status, png = request(link.get_attribute("href"))
        assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"

    # E-stop from the keyboard during a trial: aborted, arm held, new trials refused until Reset
    start(d, INSTRUCTION)
    wait_for(lambda: text(d, "state") == "RUNNING", what="RUNNING again")
    t0 = time.perf_counter()
    button(d, "E-stop").send_keys(Keys.ENTER)
    wait_for(lambda: text(d, "state") == "ABORTED", timeout=5, what="ABORTED after the e-stop")
    click_to_page = time.perf_counter() - t0
    wait_for(lambda: "E-STOP LATCHED" in text(d, "safety") and "arm held" in text(d, "safety"), what="latched")
    status = request(console + "/api/status")[1]
    assert status["safety"]["estopped"] and status["safety"]["holding"]
    start(d, INSTRUCTION)
    wait_for(lambda: "e-stop is latched" in text(d, "message"), what="the refusal")
    time.sleep(0.6)
    assert text(d, "state") == "ABORTED"
    button(d, "Reset").click()
    wait_for(lambda: "E-STOP" not in text(d, "safety"), what="the reset")

    # an instruction with HTML in it is shown as text
    start(d, XSS)
    wait_for(lambda: text(d, "instr") == XSS, what="the instruction as text")
    assert d.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    with pytest.raises(NoAlertPresentException):
        d.switch_to.alert.text  # noqa: B018 -- raises when no alert is open
    button(d, "Abort").click()
    wait_for(lambda: XSS in d.find_element(By.ID, "trials").text, what="the aborted trial listed as text")
    print(f"e-stop key press to ABORTED shown on the page: {click_to_page * 1000:.0f} ms")

    shot = os.environ.get("NORA_CONSOLE_SCREENSHOT")
    if shot:
        start(d, INSTRUCTION)
        wait_for(lambda: text(d, "state") == "RUNNING", what="RUNNING for the screenshot")
        time.sleep(2.0)
        save_small_png(d.get_screenshot_as_png(), shot)


def save_small_png(png: bytes, path: str) -> None:
    """The screenshot as a palette PNG (README's image stays well under 200 KB)."""
    from PIL import Image

    Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128).save(path, optimize=True)


def test_non_loopback_console_refuses_changes_without_the_token_and_estops_with_it(tmp_path):
    token = "console-test-token-0123456789"
    proc, url = spawn_console(tmp_path, "--console-host", "0.0.0.0", "--console-token", token)
    try:
        for path, body in (("/api/start", {"instruction": INSTRUCTION}), ("/api/stop", {}),
                           ("/api/score", {"text": "success"}), ("/api/reset", {}),
                           ("/api/enable", {"enabled": False}), ("/api/estop", {})):
            status, reply = request(url + path, "POST", body)
            assert status == 403 and "token" in reply["error"], path
        auth = {"X-Nora-Token": token}
        assert request(url + "/api/status")[0] == 403
        assert request(url + "/api/start", "POST", {"instruction": INSTRUCTION}, auth)[0] == 200
        wait_for(lambda: request(url + "/api/status", headers=auth)[1]["state"] == "RUNNING", what="RUNNING")
        assert request(url + "/api/estop", "POST", {}, auth)[0] == 200
        status = request(url + "/api/status", headers=auth)[1]
        assert status["safety"]["estopped"] and status["state"] == "ABORTED"
        assert "#token=" + token in (tmp_path / "console.log").read_text()
    finally:
        stop(proc)
