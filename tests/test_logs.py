"""yolo.logs: Lightning logs -> tidy frames. The reference run is made by a real Lightning Trainer
(CSVLogger + TensorBoardLogger, 2 epochs on the CPU); the robustness cases are hand-made files in
the same format (sorted header, "\\r\\n" line ends, sparse rows), checked against the real one."""

from __future__ import annotations

import csv
import io
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from yolo import logs, runs

N_BATCHES = 4  # per epoch: 8 samples, batch size 2
N_EPOCHS = 2


# ----------------------------------------------------------------------------------- fixtures
def _fit(root: Path, max_epochs: int, resume_from: Path | None = None):
    """Fit a tiny module with CSVLogger + TensorBoardLogger (name "tiny", version 0) on the CPU;
    returns the module, whose ``step_losses`` lists every logged (step, epoch, train/loss)."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(pl.LightningModule):
        def __init__(self, lr: float = 0.1):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(2, 1)
            self.step_losses: list[tuple[int, int, float]] = []

        def training_step(self, batch, batch_idx):
            loss = self.layer(batch[0]).pow(2).mean()
            self.log("train/loss", loss, on_step=True, on_epoch=True)
            self.step_losses.append((self.global_step, self.current_epoch, loss.item()))
            return loss

        def validation_step(self, batch, batch_idx):
            self.log("val/map50", 0.25 + 0.5 * self.current_epoch, on_epoch=True)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(2 * N_BATCHES, 2)), batch_size=2)
    model = Tiny()
    trainer = pl.Trainer(
        max_epochs=max_epochs, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, log_every_n_steps=1, num_sanity_val_steps=0,
        logger=[CSVLogger(root, name="tiny", version=0), TensorBoardLogger(root, name="tiny", version=0)],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, data, data, ckpt_path=resume_from)
        trainer.save_checkpoint(root / "tiny" / "last.ckpt")
    return model


@pytest.fixture(scope="module")
def lightning_run(tmp_path_factory):
    """A real 2-epoch Lightning run: (run dir, logged step losses [(step, epoch, value)],
    logged val values {epoch: value})."""
    root = tmp_path_factory.mktemp("lightning") / "logs"
    model = _fit(root, N_EPOCHS)
    return root / "tiny" / "version_0", model.step_losses, {0: 0.25, 1: 0.75}


def _write_csv(path: Path, rows: list[dict]) -> str:
    """Write rows the way Lightning's CSVLogger does: sorted union of keys as header, DictWriter
    with its default "\\r\\n" line ends, empty cells for metrics not in a row. Returns the text."""
    keys = sorted(set().union(*rows))
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode())
    return buffer.getvalue()


ROWS = [
    {"epoch": 0, "step": 0, "train/loss_step": 1.5},
    {"epoch": 0, "step": 1, "train/loss_step": 1.25},
    {"epoch": 0, "step": 1, "val/map50": 0.125},
    {"epoch": 0, "step": 1, "train/loss_epoch": 1.375},
    {"epoch": 1, "step": 2, "train/loss_step": 1.0},
    {"epoch": 1, "step": 3, "train/loss_step": 0.5},
    {"epoch": 1, "step": 3, "val/map50": 0.25},
    {"epoch": 1, "step": 3, "train/loss_epoch": 0.75},
]


def _values(df: pd.DataFrame, metric: str, kind: str) -> dict[int, float]:
    sel = df[(df["metric"] == metric) & (df["kind"] == kind)]
    return dict(zip(sel["step"].tolist(), sel["value"].tolist()))


# ----------------------------------------------------------------------------------- real run
def test_hand_made_csv_matches_lightning_format(lightning_run):
    run_dir, _, _ = lightning_run
    raw = (run_dir / "metrics.csv").read_bytes().decode()
    header = raw.split("\r\n")[0].split(",")
    assert header == sorted(header) == ["epoch", "step", "train/loss_epoch", "train/loss_step",
                                        "val/map50"]
    assert raw.endswith("\r\n")
    assert _write_csv(run_dir.parent / "scratch.csv", ROWS).split("\r\n")[0] == ",".join(header)


def test_csv_values_equal_what_was_logged(lightning_run):
    run_dir, step_losses, val_values = lightning_run
    found: list[str] = []
    df = logs.read_metrics(run_dir, found, use_events=False)
    assert found == [] and df.attrs["warnings"] == []
    assert list(df.columns) == list(logs.COLUMNS)
    assert set(df["source"]) == {"csv"} and set(df["run"]) == {"tiny/version_0"}
    steps = _values(df, "train/loss", "step")
    assert steps == pytest.approx({s: v for s, _, v in step_losses}, rel=1e-7)
    epoch_rows = df[(df["metric"] == "train/loss") & (df["kind"] == "epoch")]
    for epoch in range(N_EPOCHS):
        logged = [v for _, e, v in step_losses if e == epoch]
        row = epoch_rows[epoch_rows["epoch"] == epoch]
        assert row["value"].item() == pytest.approx(np.mean(logged), rel=1e-6)
        assert row["step"].item() == (epoch + 1) * N_BATCHES - 1
    val = df[df["metric"] == "val/map50"]
    assert set(val["kind"]) == {"plain"}
    assert dict(zip(val["epoch"].tolist(), val["value"].tolist())) == val_values
    step_epochs = df[df["kind"] == "step"]
    assert (step_epochs["epoch"] == step_epochs["step"] // N_BATCHES).all()


def test_tensorboard_fallback_equals_csv(lightning_run, tmp_path):
    run_dir, _, _ = lightning_run
    from_csv = logs.read_metrics(run_dir, use_events=False)
    copy = tmp_path / "tiny" / "version_0"
    shutil.copytree(run_dir, copy)
    (copy / "metrics.csv").unlink()
    found: list[str] = []
    from_tb = logs.read_metrics(copy, found)
    assert found == []
    assert set(from_tb["source"]) == {"tensorboard"}
    key = ["metric", "kind", "step", "epoch"]
    a = from_csv.sort_values(key).reset_index(drop=True)
    b = from_tb.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[key], b[key])
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-7)


def test_merge_fills_from_events_without_duplicates(lightning_run, tmp_path):
    run_dir, _, _ = lightning_run
    full = logs.read_metrics(run_dir, use_events=False)
    copy = tmp_path / "tiny" / "version_0"
    shutil.copytree(run_dir, copy)
    lines = (copy / "metrics.csv").read_bytes().split(b"\r\n")
    (copy / "metrics.csv").write_bytes(b"\r\n".join(lines[:4]) + b"\r\n")  # header + 3 rows
    merged = logs.read_metrics(copy)
    assert (merged["source"] == "csv").sum() == 3
    assert not merged.duplicated(["metric", "kind", "step"]).any()
    key = ["metric", "kind", "step"]
    pd.testing.assert_frame_equal(merged.sort_values(key)[key].reset_index(drop=True),
                                  full.sort_values(key)[key].reset_index(drop=True))


def test_resumed_run_recovers_history_from_events(tmp_path):
    """Lightning's CSVLogger deletes metrics.csv when a version folder is reused (a resume); the
    TensorBoard events keep the earlier epochs, and the merge shows the whole run once."""
    root = tmp_path / "logs"
    first = _fit(root, 1)
    second = _fit(root, 2, resume_from=root / "tiny" / "last.ckpt")
    run_dir = root / "tiny" / "version_0"
    csv_only = logs.read_metrics(run_dir, use_events=False)
    assert set(csv_only["epoch"]) == {1}  # the CSV lost epoch 0
    found: list[str] = []
    df = logs.read_metrics(run_dir, found)
    assert found == []
    assert not df.duplicated(["metric", "kind", "step"]).any()
    logged = {s: v for s, _, v in first.step_losses + second.step_losses}
    assert _values(df, "train/loss", "step") == pytest.approx(logged, rel=1e-7)
    assert logs.epoch_table(df)["val/map50"].tolist() == [0.25, 0.75]


def test_epoch_table_and_summary(lightning_run):
    run_dir, step_losses, val_values = lightning_run
    df = logs.read_metrics(run_dir)
    table = logs.epoch_table(df)
    assert list(table.columns) == ["run", "epoch", "step", "train/loss", "val/map50"]
    assert table["epoch"].tolist() == [0, 1]
    assert table["step"].tolist() == [N_BATCHES - 1, 2 * N_BATCHES - 1]
    assert table["val/map50"].tolist() == [val_values[0], val_values[1]]
    mean0 = np.mean([v for _, e, v in step_losses if e == 0])
    assert table.loc[0, "train/loss"] == pytest.approx(mean0, rel=1e-6)
    summary = logs.run_summary(df)
    assert summary.loc[0, "best"] == 0.75 and summary.loc[0, "best_epoch"] == 1
    assert summary.loc[0, "epochs"] == 2 and summary.loc[0, "last_step"] == 2 * N_BATCHES - 1
    assert np.isnan(logs.run_summary(df, monitor="val/absent").loc[0, "best"])


def test_epoch_table_uses_last_step_value_when_no_epoch_aggregate(tmp_path):
    rows = [{"epoch": 0, "step": s, "train/lr": 0.1 * (s + 1)} for s in range(3)]
    _write_csv(tmp_path / "r" / "version_0" / "metrics.csv", rows)
    table = logs.epoch_table(logs.read_metrics(tmp_path / "r" / "version_0"))
    assert table["train/lr"].tolist() == pytest.approx([0.3])


# ----------------------------------------------------------------------------------- robustness
@pytest.fixture
def run_dir(tmp_path) -> Path:
    path = tmp_path / "demo" / "version_0"
    path.mkdir(parents=True)
    return path


def test_hand_made_csv_parses(run_dir):
    _write_csv(run_dir / "metrics.csv", ROWS)
    found: list[str] = []
    df = logs.read_metrics(run_dir, found)
    assert found == []
    assert _values(df, "train/loss", "step") == {0: 1.5, 1: 1.25, 2: 1.0, 3: 0.5}
    assert _values(df, "train/loss", "epoch") == {1: 1.375, 3: 0.75}
    assert _values(df, "val/map50", "plain") == {1: 0.125, 3: 0.25}
    assert df["epoch"].dtype == "Int64" and df["step"].dtype == "int64"


def test_truncated_last_line_is_dropped(run_dir):
    text = _write_csv(run_dir / "metrics.csv", ROWS)
    (run_dir / "metrics.csv").write_bytes(text[:-5].encode())  # "3,,0.7" : cut mid-row
    found: list[str] = []
    df = logs.read_metrics(run_dir, found)
    assert _values(df, "train/loss", "epoch") == {1: 1.375}  # the half-written 0.75 row is gone
    assert len(df) == len(ROWS) - 1
    assert any("incomplete" in w for w in found)


def test_header_only_and_partial_header(run_dir):
    path = run_dir / "metrics.csv"
    path.write_bytes(b"epoch,step,train/loss_step\r\n")
    found: list[str] = []
    df = logs.read_metrics(run_dir, found)
    assert df.empty and list(df.columns) == list(logs.COLUMNS)
    path.write_bytes(b"epoch,st")
    found.clear()
    assert logs.read_metrics(run_dir, found).empty
    assert any("header" in w for w in found)


def test_empty_file(run_dir):
    (run_dir / "metrics.csv").write_bytes(b"")
    found: list[str] = []
    assert logs.read_metrics(run_dir, found).empty
    assert any("empty" in w for w in found)


def test_malformed_rows_are_skipped_and_counted(run_dir):
    text = _write_csv(run_dir / "metrics.csv", ROWS[:2])
    # header: epoch,step,train/loss_step
    text += "0,2,oops\r\n" + "0,3,1,2\r\n" + "garbage\r\n" + "0,,9.0\r\n" + "0,4,0.5\r\n"
    (run_dir / "metrics.csv").write_bytes(text.encode())
    found: list[str] = []
    df = logs.read_metrics(run_dir, found)
    assert _values(df, "train/loss", "step") == {0: 1.5, 1: 1.25, 4: 0.5}
    assert any("2 malformed row" in w for w in found)
    assert any("non-numeric" in w for w in found)
    assert any("without a step" in w for w in found)


def test_binary_garbage_csv_does_not_raise(run_dir):
    (run_dir / "metrics.csv").write_bytes(bytes(range(256)) * 4)
    found: list[str] = []
    assert logs.read_metrics(run_dir, found).empty
    assert found


def test_missing_files_and_directories(tmp_path, run_dir):
    found: list[str] = []
    assert logs.read_metrics(tmp_path / "nope" / "version_0", found).empty
    assert any("not found" in w for w in found)
    found.clear()
    assert logs.read_metrics(run_dir, found).empty
    assert any("no metrics.csv" in w for w in found)


def test_corrupt_events_file_keeps_csv(run_dir):
    _write_csv(run_dir / "metrics.csv", ROWS)
    (run_dir / "events.out.tfevents.1.host.1.0").write_bytes(np.random.default_rng(0).bytes(3000))
    found: list[str] = []
    df = logs.read_metrics(run_dir, found)
    assert len(df) == len(ROWS) and set(df["source"]) == {"csv"}
    assert any("corrupt" in w for w in found)


def _flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def test_truncated_and_damaged_events_give_readable_prefix(lightning_run, tmp_path):
    run_dir, _, _ = lightning_run
    (events,) = run_dir.glob("events.out.tfevents.*")
    full = logs.read_metrics(run_dir, use_events=False)
    for case, damage in (("cut", lambda b: b[: len(b) * 3 // 5]),
                         ("flip", lambda b: _flip_byte(b, len(b) * 3 // 4))):
        copy = tmp_path / case / "version_0"
        copy.mkdir(parents=True)
        (copy / events.name).write_bytes(damage(events.read_bytes()))
        found: list[str] = []
        df = logs.read_metrics(copy, found)
        assert 0 < len(df) < len(full), case
        merged = df.merge(full, on=["metric", "kind", "step"], suffixes=("", "_csv"))
        assert len(merged) == len(df)
        np.testing.assert_allclose(merged["value"], merged["value_csv"], rtol=1e-7)
        assert any(("still writing" if case == "cut" else "corrupt") in w for w in found), found


def test_resumed_run_keeps_last_value_per_step(run_dir):
    rows = ROWS[:2] + [{"epoch": 0, "step": 1, "train/loss_step": 9.0}]
    _write_csv(run_dir / "metrics.csv", rows)
    assert _values(logs.read_metrics(run_dir), "train/loss", "step") == {0: 1.5, 1: 9.0}


def test_read_runs_concatenates_and_collects_warnings(tmp_path):
    _write_csv(tmp_path / "a" / "version_0" / "metrics.csv", ROWS)
    (tmp_path / "b" / "version_1").mkdir(parents=True)
    (tmp_path / "b" / "version_1" / "metrics.csv").write_bytes(b"")
    found: list[str] = []
    runs = [tmp_path / "a" / "version_0", tmp_path / "b" / "version_1"]
    df = logs.read_runs(runs, found)
    assert set(df["run"]) == {"a/version_0"} and len(df) == len(ROWS)
    assert len(found) == 1 and df.attrs["warnings"] == found
    assert logs.read_runs([]).empty


# ----------------------------------------------------------------------------------- names
def test_suffix_normalisation():
    assert logs.normalise_metric("train/loss_step") == ("train/loss", "step")  # a project key
    assert logs.normalise_metric("val/map50_epoch") == ("val/map50", "epoch")
    assert logs.normalise_metric("foo_step", ["foo_epoch"]) == ("foo", "step")
    assert logs.normalise_metric("time_per_step") == ("time_per_step", "plain")
    assert logs.normalise_metric("val/map50") == ("val/map50", "plain")


def test_groups_and_targets():
    names = ["train/loss", "val/loss_box", "train/class_acc", "val/noobj_acc", "val/map50",
             "val/map50_voc07", "train/lr", "lr-SGD", "train/images_per_s", "train/skipped_nonfinite"]
    groups = logs.group_metrics(names)
    assert list(groups) == ["loss", "accuracy", "map", "lr", "speed", "other"]
    assert groups["loss"] == ["train/loss", "val/loss_box"]
    assert groups["accuracy"] == ["train/class_acc", "val/noobj_acc"]
    assert groups["map"] == ["val/map50", "val/map50_voc07"]
    assert groups["lr"] == ["lr-SGD", "train/lr"]
    assert groups["speed"] == ["train/images_per_s"]
    assert logs.seed_target("val/class_acc") == 75.0 and logs.seed_target("val/map50") is None
    assert logs.split_metric("lr-SGD") == ("", "lr-SGD")


# ----------------------------------------------------------------------------------- smoothing
def _tensorboard_ema(values, weight):
    """TensorBoard's smoothing loop, written out: debiased EMA over finite points."""
    last, count, out = 0.0, 0, []
    for v in values:
        if not np.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        count += 1
        out.append(last / (1 - weight ** count))
    return np.array(out)


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.9, 0.99])
def test_smooth_matches_hand_computed_ema(weight):
    values = np.array([1.0, 3.0, np.nan, 2.0, 8.0, np.inf, 4.0, 5.0])
    np.testing.assert_allclose(logs.smooth(values, weight), _tensorboard_ema(values, weight))


