"""What the sidebar settles for every page (``Context``): the dataset, the runs folder, the
checkpoint. A plain value below the sidebar (``frame``) and everything that takes one (loaders,
models, picking, the training panel), so none of them imports the sidebar to name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from yolo.data.layout import DataLayoutError, default_splits

STAGE_SPLITS = {"train": ("train", "trainval"), "val": ("val", "test"), "test": ("test", "val")}


@dataclass
class Context:
    """What the sidebar settled: the dataset, the runs folder and the checkpoint."""

    data_root: Path | None  # None when the chosen folder is not a readable dataset
    data_error: str | None
    data_format: str | None
    is_demo: bool
    classes: tuple[str, ...]
    splits: list[str]
    logs_root: Path
    checkpoint: Path | None
    image_size: int  # the checkpoint's validation size (run_image_size), else 416

    def default_split(self, stage: str = "val") -> str | None:
        """The split a page opens on for ``stage`` ("train", "val" or "test"): always one of
        ``split_choices()`` (None when there is none), whichever splits the folder has; e.g. a
        folder with only a val split opens every page on val."""
        choices = self.split_choices()
        if self.data_root is None or not choices:
            return None
        try:
            wanted = list(default_splits(self.data_root).get(stage) or ())
        except DataLayoutError:  # no train/trainval split: fall back on the names below
            wanted = []
        names = [*wanted, *STAGE_SPLITS.get(stage, ())]
        by_name = {c.split("/")[-1]: c for c in reversed(choices)}  # short name -> first choice
        return next((n if n in choices else by_name[n] for n in names if n in choices or n in by_name),
                    choices[0])

    def split_choices(self) -> list[str]:
        """Split specs: short names ("val") when one year folder has them, else "2007/test"."""
        short = sorted({s.split("/")[-1] for s in self.splits})
        return short if len(short) == len(self.splits) else self.splits
