"""The dashboard in a real headless Chromium: ``streamlit run dashboard/Home.py`` on a free local port
over the demo dataset (fresh clone: no runs), every page opened, no exception box or traceback in
the rendered page, and a screenshot of each kept under tests/artifacts/ (git-ignored).

Chromium is driven through its DevTools protocol with the ``websockets`` client that Streamlit
itself depends on, so no browser-automation package is needed; Debian's ``chromium`` package is.

Also a small tool for the README's screenshots (demo dataset only):
    python tests/test_dashboard_browser.py docs/screenshots --logs logs --pages Dataset Detect
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 1800  # gives up on a hung browser or server only; no test here asserts speed
ARTIFACTS = REPO / "tests" / "artifacts"
PAGES = {"Home": "", "Dataset": "Dataset", "Augmentations": "Augmentations", "Training": "Training",
         "Detect": "Detect", "GradCAM": "GradCAM", "Evaluate": "Evaluate"}
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--mute-audio")
STATE_JS = """(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app) return null;
  return {state: app.getAttribute('data-test-script-state'),
          connection: app.getAttribute('data-test-connection-state'),
          title: (document.querySelector('h1') || {}).innerText || null,
          exceptions: document.querySelectorAll('[data-testid="stException"]').length,
          errors: Array.from(document.querySelectorAll('[data-testid="stAlertContentError"]')).map(e => e.innerText),
          spinners: document.querySelectorAll('[data-testid="stSpinner"]').length,
          text: document.body.innerText};
})()"""


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Chromium:
    """A headless Chromium and one page, over the DevTools protocol (JSON over a WebSocket)."""

    def __init__(self, binary: str, profile: Path, width: int = 1400, height: int = 1800):
        self.ws = None  # the page's DevTools WebSocket (``browse`` opens it from ``ws_url``)
        self.proc = subprocess.Popen([binary, *CHROME_FLAGS, f"--user-data-dir={profile}",
                                      "--remote-debugging-port=0", f"--window-size={width},{height}",
                                      "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + HANG_GUARD_S
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError(f"{binary} did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=HANG_GUARD_S) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self.ws_url = page["webSocketDebuggerUrl"]
        self._next = 0

    def call(self, method: str, **params):
        self._next += 1
        self.ws.send(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=HANG_GUARD_S))
            if message.get("id") == self._next:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Server:
    """``streamlit run dashboard/Home.py`` on a free port, from the repository root, with the given
    environment (dashboard/.streamlit/config.toml applies from any folder)."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.log = open(log, "wb")  # noqa: SIM115  (closed in close(), after the server stops)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/Home.py", "--server.port", str(self.port),
             "--server.headless", "true"], cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + HANG_GUARD_S
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        return
            except OSError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError(f"streamlit did not start; see {log}")
            time.sleep(0.3)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def open_and_wait(browser: Chromium, url: str, timeout: float = HANG_GUARD_S) -> dict:
    """Navigate, then wait until the script has run to the end and the page is drawn."""
    browser.call("Page.navigate", url=url)
    deadline, seen_running, settled = time.time() + timeout, False, 0
    state: dict = {}
    while time.time() < deadline:
        time.sleep(0.5)
        state = browser.evaluate(STATE_JS) or {}
        seen_running |= state.get("state") == "running"
        done = state.get("state") == "notRunning" and state.get("title") and not state.get("spinners")
        settled = settled + 1 if done else 0
        if settled >= 3 or (done and not seen_running and settled >= 6):
            time.sleep(1.0)  # images and charts finish drawing
            return browser.evaluate(STATE_JS) or state
    raise AssertionError(f"{url} did not finish rendering in {timeout} s; last state: "
                         f"{ {k: v for k, v in state.items() if k != 'text'} }")


def browse(env: dict[str, str], out: Path, pages=PAGES, log: Path | None = None,
           window: tuple[int, int] = (1400, 1800)) -> dict[str, dict]:
    """Open every page in a fresh browser against a fresh server; screenshots into ``out``."""
    binary = find_browser()
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory() as profile:
        server = Server(env, log or Path(profile) / "streamlit.log")
        try:
            from websockets.sync.client import connect

            browser = Chromium(binary, Path(profile), *window)
            try:
                with connect(browser.ws_url, max_size=None, open_timeout=HANG_GUARD_S) as browser.ws:
                    for name in pages:
                        results[name] = open_and_wait(browser, f"{server.url}/{PAGES[name]}")
                        browser.screenshot(out / f"{name.lower()}.png")
            finally:
                browser.close()
        finally:
            server.close()
    return results


@pytest.mark.slow
def test_every_page_in_a_real_browser(tmp_path):
    if find_browser() is None:
        pytest.skip("no Chromium found (Debian: apt-get install -y chromium); the browser test needs one")
    pytest.importorskip("websockets.sync.client", reason="needs the websockets package (a Streamlit dependency)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_")}
    env.update(YOLO_DEMO=str(tmp_path / "demo"), YOLO_LOGS=str(tmp_path / "logs"),
               YOLO_CACHE_DIR=str(tmp_path / "cache"))
    results = browse(env, ARTIFACTS, log=ARTIFACTS / "streamlit.log")
    for name, state in results.items():
        assert state["connection"] in (None, "CONNECTED"), f"{name}: {state['connection']}"
        assert state["exceptions"] == 0, f"{name}: an exception box is shown:\n{state['text'][:3000]}"
        assert "Traceback" not in state["text"], f"{name}: a traceback is shown"
        assert not state["errors"], f"{name}: error messages {state['errors']}"
        assert (ARTIFACTS / f"{name.lower()}.png").stat().st_size > 10_000
    assert "YOLOv3 on Pascal VOC" in results["Home"]["title"]
    assert "built-in demo dataset" in results["Home"]["text"]
    assert "Train the demo model" in results["Home"]["text"]
    assert "No trained checkpoint yet" in results["Detect"]["text"]


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of dashboard pages over the demo dataset")
    parser.add_argument("out", type=Path)
    parser.add_argument("--logs", type=Path, help="runs folder to show (default: a fresh empty one)")
    parser.add_argument("--pages", nargs="+", default=list(PAGES), choices=list(PAGES))
    parser.add_argument("--window", default="1400x1800", help="browser window WIDTHxHEIGHT")
    args = parser.parse_args()
    window = tuple(int(v) for v in args.window.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_")}
        env.update(YOLO_LOGS=str((args.logs or Path(tmp) / "logs").resolve()))
        if os.environ.get("YOLO_DEMO"):
            env["YOLO_DEMO"] = os.environ["YOLO_DEMO"]
        for name, state in browse(env, args.out, args.pages, window=window).items():
            print(f"{name}: {'ok' if not state['exceptions'] and not state['errors'] else state['errors']}")


if __name__ == "__main__":
    main()