def test_smooth_edges():
    assert logs.smooth([2.0, 4.0], 0.5) == pytest.approx([2.0, (0.25 * 2 + 0.5 * 4) / 0.75])
    assert logs.smooth([1.0, 2.0, 6.0], 1.0) == pytest.approx([1.0, 1.5, 3.0])  # running mean
    assert logs.smooth([], 0.5).shape == (0,)
    with pytest.raises(ValueError):
        logs.smooth([1.0], 1.5)


def test_smooth_frame_smooths_each_series_in_step_order(run_dir):
    _write_csv(run_dir / "metrics.csv", ROWS)
    out = logs.smooth_frame(logs.read_metrics(run_dir), 0.5)
    sel = out[(out["metric"] == "train/loss") & (out["kind"] == "step")]
    np.testing.assert_allclose(sel["smoothed"], _tensorboard_ema(sel["value"].to_numpy(), 0.5))
    val = out[out["metric"] == "val/map50"]
    np.testing.assert_allclose(val["smoothed"], _tensorboard_ema(val["value"].to_numpy(), 0.5))


# ----------------------------------------------------------------------------------- find_runs (yolo.runs)
def test_find_runs(tmp_path):
    root = tmp_path / "logs"
    _write_csv(root / "demo" / "version_0" / "metrics.csv", ROWS)
    (root / "demo" / "version_0" / "config.yaml").write_text("model:\n  width: 0.25\nepochs: 3\n")
    ckpts = root / "demo" / "version_0" / "checkpoints"
    ckpts.mkdir()
    for name in ("last.ckpt", "best-epoch=1.ckpt"):
        (ckpts / name).write_bytes(b"x")
    for version in ("version_10", "version_2"):
        (root / "demo" / version).mkdir(parents=True)
        (root / "demo" / version / "hparams.yaml").write_text("{}\n")
    (root / "bad" / "version_0").mkdir(parents=True)
    (root / "bad" / "version_0" / "config.yaml").write_text("a: [unclosed\n")
    (root / "bad" / "version_0" / "events.out.tfevents.1.h.1.0").write_bytes(b"")
    (root / "empty_name").mkdir()

    found = runs.find_runs(root)
    assert [r.label for r in found] == ["bad/version_0", "demo/version_0", "demo/version_2",
                                       "demo/version_10"]
    bad, demo = found[0], found[1]
    assert bad.has_events and not bad.has_metrics_csv and bad.config is None
    assert bad.warnings and "unreadable YAML" in bad.warnings[0]
    assert demo.has_metrics_csv and demo.has_checkpoints and not demo.has_events
    assert demo.config == {"model": {"width": 0.25}, "epochs": 3}
    assert demo.last_checkpoint == ckpts / "last.ckpt"
    assert demo.best_checkpoint == ckpts / "best-epoch=1.ckpt"
    assert demo.modified > 0
    assert found[2].config is None and not found[2].has_checkpoints
    df = logs.read_metrics(demo)
    assert set(df["run"]) == {"demo/version_0"}
    assert runs.find_runs(tmp_path / "missing") == []


