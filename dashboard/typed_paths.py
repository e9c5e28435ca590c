"""Paths the user types in the sidebar, checked into one-line messages (never an exception)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def _shown(text: str, limit: int = 80) -> str:
    """A typed path for a message: control characters escaped, the middle of a long one elided."""
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else f"{text[:limit // 2]}…{text[-limit // 2:]} ({len(text)} characters)"


def typed_path(text: str, kind: str) -> tuple[Path | None, str | None]:
    """A path the user typed -> (the resolved path, None), or (None, a one-line message saying
    what is wrong): a NUL byte, a name or path too long for the file system, an unknown ``~user``,
    nothing there, or a file where a folder is expected (``kind="folder"``) or the reverse
    (``kind="file"``). Never raises."""
    if "\x00" in text:
        return None, f"`{_shown(text)}` holds a NUL character, which no file name can contain."
    try:
        path = Path(text).expanduser()
        st_mode = os.stat(path).st_mode  # raises for too long, missing, not permitted, loops
        path = path.resolve()
    except RuntimeError as err:  # expanduser of an unknown ~user
        return None, f"`{_shown(text)}`: {err}"
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            return None, f"`{_shown(text)}` is too long for the file system (a name or the whole path)."
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return None, f"No {kind} at `{_shown(text)}`."
        return None, f"`{_shown(text)}` cannot be opened: {err.strerror or err}."
    if kind == "folder" and not stat.S_ISDIR(st_mode):
        return None, f"`{_shown(text)}` is a file; give the folder that holds it."
    if kind == "file" and not stat.S_ISREG(st_mode):
        return None, f"`{_shown(text)}` is {'a folder' if stat.S_ISDIR(st_mode) else 'not a regular file'}; give a file."
    return path, None
