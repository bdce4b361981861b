"""The dashboard in a real browser: Debian's chromium, headless, driven over the DevTools protocol
(`--remote-debugging-pipe`: JSON messages on fds 3/4, so no websocket client or driver is needed).

CI installs chromium (.ci/run: `apt-get install -y chromium fonts-dejavu-core`); locally the test
is skipped when no chromium is found.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
WAIT_S = 30.0  # generous upper bound for slow CI boxes; tests never assert on time


def _high_pipe() -> tuple[int, int]:
    """A pipe whose ends are >= 10, so that the shell's `3<&R 4>&W` never overwrites one with the other."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    return ends[0], ends[1]


class Chromium:
    """A headless chromium and one page, spoken to over the DevTools pipe."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 1600) -> None:
        to_browser_r, self._to_browser = _high_pipe()
        self._from_browser, from_browser_w = _high_pipe()
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--user-data-dir={profile}", "--remote-debugging-pipe", f"--window-size={width},{height}",
                "about:blank"]
        # bash (dash takes single-digit fds only) puts our pipe ends on fds 3 (commands in) and 4
        # (replies out), where chromium expects them.
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}', CHROMIUM, *args],
            pass_fds=(to_browser_r, from_browser_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str) -> Any:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"never true in the page: {expression}")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)

    def click_at(self, x: float, y: float) -> None:
        """A real mouse click (press and release) at page coordinates."""
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture
def browser(tmp_path: Path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: CI needs `apt-get install -y chromium`")
        pytest.skip("chromium not found (Debian: apt-get install -y chromium)")
    chromium = Chromium(tmp_path / "chromium-profile")
    yield chromium
    chromium.close()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url) as response:
        return json.load(response)


def test_sweep_page_shows_every_trial_and_the_front_and_opens_a_trial(served, browser, tmp_path):
    trials = get_json(f"{served.url}api/sweeps/{served.sweep.id}/trials")
    front = get_json(f"{served.url}api/sweeps/{served.sweep.id}/front")["front"]
    succeeded = [t for t in trials if t["status"] == "succeeded"]
    failed = [t for t in trials if t["status"] == "failed"]

    browser.goto(f"{served.url}#/sweep/{served.sweep.id}")
    browser.wait_for("document.querySelectorAll('#trial-table tbody tr').length > 0")

    assert browser.js("document.querySelectorAll('#pareto-chart .trial-point').length") == len(succeeded)
    assert browser.js("document.querySelectorAll('#pareto-chart .failed-point').length") == len(failed)
    assert browser.js("document.querySelectorAll('#pareto-chart .front-point').length") == len(front)
    assert browser.js("document.querySelectorAll('#pareto-chart .front-line').length") == 1
    assert browser.js("document.querySelectorAll('#front-table tbody tr').length") == len(front)
    assert browser.js("document.querySelectorAll('#trial-table tbody tr').length") == len(trials)
    # The seed-averaged config (trials 1, 5, 9) carries an error bar.
    assert browser.js("document.querySelectorAll('#pareto-chart .error-bar').length") >= 1

    # Click the most expensive front point on the chart with the mouse: its trial opens.
    best = front[-1]["trials"][0]
    box = browser.js(f"(() => {{ const r = document.querySelector('#pareto-chart .front-point[data-number=\"{best}\"]')"
                     f".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
    browser.click_at(*box)
    browser.wait_for(f"document.querySelector('#trial-title')?.textContent.startsWith('#{best} ')")
    browser.wait_for("document.querySelectorAll('#curve-chart .curve-line').length === 1")
    assert f"/trial/{best}" in browser.js("location.hash")

    # A row click adds a second trial's curve; sorting by score puts the best first.
    browser.js("document.querySelector('#trial-table tbody tr[data-number=\"2\"]').click()")
    browser.wait_for("document.querySelectorAll('#curve-chart .curve-line').length === 2")
    browser.js("document.querySelector('#trial-table th[data-key=\"score\"]').click()")
    top = browser.js("document.querySelector('#trial-table tbody tr').dataset.number")
    assert int(top) == max(succeeded, key=lambda t: t["score"])["number"]

    shot = browser.screenshot(tmp_path / "dashboard-sweep.png")
    assert shot.stat().st_size > 10_000


def test_sweeps_and_boxes_pages_list_what_the_api_lists(served, browser, tmp_path):
    browser.goto(served.url)
    browser.wait_for("document.querySelectorAll('#sweeps-table tbody tr').length === 1")
    assert served.sweep.name in browser.js("document.querySelector('#sweeps-table').textContent")

    browser.goto(f"{served.url}#/boxes")
    browser.wait_for("!!document.querySelector('#boxes-table')")
    assert "gpu-box-1" in browser.js("document.querySelector('#boxes-table').textContent")
    browser.screenshot(tmp_path / "dashboard-boxes.png")


def test_cut_and_stopped_runs_are_marked_apart_on_the_chart_and_in_the_tables(served, marked_sweep, browser,
                                                                                tmp_path):
    browser.goto(f"{served.url}#/sweep/{marked_sweep.id}")
    browser.wait_for("document.querySelectorAll('#trial-table tbody tr').length === 4")

    def numbers(selector: str) -> list[int]:
        return browser.js(f"[...document.querySelectorAll('{selector}')].map((n) => +n.dataset.number)")

    # On the chart: full runs are circles, cut runs triangles (paths), stopped runs squares (rects).
    assert numbers("#pareto-chart circle.trial-point") == [1]
    assert numbers("#pareto-chart path.trial-point.cut") == [2]
    assert numbers("#pareto-chart rect.trial-point.stopped") == [3, 4]
    assert numbers("#pareto-chart rect.front-point.stopped") == [3]
    assert numbers("#pareto-chart path.front-point.cut") == [2]
    assert numbers("#pareto-chart circle.front-point") == [1]
    legend = browser.js("document.querySelector('#pareto-legend').textContent")
    assert "cut: ended at the cost cap before its planned steps (1)" in legend
    assert "stopped: ended early on the searcher's word (2)" in legend

    # The tables: each row's mark and steps.
    rows = browser.js("[...document.querySelectorAll('#trial-table tbody tr')].map((tr) => "
                      "[+tr.dataset.number, tr.dataset.mark || '', tr.querySelector('.mark')?.textContent || '', "
                      "tr.children[5].textContent])")
    assert rows == [[1, "", "", "10.2k"], [2, "cut", "cut", "4000"], [3, "stopped", "stopped", "2000"],
                    [4, "stopped", "stopped", "2000"]]
    front = browser.js("[...document.querySelectorAll('#front-table tbody tr')].map((tr) => "
                       "[tr.children[3].textContent, tr.children[4].textContent])")
    assert front == [["2000", "stopped"], ["4000", "cut"], ["10.2k", ""]]
    stats = browser.js("document.querySelector('#sweep-stats').textContent")
    assert "2stopped early" in stats and "1cut at the cap" in stats

    # A stopped trial's own panel says so.
    browser.js("document.querySelector('#trial-table tbody tr[data-number=\"3\"]').click()")
    browser.wait_for("document.querySelector('#trial-title')?.textContent.startsWith('#3 ')")
    assert browser.js("document.querySelector('#trial-title .mark').textContent") == "stopped"
    browser.screenshot(tmp_path / "dashboard-marked.png")
