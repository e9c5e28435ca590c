"""Home (issue 21, item 17): the "train on this dataset" command fits the machine: a CPU command chosen
for this machine's cores and the training split's size, with its stated time, beside the GPU command.
And the Dataset page's data check (item 19's slip) says which splits it read."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]


def home(monkeypatch, tmp_path, data: Path | None, demo: Path) -> AppTest:
    for name in ("YOLO_DATA", "YOLO_CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)
    if data is not None:
        monkeypatch.setenv("YOLO_DATA", str(data))
    monkeypatch.setenv("YOLO_LOGS", str(tmp_path / "logs"))
    monkeypatch.setenv("YOLO_DEMO", str(demo))
    monkeypatch.setenv("YOLO_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(REPO / "dashboard" / "Home.py"), default_timeout=1800).run()  # a hang guard only
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_home_offers_a_cpu_command_with_its_time_beside_the_gpu_command(voc_mini, tmp_path, monkeypatch):
    from yolo.cpu import cpu_train_plan, usable_cores

    at = home(monkeypatch, tmp_path, voc_mini, tmp_path / "demo")
    codes = [c.value for c in at.code]
    plan = cpu_train_plan(usable_cores(), 960, 60)  # voc-mini's 2012/train: 960 images (split "train")
    cpu = next(c for c in codes if "--accelerator cpu" in c)
    assert cpu.startswith(f"OMP_NUM_THREADS={plan.threads} python train.py --data ")
    for flag in (f"--width {plan.width:g}", f"--min-size {plan.size}", f"--max-size {plan.size}",
                 f"--epochs {plan.epochs}", f"--workers {plan.workers}", "--precision 32-true",
                 "--train-sets train"):
        assert flag in cpu
    assert any("--preset voc" in c and "--accelerator cpu" not in c for c in codes)  # the GPU command beside it
    said = " ".join(c.value for c in at.caption)
    assert f"about **{plan.minutes:.0f} min**" in said and "960 training images" in said and plan.minutes <= 60


def test_data_check_names_the_split_it_read(tmp_path, monkeypatch):
    demo = tmp_path / "demo"
    at = home(monkeypatch, tmp_path, None, demo)  # writes the demo dataset (train, val, test, trainval)
    at.switch_page("views/dataset.py").run()
    assert not at.exception, [e.message for e in at.exception]
    said = [s.value for s in at.success if "No problems" in s.value]
    assert said and "of the train split" in said[0] and "every split" not in said[0].split("“")[0]
    at.toggle(key="ds_check_all").set_value(True).run()
    said = [s.value for s in at.success if "No problems" in s.value]
    assert said and "each of the 4 splits" in said[0]
