"""The dashboard on odd input (issue 9, items 7-10 and 11b): any dataset folder whatever splits it
has, memory bounded whatever the photos, the safety settings from any working directory, typed
paths that are not paths, a checkpoint that cannot be used, and charts that draw all their data.

Datasets are written here in VOC layout with small synthetic images (the memory test writes twelve
6000 x 4000 JPEGs into a temporary folder); nothing is written into the repository.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

pytest.importorskip("streamlit")
from test_dashboard import (  # noqa: F401  (fixtures used by name)
    DASHBOARD,
    ENV,
    assert_clean,
    charts,
    demo_root,
    fresh,
    image_urls,
    index_cache,
    open_page,
    plotly_array,
    texts,
    tiny_runs,
    voc,
)

from bench.dashboard_memory import gradient, measure, write_photos, write_voc
from yolo.data.layout import available_splits, load_classes

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ helpers
def use_data(monkeypatch, tmp_path: Path, index_cache: Path, root: Path) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YOLO_DATA", str(root))
    monkeypatch.setenv("YOLO_LOGS", str(tmp_path / "logs"))
    monkeypatch.setenv("YOLO_CACHE_DIR", str(index_cache))


def drawn_bars(figure: dict, title: str) -> dict[str, float]:
    """{x: y} of the bars of the chart whose title starts with ``title`` that the browser draws.

    plotly.js types an axis that the figure leaves untyped from its values (axis_autotype.js):
    category only when the distinct non-numeric values outnumber twice the numeric ones, else
    linear, where a value that is not a number ("5-9", "20+") is not drawn at all."""
    axis_type = figure["layout"].get("xaxis", {}).get("type", "-")
    bars: dict[str, float] = {}
    for trace in figure["data"]:
        xs = [str(v) for v in plotly_array(trace["x"]).tolist()]
        ys = plotly_array(trace["y"]).astype(float).tolist()
        numeric = {x for x in xs if _is_number(x)}
        category = axis_type == "category" or (axis_type == "-" and len(set(xs) - numeric) > 2 * len(numeric))
        bars.update({x: y for x, y in zip(xs, ys) if category or x in numeric})
    return bars


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def chart(at, title: str) -> dict:
    return next(c for c in charts(at) if c["layout"]["title"]["text"].startswith(title))


# ------------------------------------------------------------------------------------ item 7
@pytest.mark.parametrize("split", ["val", "test"])
@pytest.mark.parametrize("page", ["Dataset", "Augmentations", "Detect"])
def test_pages_work_on_a_folder_without_a_train_split(monkeypatch, tmp_path, index_cache, split, page):
    """Old code: "'2012/val' is not in list" (the default split was taken from another list)."""
    use_data(monkeypatch, tmp_path, index_cache, write_voc(tmp_path / "data", {split: [1, 2, 3, 1, 2]}))
    at = open_page(page)
    assert split in [s.value for s in at.selectbox], "the page opens on the split there is"
    assert image_urls(at), "the page shows the split's images"
    if page == "Dataset":
        assert next(m.value for m in at.metric if m.label == "Images") == "5"


def test_a_folder_with_no_split_list_is_explained(monkeypatch, tmp_path, index_cache):
    root = write_voc(tmp_path / "data", {"val": [1]})
    (root / "VOCdevkit/VOC2012/ImageSets/Main/val.txt").unlink()
    use_data(monkeypatch, tmp_path, index_cache, root)
    assert any("No split list" in t for t in texts(open_page("Home"), "warning"))
    for page in ("Dataset", "Augmentations"):
        at = open_page(page)
        assert any("no split list" in t for t in texts(at, "error"))


# ------------------------------------------------------------------------------------ item 8
@pytest.fixture(scope="module")
def big_photos(tmp_path_factory) -> Path:
    """Twelve 6000 x 4000 JPEGs (24 megapixels, 72 MB each decoded) in VOC layout, boxes
    [600, 400, 3000, 2000] and [3600, 2400, 5400, 3800], and a small dataset beside them for the warm-up."""
    root = tmp_path_factory.mktemp("photos")
    write_photos(root / "big", 12, (4000, 6000))
    write_voc(root / "small", {"train": [2] * 12})
    return root


def test_dataset_detect_gradcam_stay_under_1gb_extra_on_24_megapixel_photos(big_photos, tmp_path):
    """Peak resident memory of the Dataset, Detect and GradCAM pages over twelve 6000 x 4000 JPEGs,
    above what the same pages hold after running on a small dataset, in a fresh process (old
    code: 3 GB above, then stopped by a 3 GB address-space limit). Linux: reads /proc/self.
    ``python -m bench.dashboard_memory`` gives this figure and two more."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("measures memory through /proc/self (Linux)")
    result = measure(big_photos / "small", big_photos / "big", ["Dataset", "Detect", "GradCAM"], tmp_path)
    print(f"Dataset, Detect, GradCAM pages over 12 x 6000x4000 JPEGs: {result['extra_mb']:.0f} MB above "
          f"{result['base_mb']:.0f} MB (peak {result['peak_mb']:.0f} MB)")
    assert not result["exceptions"], result["exceptions"]
    assert result["images"] >= 1
    assert result["extra_mb"] < 1024


