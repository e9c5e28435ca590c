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
    raw = next(t for t in loss["data"] if t.get("opacity") == 0.25)  # the faint unsmoothed trace
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
    assert {t["name"] for t in figures["train/lr"]["data"]} == {"old/version_0"}
    assert {t["name"] for t in figures["train/lr/pg1"]["data"]} == {"new/version_0"}
