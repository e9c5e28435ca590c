"""The demo dataset, the download command (offline), the CLI."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from yolo.data.__main__ import main as cli
from yolo.data.check import check_dataset
from yolo.data.demo import (
    DEMO_CLASSES,
    demo_path,
    ensure_demo,
    is_demo_complete,
    write_demo,
)
from yolo.data.download import DownloadError, download_voc, is_present
from yolo.data.layout import detect_format, load_classes, resolve_sources


def _digest(root: Path) -> str:
    h = hashlib.sha1()
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".yolo_cache" not in p.parts:
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_demo_is_deterministic_and_reads_cleanly(tmp_path):
    a = write_demo(tmp_path / "a", n_train=30, n_val=10, n_test=10, seed=4)
    b = write_demo(tmp_path / "b", n_train=30, n_val=10, n_test=10, seed=4)
    c = write_demo(tmp_path / "c", n_train=30, n_val=10, n_test=10, seed=5)
    assert _digest(a) == _digest(b) != _digest(c)
    assert detect_format(a) == "voc" and load_classes(a) == DEMO_CLASSES
    assert [s.split for s in resolve_sources(a, ["demo/train", "val"])] == ["train", "val"]
    report = check_dataset(a, cache_dir=tmp_path / "cache", progress=False)
    assert not report.problems
    stats = {s.name: s for s in report.splits}
    assert stats["demo/train"].images == 30 and stats["demo/trainval"].images == 40
    train = stats["demo/train"]
    assert all(train.objects_per_class[c] > 0 for c in DEMO_CLASSES)
    assert 1 <= train.boxes_per_image["min"] and train.boxes_per_image["max"] <= 4
    assert train.relative_size_quantiles["p5"] > 0.1  # no tiny objects
    with pytest.raises(FileExistsError):
        write_demo(a)


def test_ensure_demo(tmp_path):
    assert demo_path().parts[-2:] == ("data", "demo")
    p = ensure_demo(tmp_path / "d", n_train=8, n_val=4, n_test=4)
    assert is_demo_complete(p)
    stamp = (p / "classes.txt").stat().st_mtime_ns
    assert ensure_demo(p) == p and (p / "classes.txt").stat().st_mtime_ns == stamp  # not rewritten


def test_cli_demo_and_help(tmp_path, capsys):
    assert cli(["demo", str(tmp_path / "x"), "--n-train", "6", "--n-val", "2", "--n-test", "2"]) == 0
    assert is_demo_complete(tmp_path / "x")
    assert cli(["check", str(tmp_path / "x"), "--quiet", "--cache-dir", str(tmp_path / "c"), "--strict"]) == 0
    assert "problems: none" in capsys.readouterr().out
    for command in ("demo", "check", "download"):
        with pytest.raises(SystemExit):
            cli([command, "--help"])
        text = capsys.readouterr().out
        for flag in {"demo": ["--n-train", "--seed", "--force"], "check": ["--split", "--json", "--strict"],
                     "download": ["--years", "--timeout"]}[command]:
            assert flag in text


def test_download_offline_fails_fast_with_instructions(tmp_path, monkeypatch):
    """Offline, one connection probe with the given timeout, and no download is attempted
    (bounded work; seconds are not asserted)."""
    from yolo.data import download

    probes = []
    real_probe = download.probe_server
    monkeypatch.setattr(download, "probe_server", lambda url, timeout=5.0: (probes.append(timeout),
                                                                           real_probe(url, timeout)))
    monkeypatch.setattr("torchvision.datasets.VOCDetection.__init__", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(DownloadError) as err:
        download_voc(tmp_path / "voc", timeout=2, probe_url="http://127.0.0.1:9/")  # nothing listens there
    assert probes == [2]
    text = str(err.value)
    assert "by hand" in text and str(tmp_path / "voc") in text and "VOCtrainval_11-May-2012.tar" in text


def test_download_skips_what_is_present(voc_mini, tmp_path, capsys, monkeypatch):
    root = tmp_path / "copy"
    (root / "VOCdevkit").mkdir(parents=True)
    os.symlink(voc_mini / "VOCdevkit" / "VOC2012", root / "VOCdevkit" / "VOC2012")
    assert is_present(root, "2012", "trainval") and not is_present(root, "2007", "test")
    assert download_voc(root, [("2012", "trainval")], probe_url="http://127.0.0.1:9/") == []
    assert detect_format(root) == "voc"
    assert cli(["download", str(root), "--years", "2012"]) == 0
    assert "already present" in capsys.readouterr().out
    import yolo.data.download as dl

    def offline(url, timeout):  # never touch the real server from a test
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(dl, "probe_server", offline)
    assert cli(["download", str(root), "--years", "2007", "--timeout", "1"]) == 2
    err = capsys.readouterr().err
    assert "by hand" in err and "VOCtest_06-Nov-2007.tar" in err