@pytest.fixture
def dash(monkeypatch):
    """The dashboard's modules frame, loaders and picking (their st.cache_data functions work
    outside a running app)."""
    monkeypatch.syspath_prepend(str(DASHBOARD))
    return SimpleNamespace(**{name: importlib.import_module(name) for name in ("frame", "loaders", "picking")})


def test_views_of_a_sample_are_display_sized_with_boxes_mapped(big_photos, monkeypatch, tmp_path, index_cache,
                                                               dash):
    """load_view: long side <= max_side, boxes scaled by the same factor (hand-worked), the
    original size kept; pick_image (Detect, GradCAM) uses it at DISPLAY_SIDE."""
    use_data(monkeypatch, tmp_path, index_cache, big_photos / "big")
    root = big_photos / "big"
    ctx = dash.frame.Context(root, None, "voc", False, load_classes(root), available_splits(root),
                             tmp_path / "logs", None, 416)
    for side in (1024, 384):
        view = dash.loaders.load_view(ctx, "train", 3, side)
        height = round(4000 * side / 6000)  # 683 at 1024, 256 at 384
        assert view["image"].shape == (height, side, 3)
        scale = np.array([side / 6000, height / 4000] * 2)  # the pixels' own ratios (683 / 4000, not 1024 / 6000)
        np.testing.assert_allclose(view["boxes"], np.array([[600, 400, 3000, 2000], [3600, 2400, 5400, 3800]]) * scale,
                                   rtol=1e-6)
        assert view["orig_size"] == (4000, 6000)


def test_evaluate_tiles_are_thumbnails_with_detections_mapped(big_photos, monkeypatch, tmp_path, index_cache, dash):
    """The Evaluate page's worst-image and error tiles (evaluation.drawn_view) come from load_view at
    THUMB_SIDE, and detections given in original pixels land on the tile (hand-worked scale); the
    old page drew on the full 6000 x 4000 sample."""
    from yolo import viz

    evaluation = importlib.import_module("evaluation")
    use_data(monkeypatch, tmp_path, index_cache, big_photos / "big")
    root = big_photos / "big"
    ctx = dash.frame.Context(root, None, "voc", False, load_classes(root), available_splits(root),
                             tmp_path / "logs", None, 416)
    drawn, draw = [], viz.draw_detections

    def recording(image, boxes, *args, **kwargs):
        drawn.append(boxes)
        return draw(image, boxes, *args, **kwargs)

    monkeypatch.setattr(viz, "draw_detections", recording)
    found = {"boxes": np.array([[600.0, 400.0, 3000.0, 2000.0]]), "labels": np.array([0]), "scores": np.array([0.9])}
    picture = evaluation.drawn_view(ctx, "train", 3, found, ["a"])
    assert picture.shape == (256, 384, 3)  # 384 / 6000 = 256 / 4000
    np.testing.assert_allclose(drawn[0], [[38.4, 25.6, 192.0, 128.0]], rtol=1e-6)
    assert evaluation.drawn_view(ctx, "train", 3).shape == (256, 384, 3)  # ground truth only (a missed object)


