"""Benchmark: extra peak memory of dashboard pages over very large photos (issue 9, item 8).

    python -m bench.dashboard_memory    # prints a table, writes bench/results/dashboard_memory.json

Each row runs in a fresh process (``MEMORY_PROBE``): the pages are opened through
``streamlit.testing.v1.AppTest`` on a small dataset first (imports, code and the untrained model
warm), the resident high-water mark is reset, then the same pages are opened on the large photos;
the figure is the new high-water mark minus the resident size before (Linux: /proc/self).
tests/test_dashboard_hardening.py asserts the second row's figure stays under 1 GB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
HOME = REPO / "dashboard" / "Home.py"
PAGES = {"Dataset": "views/dataset.py", "Detect": "views/detect.py", "GradCAM": "views/gradcam.py"}
ENV = ("YOLO_DATA", "YOLO_DEMO", "YOLO_LOGS", "YOLO_CHECKPOINT", "YOLO_CACHE_DIR")

MEMORY_PROBE = textwrap.dedent("""
    import json, os, resource, sys
    from streamlit.testing.v1 import AppTest

    home, small, big, pages = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")

    def status_mb(field):  # VmRSS: resident now; VmHWM: its high-water mark (this process's own)
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith(field + ":"))

    def open_pages(root):
        os.environ["YOLO_DATA"] = root
        at = AppTest.from_file(home, default_timeout=600).run()
        found = []
        for page in pages:
            at.switch_page(page).run()
            found += [e.message for e in at.exception]
        return at, found

    open_pages(small)  # imports, code and the untrained model warm, on a small dataset
    # Not ru_maxrss: after fork/exec it starts at the parent's high-water mark (pytest's).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the resident size now
    base = status_mb("VmRSS")
    # Guard the machine: the old code needs about 6 GB here; fail fast instead of swapping.
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        vms = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (vms + 3 * 2**30, hard))
    at, exceptions = open_pages(big)
    peak = status_mb("VmHWM")
    print(json.dumps({"base_mb": base, "peak_mb": peak, "extra_mb": peak - base,
                      "exceptions": exceptions, "images": len(at.image)}))
""")


def gradient(height: int, width: int) -> np.ndarray:
    """A smooth BGR image (compresses to a small JPEG whatever its size)."""
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    return np.stack([np.broadcast_to(y, (height, width)), np.broadcast_to(x, (height, width)),
                     np.full((height, width), 128, np.float32)], axis=2).astype(np.uint8)


def grid_boxes(n: int, size: tuple[int, int]) -> np.ndarray:
    """n disjoint 14 x 14 boxes on a 20-pixel grid (xyxy), inside an image of ``size`` (h, w)."""
    per_row = size[1] // 20
    return np.array([[(j % per_row) * 20 + 2, (j // per_row) * 20 + 2, (j % per_row) * 20 + 16,
                      (j // per_row) * 20 + 16] for j in range(n)], dtype=np.float64).reshape(-1, 4)


def write_voc(root: Path, splits: dict[str, list[int]], size: tuple[int, int] = (120, 160),
              jpeg: bytes | None = None, boxes=None) -> Path:
    """``root/VOCdevkit/VOC2012`` with, per split, one image per entry holding that many boxes
    ("dog"). size (h, w) of every image; jpeg: the encoded image to use (else a gradient);
    boxes: (K, 4) boxes for every image instead of the grid. Returns root."""
    from yolo.data.voc import format_voc_xml

    year = root / "VOCdevkit" / "VOC2012"
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (year / d).mkdir(parents=True, exist_ok=True)
    data = jpeg if jpeg is not None else cv2.imencode(".jpg", gradient(*size))[1].tobytes()
    for split, counts in splits.items():
        ids = [f"{split}_{k:04d}" for k in range(len(counts))]
        for id_, n in zip(ids, counts):
            (year / "JPEGImages" / f"{id_}.jpg").write_bytes(data)
            b = grid_boxes(n, size) if boxes is None else np.asarray(boxes, np.float64)
            (year / "Annotations" / f"{id_}.xml").write_text(
                format_voc_xml(f"{id_}.jpg", size[1], size[0], ["dog"] * len(b), b))
        (year / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def write_photos(root: Path, count: int, size: tuple[int, int]) -> Path:
    """``count`` JPEGs of ``size`` (h, w) in VOC layout (split "train"), two boxes each."""
    h, w = size
    jpeg = cv2.imencode(".jpg", gradient(h, w), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
    return write_voc(root, {"train": [0] * count}, size=size, jpeg=jpeg,
                     boxes=[[w // 10, h // 10, w // 2, h // 2], [w * 6 // 10, h * 6 // 10, w * 9 // 10, h * 19 // 20]])


def measure(small: Path, big: Path, pages: list[str], workdir: Path) -> dict:
    """Run ``MEMORY_PROBE`` in a fresh process: the pages (names of ``PAGES``) on ``small``, then
    on ``big``; returns its JSON (base_mb, peak_mb, extra_mb, exceptions, images)."""
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env.update(YOLO_LOGS=str(workdir / "logs"), YOLO_CACHE_DIR=str(workdir / "cache"), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(HOME), str(small), str(big),
                          ",".join(PAGES[p] for p in pages)], capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    from bench.common import print_table, write_results

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = write_voc(tmp / "small", {"train": [2] * 12})
        twelve = write_photos(tmp / "twelve", 12, (4000, 6000))
        huge = write_photos(tmp / "huge", 1, (9000, 12000))
        cases = [("twelve 6000 x 4000 JPEGs", twelve, ["Dataset"]),
                 ("twelve 6000 x 4000 JPEGs", twelve, ["Dataset", "Detect", "GradCAM"]),
                 ("one 12000 x 9000 (108 MP) JPEG", huge, ["Dataset", "Detect", "GradCAM"])]
        for k, (photos, root, pages) in enumerate(cases):
            result = measure(small, root, pages, tmp / f"run{k}")
            rows.append({"photos": photos, "pages": " + ".join(pages), "extra_peak_mb": round(result["extra_mb"]),
                         "base_mb": round(result["base_mb"]), "exceptions": len(result["exceptions"])})
    print_table(rows, "Extra peak resident memory of dashboard pages (fresh process, after a warm-up)")
    write_results("dashboard_memory", {"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