# ----------------------------------------------------------------------------------- big / live files
def _reference_tidy(text: str) -> tuple[set, int, int]:
    """The reader's rules written plainly over the csv module, row by row: rows of the header's
    field count; a value is a non-empty numeric cell of a row with a numeric step; per column
    the last value at a step wins. Returns ({(metric, kind, step, epoch, value)}, malformed rows,
    non-numeric cells)."""
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    header, body = rows[0], rows[1:]
    names = set(header) - {"step", "epoch"}
    last, malformed, bad = {}, 0, 0

    def number(cell):
        try:
            return float(cell)
        except ValueError:
            return None

    for row in body:
        if len(row) != len(header):
            malformed += 1
            continue
        cells = dict(zip(header, row))
        for name in header:
            if row[header.index(name)].strip() and number(row[header.index(name)]) is None:
                bad += 1
        step = number(cells["step"]) if cells["step"].strip() else None
        if step is None:
            continue
        epoch = number(cells["epoch"]) if cells["epoch"].strip() else None
        for name in names:
            value = number(cells[name]) if cells[name].strip() else None
            if value is not None and not np.isnan(value):
                last[(name, int(step))] = (None if epoch is None else int(round(epoch)), value)
    out = set()
    for (name, step), (epoch, value) in last.items():
        metric, kind = logs.normalise_metric(name, names)
        out.add((metric, kind, step, epoch, value))
    return out, malformed, bad


