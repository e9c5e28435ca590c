"""Ultralytics' training dataset on the same images, for ``bench.data``'s side-by-side figures.

Benchmark only (never a runtime requirement): ``pip install --no-deps ultralytics ultralytics-thop
psutil py-cpuinfo``. ``YOLODataset`` reads YOLO-format folders, so ``yolo_folder`` writes one in a
scratch directory (git-ignored ``bench/scratch/``): the images are symlinks to the originals, the
labels ``class cx cy w h`` (normalised) files written from the project's own index, so both
pipelines see exactly the same boxes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from yolo.data.index import DetectionIndex


def available() -> str | None:
    """Ultralytics' version when it is importable, else None (no network access on import)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        import ultralytics
    except ImportError:
        return None
    return ultralytics.__version__


def yolo_folder(index: DetectionIndex, folder: Path) -> Path:
    """``folder``/images/train (symlinks) and ``folder``/labels/train (YOLO txt) of ``index``;
    returns the images folder. Rewritten on every call (cheap), so it always matches the index."""
    images, labels = folder / "images" / "train", folder / "labels" / "train"
    for d in (images, labels):
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            old.unlink()
    for cache in folder.glob("labels/*.cache"):
        cache.unlink()
    for i in range(len(index)):
        src = Path(index.paths[i]).resolve()
        name = f"{i:06d}_{src.name}"  # unique even when several splits share file names
        (images / name).symlink_to(src)
        h, w = (float(v) for v in index.sizes[i])
        boxes, classes, _ = index.annotation(i)
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        rows = np.column_stack(((b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h,
                                (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h))
        text = "".join(f"{int(c)} {x:.6f} {y:.6f} {bw:.6f} {bh:.6f}\n" for c, (x, y, bw, bh) in zip(classes, rows))
        (labels / (Path(name).stem + ".txt")).write_text(text)
    return images


def yolo_dataset(images: Path, classes, size: int, mosaic: float, batch: int, cache: bool):
    """Ultralytics' ``YOLODataset`` as its trainer builds it for training (default
    hyper-parameters, ``mosaic`` probability, rectangular batches off), optionally with its RAM
    image cache."""
    import contextlib
    import io

    from ultralytics.cfg import get_cfg
    from ultralytics.data.dataset import YOLODataset

    hyp = get_cfg(overrides={"mosaic": mosaic, "imgsz": size})
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):  # progress bars
        return YOLODataset(img_path=str(images), imgsz=size, batch_size=batch, augment=True, hyp=hyp,
                           rect=False, cache="ram" if cache else False, stride=32, pad=0.0, prefix="",
                           data={"names": dict(enumerate(classes)), "channels": 3}, task="detect")
