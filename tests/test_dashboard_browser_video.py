"""Detect's Video and Camera tabs in a real headless Chromium (the harness of
tests/test_dashboard_browser.py): a small clip uploaded through the page's file input and run; the
Camera tab with Chromium's fake camera (``--use-fake-device-for-media-stream``, permission granted
by ``--use-fake-ui-for-media-stream``): frames come back with detections, and frames/s is shown."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import test_dashboard_browser as harness
from test_video import demo_frames, write_clip

HANG_GUARD_S = 600  # gives up on a hang only; nothing here asserts speed
FAKE_CAMERA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
               "--autoplay-policy=no-user-gesture-required")

CLICK_TAB_JS = """(() => {
  const tab = Array.from(document.querySelectorAll('[role="tab"]')).find(b => b.innerText.trim() === %r);
  if (!tab) return false; tab.click(); return true;
})()"""
CLICK_BUTTON_JS = """(() => {
  const b = Array.from(document.querySelectorAll('button')).find(b => b.innerText.trim() === %r);
  if (!b) return false; b.click(); return true;
})()"""
METRICS_JS = """(() => Object.fromEntries(Array.from(document.querySelectorAll('[data-testid="stMetric"]')).map(m =>
  [m.querySelector('[data-testid="stMetricLabel"]').innerText.trim(),
   m.querySelector('[data-testid="stMetricValue"]').innerText.trim()])))()"""
START_CAMERA_JS = """(() => {
  for (const frame of document.querySelectorAll('iframe')) {
    let doc; try { doc = frame.contentDocument; } catch (e) { continue; }
    if (!doc) continue;
    const b = Array.from(doc.querySelectorAll('button')).find(b => /start/i.test(b.innerText));
    if (b) { b.click(); return true; }
  }
  return false;
})()"""
VIDEO_JS = """(() => {
  for (const frame of document.querySelectorAll('iframe')) {
    let doc; try { doc = frame.contentDocument; } catch (e) { continue; }
    const v = doc && doc.querySelector('video');
    if (v) return {width: v.videoWidth, height: v.videoHeight, time: v.currentTime};
  }
  return null;
})()"""


def wait_for(browser, check, what: str, timeout: float = HANG_GUARD_S):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1.0)
    tabs = browser.evaluate("Array.from(document.querySelectorAll('[role=tab]')).map(t => t.tagName + ':' + t.innerText)")
    raise AssertionError(f"timed out waiting for {what}; metrics {browser.evaluate(METRICS_JS)}; tabs {tabs}; "
                         f"page: {(browser.evaluate('document.body.innerText') or '')[:1500]}")


@pytest.fixture
def browser_and_server(tmp_path, monkeypatch):
    binary = harness.find_browser()
    if binary is None:
        pytest.skip("no Chromium found (Debian: apt-get install -y chromium); the browser test needs one")
    from websockets.sync.client import connect

    monkeypatch.setattr(harness, "CHROME_FLAGS", harness.CHROME_FLAGS + FAKE_CAMERA)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_")}
    env.update(YOLO_DEMO=str(tmp_path / "demo"), YOLO_LOGS=str(tmp_path / "logs"), YOLO_CACHE_DIR=str(tmp_path / "cache"))
    server = harness.Server(env, tmp_path / "streamlit.log")
    browser = harness.Chromium(binary, tmp_path / "profile", 1400, 2400)
    try:
        with connect(browser.ws_url, max_size=None, open_timeout=HANG_GUARD_S) as browser.ws:
            yield browser, server
    finally:
        browser.close()
        server.close()


@pytest.mark.slow
def test_video_upload_and_camera_in_a_real_browser(browser_and_server, tmp_path):
    browser, server = browser_and_server
    state = harness.open_and_wait(browser, f"{server.url}/Detect")
    assert state["exceptions"] == 0 and not state["errors"], state["text"][:2000]

    # Video: the clip through the page's own file input, then one run
    clip = write_clip(tmp_path / "clip.mkv", demo_frames(4))
    wait_for(browser, lambda: browser.evaluate(CLICK_TAB_JS % "Video"), "the Video tab", 120)
    document = browser.call("DOM.getDocument", depth=-1, pierce=True)["root"]["nodeId"]
    inputs = browser.call("DOM.querySelectorAll", nodeId=document, selector='input[type="file"]')["nodeIds"]
    assert inputs, "a file input on the page"
    browser.call("DOM.setFileInputFiles", nodeId=inputs[-1], files=[str(clip)])
    wait_for(browser, lambda: browser.evaluate(CLICK_BUTTON_JS % "Run the model over the clip"), "the run button")
    metrics = wait_for(browser, lambda: (m := browser.evaluate(METRICS_JS)) and m.get("Frames") == "4" and m,
                       "the clip's 4 frames")
    assert "Detections" in metrics
    browser.screenshot(harness.ARTIFACTS / "detect-video.png")

    # Camera: Chromium's fake device, START inside streamlit-webrtc's frame
    wait_for(browser, lambda: browser.evaluate(CLICK_TAB_JS % "Camera"), "the Camera tab", 120)
    wait_for(browser, lambda: browser.evaluate(START_CAMERA_JS), "the camera's START button")
    video = wait_for(browser, lambda: (v := browser.evaluate(VIDEO_JS)) and v["width"] > 0 and v["time"] > 0 and v,
                     "frames coming back from the server")
    metrics = wait_for(browser, lambda: (m := browser.evaluate(METRICS_JS)) and m.get("Frames/s", "–") != "–"
                       and int(m.get("Frames processed", "0")) > 1 and m, "frames/s shown")
    assert float(metrics["Frames/s"]) > 0 and metrics["Model"].endswith("ms")
    assert int(metrics["Detections"]) > 0, "boxes drawn (an untrained model at 0.02 finds plenty)"
    browser.screenshot(harness.ARTIFACTS / "detect-camera.png")
    assert video["width"] > 0
