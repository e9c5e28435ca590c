"""The Training page on a long run (streamlit.testing.v1.AppTest): every curve is drawn from at
most MAX_POINTS points by the stated rule, while the tables use every logged value."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]


def values(array) -> list:
    """A plotly JSON array as a list: plain, or plotly 6's {"dtype", "bdata"} typed array."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array)


def test_long_run_curves_are_thinned_tables_exact(tmp_path, monkeypatch):
    steps = 6000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"epoch": np.arange(steps) // 1000, "step": np.arange(steps),
                          "train/loss_step": rng.gamma(2.0, 1.0, steps)})
    frame.loc[4321, "train/loss_step"] = 99.0  # a spike that must stay visible
    epochs = pd.DataFrame({"epoch": range(6), "step": np.arange(6) * 1000 + 999,
                           "val/map50": np.linspace(0.1, 0.6, 6)})
    run = tmp_path / "logs" / "long" / "version_0"
    run.mkdir(parents=True)
    pd.concat([frame, epochs]).sort_values("step", kind="stable").to_csv(run / "metrics.csv", index=False)
    for name in ("YOLO_DATA", "YOLO_CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOLO_LOGS", str(tmp_path / "logs"))
    monkeypatch.setenv("YOLO_DEMO", str(tmp_path / "demo"))
    monkeypatch.setenv("YOLO_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(REPO / "dashboard" / "Home.py"), default_timeout=1800).run()  # a hang guard only
    at.switch_page("views/training.py").run()
    at.radio(key="tr_kind").set_value("per step").run()
    assert not at.exception, [e.message for e in at.exception]
    figures = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)
               for c in at.get("plotly_chart")}
    loss = figures["train/loss"]
    sizes = [len(values(t["x"])) for t in loss["data"]]
    assert sizes and max(sizes) <= 2000
    assert any("drawn from 2,000" in c.value for c in at.caption)
    raw = next(t for t in loss["data"] if t["name"].endswith("(every value)"))  # the faint unsmoothed trace
    assert 99.0 in values(raw["y"])
    assert at.dataframe[0].value["last_step"].tolist() == [steps - 1]  # the summary saw every row


def test_learning_rate_of_old_and_new_runs_is_plotted(tmp_path, monkeypatch):
    """Runs logged before LearningRateMonitor have ``train/lr`` (the module logged it); newer ones
    ``train/lr/pg1`` and ``/pg2`` (the monitor, named after the scheduler): both are offered in the
    learning-rate group and drawn."""
    from yolo.logs import group_metrics

    logs = tmp_path / "logs"
    for name, keys in (("old", ["train/lr"]), ("new", ["train/lr/pg1", "train/lr/pg2"])):
        run = logs / name / "version_0"
        run.mkdir(parents=True)
        rows = pd.DataFrame({"epoch": 0, "step": [0, 10, 20], **{k: [1e-4, 5e-4, 1e-3] for k in keys}})
        rows.to_csv(run / "metrics.csv", index=False)
    assert group_metrics(["train/lr", "train/lr/pg1", "train/lr/pg2"]) == {
        "lr": ["train/lr", "train/lr/pg1", "train/lr/pg2"]}
    for name in ("YOLO_DATA", "YOLO_CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOLO_LOGS", str(logs))
    monkeypatch.setenv("YOLO_DEMO", str(tmp_path / "demo"))
    monkeypatch.setenv("YOLO_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(REPO / "dashboard" / "Home.py"), default_timeout=1800).run()  # a hang guard only
    at.switch_page("views/training.py").run()
    assert set(at.multiselect(key="tr_metrics").options) >= {"train/lr", "train/lr/pg1", "train/lr/pg2"}
    at.multiselect(key="tr_metrics").set_value(["train/lr", "train/lr/pg1"]).run()
    assert not at.exception, [e.message for e in at.exception]
    figures = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)
               for c in at.get("plotly_chart")}
    assert {t["name"] for t in figures["train/lr"]["data"] if t.get("showlegend") is not False} == {"old/version_0"}
    assert {t["name"] for t in figures["train/lr/pg1"]["data"] if t.get("showlegend") is not False} == {"new/version_0"}


