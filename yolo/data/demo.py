"""A small synthetic detection dataset in VOCdevkit layout: the project's embedded default.

``write_demo(out)`` draws simple, solid shapes of five classes (circle, square, triangle, cross,
diamond; each class its own hue, jittered) at varied sizes and positions, with some overlap, on
textured backgrounds (smooth colour fields, stripes, noise), and writes::

    out/classes.txt
    out/VOCdevkit/VOCdemo/{Annotations/*.xml, JPEGImages/*.jpg, ImageSets/Main/{train,val,test,trainval}.txt}

so it reads exactly like VOC (split specs "demo/train" or just "train"). Deterministic by
``seed``; a few hundred images take a few seconds. Objects are 14-45% of the shorter image side,
large enough for a tiny model to learn them in minutes on a CPU.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from yolo.data.voc import format_voc_xml

DEMO_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "diamond")
# Base RGB colour of each class (hue-separated, saturated), jittered per object.
_COLOURS = np.array([(220, 40, 40), (40, 190, 60), (40, 80, 230), (235, 200, 30), (200, 50, 210)])
YEAR_DIR = "VOCdemo"


def demo_path() -> Path:
    """The default demo location: ``<repo>/data/demo`` (git-ignored)."""
    return Path(__file__).resolve().parents[2] / "data" / "demo"


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A muted textured background (H, W, 3) uint8: smooth colour field + stripes/noise."""
    grid = rng.uniform(70, 185, size=(rng.integers(2, 6), rng.integers(2, 6), 3)).astype(np.float32)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    kind = rng.integers(3)
    if kind == 0:  # stripes
        period, angle = rng.uniform(10, 40), rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        field += (12 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period))[..., None]
    elif kind == 1:  # blotches
        noise = cv2.resize(rng.normal(0, 18, size=(h // 8, w // 8, 3)).astype(np.float32), (w, h))
        field += noise
    field += rng.normal(0, 6, size=(h, w, 3)).astype(np.float32)  # fine grain everywhere
    return np.clip(field, 0, 255).astype(np.uint8)


def _draw(image: np.ndarray, cls: int, x0: int, y0: int, s: int, colour: tuple[int, ...]) -> None:
    """Draw shape ``cls`` filling the square [x0, x0 + s) x [y0, y0 + s) (pixel extents)."""
    x1, y1, c = x0 + s - 1, y0 + s - 1, colour
    if cls == 0:
        r = (s - 1) / 2
        cv2.circle(image, (round(x0 + r), round(y0 + r)), int(r), c, -1, lineType=cv2.LINE_8)
    elif cls == 1:
        cv2.rectangle(image, (x0, y0), (x1, y1), c, -1)
    elif cls == 2:
        cv2.fillPoly(image, [np.array([(x0 + s // 2, y0), (x0, y1), (x1, y1)], np.int32)], c)
    elif cls == 3:
        t = max(2, s // 3)
        m = (s - t) // 2
        cv2.rectangle(image, (x0 + m, y0), (x0 + m + t - 1, y1), c, -1)
        cv2.rectangle(image, (x0, y0 + m), (x1, y0 + m + t - 1), c, -1)
    else:
        h = s // 2
        cv2.fillPoly(image, [np.array([(x0 + h, y0), (x1, y0 + h), (x0 + h, y1), (x0, y0 + h)], np.int32)], c)


def _extent(image_before: np.ndarray, image_after: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight pixel extent (x0, y0, x1, y1) inclusive of what the last draw changed."""
    ys, xs = np.nonzero((image_before != image_after).any(axis=2))
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box a (4,) with boxes b (K, 4), xyxy."""
    lt, rb = np.maximum(a[:2], b[:, :2]), np.minimum(a[2:], b[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=1)
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
    return inter / (area(a) + area(b) - inter)


def render_image(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, tuple[int, int, int, int]]]]:
    """One demo image (RGB uint8) and its objects [(class, (x0, y0, x1, y1) inclusive pixels)]."""
    h, w = int(rng.integers(256, 321)), int(rng.integers(256, 321))
    image = _background(rng, h, w)
    objects: list[tuple[int, tuple[int, int, int, int]]] = []
    placed = np.zeros((0, 4))
    for _ in range(int(rng.integers(1, 5))):
        for _attempt in range(20):
            s = int(rng.uniform(0.14, 0.45) * min(h, w))
            x0, y0 = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
            box = np.array([x0, y0, x0 + s, y0 + s], float)
            if not len(placed) or _iou(box, placed).max() < 0.15:
                break
        else:
            continue
        cls = int(rng.integers(len(DEMO_CLASSES)))
        colour = tuple(int(v) for v in np.clip(_COLOURS[cls] + rng.integers(-25, 26, 3), 0, 255))
        before = image.copy()
        _draw(image, cls, x0, y0, s, colour)
        extent = _extent(before, image)
        if extent is not None:
            objects.append((cls, extent))
            placed = np.vstack([placed, box])
    return image, objects


def write_demo(out_dir: str | Path, n_train: int = 320, n_val: int = 80, n_test: int = 80,
               seed: int = 0, overwrite: bool = False) -> Path:
    """Write the demo dataset to ``out_dir`` (see the module docstring); returns ``out_dir``.

    Written to a temporary sibling folder and renamed into place, so a reader never sees half a
    dataset. Refuses to replace an existing non-empty folder unless ``overwrite``.
    """
    out = Path(out_dir).expanduser()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (pass overwrite=True / --force)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        year = tmp / "VOCdevkit" / YEAR_DIR
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (year / sub).mkdir(parents=True)
        splits = {"train": n_train, "val": n_val, "test": n_test}
        ids: dict[str, list[str]] = {}
        k = 0
        for split, n in splits.items():
            ids[split] = []
            for _ in range(n):
                image_id = f"demo_{k:05d}"
                image, objects = render_image(np.random.default_rng([seed, k]))
                _, jpg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
                jpg.tofile(year / "JPEGImages" / f"{image_id}.jpg")
                names = [DEMO_CLASSES[c] for c, _ in objects]
                boxes = [(x0, y0, x1 + 1, y1 + 1) for _, (x0, y0, x1, y1) in objects]  # inclusive -> edges
                xml = format_voc_xml(f"{image_id}.jpg", image.shape[1], image.shape[0], names, boxes, folder=YEAR_DIR)
                (year / "Annotations" / f"{image_id}.xml").write_text(xml)
                ids[split].append(image_id)
                k += 1
        ids["trainval"] = ids["train"] + ids["val"]
        for split, names in ids.items():
            (year / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in names))
        (tmp / "classes.txt").write_text("".join(f"{c}\n" for c in DEMO_CLASSES))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def is_demo_complete(path: str | Path) -> bool:
    p = Path(path)
    main = p / "VOCdevkit" / YEAR_DIR / "ImageSets" / "Main"
    return (p / "classes.txt").is_file() and all((main / f"{s}.txt").is_file() for s in ("train", "val", "test"))


def ensure_demo(path: str | Path | None = None, **kwargs) -> Path:
    """The demo dataset at ``path`` (default ``demo_path()``), written first if missing."""
    p = Path(path).expanduser() if path is not None else demo_path()
    if not is_demo_complete(p):
        write_demo(p, overwrite=True, **kwargs)
    return p