def test_evaluate_tiles_find_their_image_when_predicting_skipped_one(monkeypatch, tmp_path, index_cache, dash):
    """Rows of a prediction file shift when an image is skipped; the tiles look the image up by id."""
    evaluation = importlib.import_module("evaluation")
    root = write_voc(tmp_path / "data", {"train": [1, 2, 3, 1]})
    use_data(monkeypatch, tmp_path, index_cache, root)
    ctx = dash.frame.Context(root, None, "voc", False, load_classes(root), available_splits(root),
                             tmp_path / "logs", None, 416)
    kept = ["train_0000", "train_0002", "train_0003"]  # train_0001 was skipped
    assert [evaluation.dataset_position(ctx, "train", kept, r) for r in range(3)] == [0, 2, 3]


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_uploads_are_display_sized(dash, ext):
    """A 4000 x 3000 upload becomes 1024 x 768 (JPEG: decoded at 1/2 by libjpeg, then shrunk)."""
    image, message = dash.picking.read_upload(f"photo{ext}", cv2.imencode(ext, gradient(3000, 4000))[1].tobytes())
    assert message is None and image.shape == (768, 1024, 3)
    # gradient() is BGR (blue down, green across, red 128): top-right is RGB (128, 255, 0)
    np.testing.assert_allclose(image[0, -1].astype(int), [128, 255, 0], atol=4)


# ------------------------------------------------------------------------------------ item 9
def listening(port: int) -> list[str]:
    """Local addresses with a socket listening on ``port`` (Linux /proc/net/tcp and tcp6)."""
    found = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, raw))
    return found


def is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1")


UNSAFE = """[server]\naddress = "0.0.0.0"\nmaxUploadSize = 200\n[client]\nshowErrorDetails = "full"
[browser]\ngatherUsageStats = true\n"""
SAFE = {"server.address": "localhost", "server.maxUploadSize": 20, "client.showErrorDetails": "type",
        "browser.gatherUsageStats": False}
CONFIG_PROBE = textwrap.dedent("""
    # What `streamlit run SCRIPT` loads (streamlit.web.cli._main_run: the script path, then the options).
    import json, sys
    from streamlit import config
    from streamlit.web import bootstrap
    config._main_script_path = sys.argv[1]
    bootstrap.load_config_options(flag_options={})
    print(json.dumps({k: config.get_option(k) for k in sys.argv[2:]}))
""")


