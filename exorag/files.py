"""Atomic file writes: the one way exorag replaces a file that someone may be reading (or that a crash may cut).

`write_atomic(path, data)` writes bytes or text to a temporary file beside `path`, flushes it to disk and renames
it over `path`; `replace_atomically(path, write)` does the same for a writer that wants a file name (FAISS, ONNX
export). Either way a reader sees the old file or the new one, never a part, and the temporary file is removed
when writing fails (a full disk leaves nothing behind). Deliberately left out: locking between writers (the index
serialises its own writes) and directory fsync.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def replace_atomically(path: Path, write: Callable[[Path], None], mode: int = 0o644) -> None:
    """Call `write(tmp)` on a fresh temporary file beside `path`, then rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, mode)  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write `data` (text as UTF-8) beside `path`, fsync it and rename it over `path`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())

    replace_atomically(path, write, mode)
