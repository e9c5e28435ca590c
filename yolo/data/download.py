"""``python -m yolo.data download ROOT``: Pascal VOC 2007 trainval+test and 2012 trainval.

Uses torchvision's VOC downloader (with its progress bar and MD5 check) into
``ROOT/VOCdevkit/VOC2007`` and ``ROOT/VOCdevkit/VOC2012``. Sets already present are skipped. The
server is probed first with a short timeout, so without internet it fails at once with a message
saying where to put a copy by hand.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

VOC_SETS: tuple[tuple[str, str], ...] = (("2007", "trainval"), ("2007", "test"), ("2012", "trainval"))


class DownloadError(RuntimeError):
    """The download could not start or finish; the message says what to do instead."""


def _archive(year: str, image_set: str) -> dict:
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    return DATASET_YEAR_DICT["2007-test" if (year, image_set) == ("2007", "test") else year]


def is_present(root: str | Path, year: str, image_set: str) -> bool:
    """Whether ROOT/VOCdevkit/VOC<year> already holds that split (split list + annotations + images)."""
    d = Path(root).expanduser() / "VOCdevkit" / f"VOC{year}"
    return ((d / "ImageSets" / "Main" / f"{image_set}.txt").is_file() and (d / "Annotations").is_dir()
            and (d / "JPEGImages").is_dir())


def manual_instructions(root: str | Path, sets: Sequence[tuple[str, str]] = VOC_SETS) -> str:
    first = (f"Put a copy by hand: download these archives (or get them from a colleague/mirror, e.g. the "
             f"Kaggle 'pascal-voc' copies) and extract them into {Path(root).expanduser()} so that "
             f"{Path(root).expanduser() / 'VOCdevkit' / 'VOC2007' / 'Annotations'} etc. exist:")
    lines = [first]
    lines += [f"  {_archive(y, s)['url']}  (VOC{y} {s})" for y, s in sets]
    lines.append(f"  tar -xf <archive>.tar -C {Path(root).expanduser()}")
    lines.append(f"Then check it: python -m yolo.data check {Path(root).expanduser()}")
    return "\n".join(lines)


def probe_server(url: str, timeout: float = 5.0) -> None:
    """Open a TCP connection to the URL's host; raises ``OSError`` quickly when unreachable."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    socket.create_connection((parsed.hostname, port), timeout=timeout).close()


def download_voc(root: str | Path, sets: Sequence[tuple[str, str]] = VOC_SETS, timeout: float = 5.0,
                 probe_url: str | None = None) -> list[tuple[str, str]]:
    """Fetch the missing VOC sets into ``root``; returns the (year, split) pairs downloaded.

    Raises ``DownloadError`` (with ``manual_instructions``) when the server cannot be reached
    within ``timeout`` seconds or a download fails. ``probe_url`` overrides the server probed
    (for tests).
    """
    from torchvision.datasets import VOCDetection

    root = Path(root).expanduser()
    missing = [(y, s) for y, s in sets if not is_present(root, y, s)]
    if not missing:
        return []
    url = probe_url or _archive(*missing[0])["url"]
    try:
        probe_server(url, timeout)
    except OSError as e:
        raise DownloadError(f"cannot reach {urlparse(url).hostname} ({e}); are you offline?\n"
                            + manual_instructions(root, missing)) from None
    root.mkdir(parents=True, exist_ok=True)
    done = []
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(max(timeout, 60.0))  # a stalled transfer fails instead of hanging
    try:
        for year, image_set in missing:
            try:
                VOCDetection(str(root), year=year, image_set=image_set, download=True)
            except Exception as e:  # network, checksum, disk: all end the same way for the user
                raise DownloadError(f"downloading VOC{year} {image_set} failed: {e}\n"
                                    + manual_instructions(root, missing)) from e
            done.append((year, image_set))
    finally:
        socket.setdefaulttimeout(old)
    return done