@pytest.fixture
def elsewhere(tmp_path) -> tuple[Path, dict[str, str]]:
    """A working directory outside the repository whose own .streamlit/config.toml (and a HOME
    whose ~/.streamlit/config.toml) ask for every unsafe value; the environment without STREAMLIT_*."""
    for folder in (tmp_path / "cwd", tmp_path / "home"):
        (folder / ".streamlit").mkdir(parents=True)
        (folder / ".streamlit" / "config.toml").write_text(UNSAFE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_") and k not in ENV}
    env.update(HOME=str(tmp_path / "home"), YOLO_LOGS=str(tmp_path / "logs"), YOLO_DEMO=str(tmp_path / "demo"))
    return tmp_path / "cwd", env


def test_safety_options_hold_from_another_folder(elsewhere):
    """Old code: the options came from the working directory's config (0.0.0.0, 200 MB, full
    tracebacks, usage statistics)."""
    cwd, env = elsewhere
    out = subprocess.run([sys.executable, "-c", CONFIG_PROBE, str(DASHBOARD / "Home.py"), *SAFE],
                         cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == SAFE


def test_the_app_started_from_another_folder_listens_on_localhost_only(elsewhere):
    """``streamlit run /abs/path/dashboard/Home.py`` from a temporary folder: every socket it
    listens on is a loopback address (old code: 0.0.0.0, every interface)."""
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("reads the socket table from /proc/net (Linux)")
    cwd, env = elsewhere
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(DASHBOARD / "Home.py"),
                             "--server.port", str(port), "--server.headless", "true"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 1800
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                time.sleep(0.3)
        addresses = listening(port)
    finally:
        proc.terminate()
        try:
            output = proc.communicate(timeout=120)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0].decode(errors="replace")
    assert addresses, f"nothing listens on {port}:\n{output[-2000:]}"
    assert all(is_loopback(a) for a in addresses), f"listening on {addresses}"


# ------------------------------------------------------------------------------------ item 10
BAD_PATHS = {
    "too long": "/tmp/" + "a" * 5000,
    "a name too long": "/tmp/" + "b" * 300 + "/x",
    "NUL byte": "/tmp/data\x00/VOCdevkit",
    "unknown user": "~no_such_user_zz9/data",
}


@pytest.mark.parametrize("case", [*BAD_PATHS, "a file"])
def test_a_bad_dataset_folder_gets_a_message(fresh, tmp_path, case):
    """Old code: NUL byte and ~unknown user gave exception elements."""
    at = open_page("Dataset")
    text = BAD_PATHS.get(case) or str(tmp_path / "file.txt")
    (tmp_path / "file.txt").write_text("x")
    at.text_input(key="data_folder").input(text).run()
    assert_clean(at)
    errors = " ".join(texts(at, "error"))
    assert "Clear the field" in errors
    if case == "a file":
        assert "is a file" in errors
    elif "long" in case:
        assert "too long" in errors


@pytest.mark.parametrize("case", [*BAD_PATHS, "a folder"])
def test_a_bad_checkpoint_path_gets_a_message(fresh, tmp_path, case):
    """Old code: a path too long gave an exception element (OSError from is_file)."""
    at = open_page("Detect")
    at.selectbox(key="checkpoint_choice").select("Another file…").run()
    at.text_input(key="checkpoint_path").input(BAD_PATHS.get(case) or str(tmp_path)).run()
    assert_clean(at)
    errors = " ".join(texts(at, "error"))
    assert errors, "a message says what is wrong with the path"
    if case == "a folder":
        assert "is a folder" in errors


# ------------------------------------------------------------------------------------ CheckpointError
@pytest.mark.parametrize("error", ["CheckpointError", "TypeError"])
@pytest.mark.parametrize("page", ["Detect", "GradCAM", "Evaluate"])
def test_a_checkpoint_that_cannot_be_used_is_a_message(fresh, tmp_path, monkeypatch, page, error):
    """Whatever the loader raises for a malformed file, the page shows its message (old code: a
    TypeError from the loader was an exception element)."""
    from yolo.detect import Detector
    from yolo.weights import CheckpointError

    message = "hyper-parameter 'width' is 'wide', not a number"
    kind = CheckpointError if error == "CheckpointError" else TypeError

    def refuse(*args, **kwargs):
        raise kind(message)

    monkeypatch.setattr(Detector, "from_checkpoint", refuse)
    path = tmp_path / f"malformed-{page}-{error}.ckpt"
    path.write_bytes(b"x")
    monkeypatch.setenv("YOLO_CHECKPOINT", str(path))
    at = open_page(page)
    assert any("Cannot use" in t and message in t for t in texts(at, "error")), texts(at, "error")


# ------------------------------------------------------------------------------------ item 11b
def test_boxes_per_image_chart_draws_every_image(monkeypatch, tmp_path, index_cache):
    """Images with 0, 1, 2, 3, 4, 5, 7, 9, 10, 15, 19, 20 and 30 boxes: every bin is drawn and the
    drawn bars add up to the 13 images (old code: 5-9, 10-19 and 20+ were not drawn, 5 images)."""
    counts = [0, 1, 2, 3, 4, 5, 7, 9, 10, 15, 19, 20, 30]
    use_data(monkeypatch, tmp_path, index_cache, write_voc(tmp_path / "data", {"train": counts}, size=(200, 320)))
    at = open_page("Dataset")
    bars = drawn_bars(chart(at, "Boxes per image"), "Boxes per image")
    assert bars == {"0": 1, "1": 1, "2": 1, "3": 1, "4": 1, "5-9": 3, "10-19": 3, "20+": 2}


def test_boxes_per_image_chart_sums_to_the_images_of_voc_mini(voc):
    at = open_page("Dataset")
    images = int(next(m.value for m in at.metric if m.label == "Images"))
    bars = drawn_bars(chart(at, "Boxes per image"), "Boxes per image")
    assert sum(bars.values()) == images == 960
    assert sum(v for k, v in bars.items() if k not in ("0", "1", "2", "3", "4")) == 148
