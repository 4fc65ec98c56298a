"""A test-only reader (registered by tests for the `.hang` extension) whose file says how it misbehaves.

The file holds one command:
  `cloop N`  yield a document, then compute sum(range(N)) -- one C call that SIGALRM cannot interrupt -- then yield
             a second document
  `sleep S`  yield a document, then time.sleep(S) (the GIL is released: other threads run), then a second document
  `segv`     kill its own process with SIGSEGV (a crashing C extension)
Readers run in-process or in exorag.build.reader_process's child, which imports this module by name.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from exorag.types import Document, Section


def _doc(path: Path, suffix: str) -> Document:
    text = f"Exosomes were isolated from the {path.stem} samples by ultracentrifugation ({suffix})."
    return Document(id=f"hang:{path.stem}:{suffix}", text=text, sections=(Section("Body", 0, len(text)),),
                    title=f"Hang reader {path.stem}", origin=str(path))


def read(path: Path) -> Iterator[Document]:
    command, _, arg = path.read_text(encoding="utf-8").strip().partition(" ")
    yield _doc(path, "before")
    if command == "cloop":
        sum(range(int(arg)))
    elif command == "sleep":
        time.sleep(float(arg))
    elif command == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    yield _doc(path, "after")