def _tidy_set(df: pd.DataFrame) -> set:
    return {(m, k, int(s), None if pd.isna(e) else int(e), float(v))
            for m, k, s, e, v in zip(df["metric"], df["kind"], df["step"], df["epoch"], df["value"])}


def assert_same_tidy(got: set, expected: set) -> None:
    """Equal keys and epochs; values equal to 1e-13 relative (pandas' fast float parser, like the
    reader before it, may differ from Python's float() in the last few bits of a 17-digit text)."""
    assert sorted(t[:4] for t in got) == sorted(t[:4] for t in expected)
    np.testing.assert_allclose([t[4] for t in sorted(got)], [t[4] for t in sorted(expected)], rtol=1e-13)


def _messy_csv(rng: np.random.Generator, n: int) -> str:
    """A CSVLogger-like file with resumed (repeated) steps, sparse rows and some damage."""
    rows = []
    step = 0
    for k in range(n):
        step = max(0, step + int(rng.integers(-3, 4)))  # sometimes back: a resumed run
        row = {"epoch": step // 50, "step": step, "train/loss_step": float(rng.normal())}
        if k % 7 == 0:
            row["train/lr"] = float(rng.uniform())
        if k % 50 == 49:
            row = {"epoch": step // 50, "step": step, "train/loss_epoch": float(rng.normal()),
                   "val/map50": float(rng.uniform())}
        rows.append(row)
    keys = ["epoch", "step", "train/loss_epoch", "train/loss_step", "train/lr", "val/map50"]
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    lines = buffer.getvalue().split("\r\n")
    damage = ["0,1,2", "garbage", "1,2,3,4,5,6,7", "1,,,oops,,", ",,,1.5,,", "", "2,abc,,1.0,,", " 3 ,4,,,,"]
    for at, bad in zip(rng.choice(np.arange(2, len(lines) - 1), 2 * len(damage), replace=False), damage * 2):
        lines[at] = bad
    return "\r\n".join(lines)


@pytest.mark.parametrize("chunk", [None, 97])
def test_reader_matches_plain_reference_on_a_messy_file(run_dir, monkeypatch, chunk):
    """Against the rules written out over the csv module (not the reader's code); with tiny
    pieces (97 bytes) the piece boundaries fall everywhere, mid-row included."""
    if chunk:
        monkeypatch.setattr(logs, "_CHUNK_BYTES", chunk)
    text = _messy_csv(np.random.default_rng(7), 3000)
    (run_dir / "metrics.csv").write_bytes(text.encode())
    expected, malformed, bad = _reference_tidy(text)
    found: list[str] = []
    df = logs.read_metrics(run_dir, found)
    assert_same_tidy(_tidy_set(df), expected)
    assert len(df) == len(expected)
    assert any(f"skipped {malformed} malformed" in w for w in found), found
    assert any(f"{bad} non-numeric" in w for w in found), found
    key = ["metric", "kind", "step"]
    assert df[key].astype(str).assign(step=df["step"]).equals(
        df[key].astype(str).assign(step=df["step"]).sort_values(key, kind="stable")), "sorted"


def test_a_file_growing_while_read_gives_only_whole_rows(run_dir, monkeypatch):
    """A run still writing: lines appended after the reader took the file's size (one of them
    half written) are left for the next read, never parsed half."""
    path = run_dir / "metrics.csv"
    text = _write_csv(path, ROWS[:4])
    real_chunks = logs._chunks

    def appending_chunks(*args):
        with open(path, "ab") as f:
            f.write(b"1,2,,1.0,\r\n1,3,,0.5")  # one whole row, one torn
        yield from real_chunks(*args)

    monkeypatch.setattr(logs, "_CHUNK_BYTES", 16)
    monkeypatch.setattr(logs, "_chunks", appending_chunks)
    expected, _, _ = _reference_tidy(text)
    assert_same_tidy(_tidy_set(logs.read_metrics(run_dir)), expected)
    monkeypatch.setattr(logs, "_chunks", real_chunks)
    found: list[str] = []
    grown = logs.read_metrics(run_dir, found)  # the next read sees the whole row, not the torn one
    assert _values(grown, "train/loss", "step")[2] == 1.0 and 3 not in _values(grown, "train/loss", "step")
    assert any("incomplete" in w for w in found)


def test_text_columns_are_categorical_and_runs_concatenate(tmp_path):
    _write_csv(tmp_path / "a" / "version_0" / "metrics.csv", ROWS)
    _write_csv(tmp_path / "b" / "version_0" / "metrics.csv", ROWS[:3])
    df = logs.read_runs([tmp_path / "a" / "version_0", tmp_path / "b" / "version_0"])
    for col in ("run", "metric", "kind", "source"):
        assert isinstance(df[col].dtype, pd.CategoricalDtype)
        assert list(df[col].cat.categories) == sorted(df[col].cat.categories)
    assert df.groupby("run", observed=True).size().to_dict() == {"a/version_0": 8, "b/version_0": 3}


# ----------------------------------------------------------------------------------- thinning
def test_thin_keeps_first_last_and_each_runs_extremes():
    # 12 points, max 6: (6 - 2) // 2 = 2 runs: points 0-5 and 6-11 (i * 2 // 12)
    y = [5.0, 1.0, 9.0, 3.0, 9.0, 4.0, 2.0, 8.0, 0.0, 7.0, 6.0, 6.5]
    df = pd.DataFrame({"run": "r", "metric": "m", "kind": "step", "step": range(12), "value": y})
    kept = logs.thin(df, 6)
    # run 1: lowest 1.0 (i=1), highest 9.0 (first: i=2); run 2: lowest 0.0 (i=8), highest 8.0 (i=7)
    assert kept["step"].tolist() == [0, 1, 2, 7, 8, 11]
    short = df.assign(run="s").iloc[:5]
    both = logs.thin(pd.concat([df, short]), 6)
    assert len(both) == 6 + 5  # each series on its own; the short one whole
    assert logs.thin(df, 12) is df
    with pytest.raises(ValueError):
        logs.thin(df, 3)


def test_thin_bounds_every_series():
    n = 10_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"run": np.repeat(["a", "b"], n), "metric": "m", "kind": "step",
                       "step": np.tile(np.arange(n), 2), "value": rng.normal(size=2 * n)})
    df.loc[1234, "value"] = 50.0  # a spike survives
    kept = logs.thin(df, 500)
    assert kept.groupby("run").size().max() <= 500
    assert 50.0 in kept["value"].tolist()
    assert {0, n - 1} <= set(kept[kept["run"] == "b"]["step"])