def open_training(tmp_path, monkeypatch, logs: Path) -> AppTest:
    for name in ("YOLO_DATA", "YOLO_CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOLO_LOGS", str(logs))
    monkeypatch.setenv("YOLO_DEMO", str(tmp_path / "demo"))
    monkeypatch.setenv("YOLO_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(REPO / "dashboard" / "Home.py"), default_timeout=1800).run()  # a hang guard only
    at.switch_page("views/training.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_several_runs_colours_last_value_and_empty_run(tmp_path, monkeypatch):
    """Issue 21, item 16. Three runs: two with 10 epochs of val/map50 (one rising to 0.975), one whose
    metrics.csv has only its header. Each run's faint line is a lighter shade of its OWN bold line's
    colour (not of the next run's); the default smoothing leaves a 10-point curve ending at its last
    value (0.975, where a 0.6 EMA ended at 0.88), and a dot marks each last value; the empty run is
    named as having nothing to draw."""
    from yolo.logs import run_colours, smooth

    logs = tmp_path / "logs"
    rising = np.array([0.1, 0.3, 0.45, 0.55, 0.62, 0.7, 0.76, 0.83, 0.9, 0.975])
    for name, curve in (("alpha", rising), ("beta", rising[::-1] * 0.5)):
        run = logs / name / "version_0"
        run.mkdir(parents=True)
        pd.DataFrame({"epoch": range(10), "step": np.arange(10) * 10 + 9, "val/map50": curve,
                      "train/loss_step": 5 - curve}).to_csv(run / "metrics.csv", index=False)
    empty = logs / "gamma" / "version_0"
    empty.mkdir(parents=True)
    (empty / "metrics.csv").write_text("epoch,step,val/map50\n")
    assert smooth(rising, 0.6)[-1] < 0.88  # the old default (0.6) ended the bold line 0.1 below the last value

    at = open_training(tmp_path, monkeypatch, logs)
    at.multiselect(key="tr_runs").set_value(["alpha/version_0", "beta/version_0", "gamma/version_0"]).run()
    at.multiselect(key="tr_metrics").set_value(["val/map50", "train/loss"]).run()
    at.radio(key="tr_kind").set_value("per step").run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("gamma/version_0" in i.value and "Nothing to draw" in i.value for i in at.info)
    assert at.slider(key="tr_smooth").value == 0.0
    figures = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)
               for c in at.get("plotly_chart")}
    curve = {t["name"]: t for t in figures["val/map50"]["data"]}
    assert values(curve["alpha/version_0"]["y"])[-1] == pytest.approx(0.975)
    assert values(curve["alpha/version_0 (last value)"]["y"]) == [pytest.approx(0.975)]
    assert values(curve["beta/version_0 (last value)"]["y"]) == [pytest.approx(0.05)]

    at.slider(key="tr_smooth").set_value(0.6).run()  # smoothed: bold line + faint line per run
    assert not at.exception, [e.message for e in at.exception]
    figures = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)
               for c in at.get("plotly_chart")}
    colours = run_colours(["alpha/version_0", "beta/version_0", "gamma/version_0"])
    for title in ("val/map50", "train/loss"):
        traces = {t["name"]: t for t in figures[title]["data"]}
        for run in ("alpha/version_0", "beta/version_0"):
            bold, faint = traces[run]["line"]["color"], traces[f"{run} (every value)"]["line"]["color"]
            assert (bold, faint) == colours[run]
            assert traces[f"{run} (last value)"]["marker"]["color"] == bold
        assert traces["alpha/version_0"]["line"]["color"] != traces["beta/version_0"]["line"]["color"]
    assert values({t["name"]: t for t in figures["val/map50"]["data"]}["alpha/version_0 (last value)"]["y"]) \
        == [pytest.approx(0.975)]


def test_run_colour_families_and_default_smoothing():
    """The faint colour is the bold one mixed 60 % toward white (hand-worked for plotly's first
    colour #636EFA); the default weight keeps the EMA's lag w / (1 - w) near 1/40 of the curve."""
    from yolo.logs import default_smoothing, run_colours

    pairs = run_colours(["a", "b"])
    assert pairs["a"] == ("#636EFA", "#C1C5FD")  # 0x63 + 0.6 * (255 - 0x63) = 192.6 -> C1, ...
    assert pairs["b"][0] != pairs["a"][0]
    assert default_smoothing(10) == 0.0 and default_smoothing(20) == 0.0
    assert default_smoothing(80) == 0.6 and default_smoothing(380) == 0.9
    assert default_smoothing(10**6) == 0.99
    for n in (100, 400, 2000):
        w = default_smoothing(n)
        assert w / (1 - w) == pytest.approx(n / 40 - 0.5, rel=0.1)
