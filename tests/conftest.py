"""Shared fixtures. The genuine VOC subset lives beside the checkout in ../shared/data/voc-mini."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest.ini runs one worker per core: each worker (and every process a test starts, through
    # the environment) uses one thread, so workers never fight over cores with spinning threads.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# The files whose work is longest (``--durations`` on a 2-core machine: the label review's 20-epoch
# demo fixture ~160 s, the 32-image overfit ~105-160 s, the demo preset ~80-130 s, the export's
# trained fixture ~45 s, the browsers ~30-50 s, train.py's subprocesses, the GradCAM fixture
# ~25 s), handed to the workers first so that the two workers finish together instead of one
# starting the overfit when the other is nearly done (pytest.ini passes --no-loadscope-reorder,
# which keeps this order; xdist's default sorts files by their number of tests, which put the
# one-test overfit last).
LONGEST_FIRST = ("test_review_demo.py", "test_anchors.py", "test_convergence.py", "test_demo_preset.py", "test_export.py",
                 "test_dashboard_browser.py", "test_dashboard_browser_video.py", "test_train.py", "test_cam.py")


def pytest_collection_modifyitems(config, items):
    """Stable reorder: the files of ``LONGEST_FIRST`` in that order, then the rest as collected."""
    def rank(item) -> int:
        name = Path(str(item.fspath)).name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


VOC_MINI_CANDIDATES = (
    os.environ.get("VOC_MINI", ""),
    str(REPO.parent / "shared" / "data" / "voc-mini"),
)


def _find_voc_mini() -> Path | None:
    for candidate in VOC_MINI_CANDIDATES:
        if candidate and (Path(candidate) / "VOCdevkit").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def voc_mini() -> Path:
    """Root of voc-mini (holds VOCdevkit/VOC2012). Skips when absent; set VOC_MINI to point at it."""
    root = _find_voc_mini()
    if root is None:
        pytest.skip("voc-mini not found: expected ../shared/data/voc-mini or $VOC_MINI")
    return root


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
