"""A reader in a child process with a hard per-file time limit: a reader stuck in C code is killed, not waited for.

exorag.build.ingest's in-process limit is SIGALRM, whose handler Python runs only between bytecodes: a reader stuck inside
one long C call (a pathological PDF in a C extension; `sum(range(10**12))`) is not interrupted until that call
returns, if ever. `ReaderProcess` runs readers in one child process, started with the "spawn" method (never a fork
of a process running onnxruntime threads) on the first file that needs it and reused for the files after it. The
parent waits for each item with a deadline; past it the child is killed (SIGKILL) and a fresh one is started for
the next file. A child that dies (a segfault in a C extension, the kernel's OOM killer) fails only its file.
Items cross the pipe as Documents and plain tuples (ParseError does not pickle). The time spent waiting for the
child is added to the file's FileClock (exorag.build.file_clock), which also counts chunking and tagging.

The child dies with its parent (PR_SET_PDEATHSIG on Linux; elsewhere when it next reads from the closed pipe), so a
kill -9 of `exorag ingest` leaves no reader behind, and it ignores SIGINT, so Ctrl-C is handled by the parent alone.
Deliberately left out: several children at once (one reader child beside the embedding thread suits 2 cores), a
memory limit on the child, and readers that are not importable by module name (a spawned child imports them).
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from exorag.build.file_clock import FileClock
from exorag.errors import FileTimeout, ParseError, UnsupportedFile
from exorag.types import Document

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the closed pipe ends the child instead
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def _child(conn: Connection, parent_pid: int) -> None:
    """Read the files the parent sends, one at a time, sending every item back; stop on None or a closed pipe."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        module, name = job
        try:
            for item in importlib.import_module(module).read(Path(name)):
                if isinstance(item, ParseError):
                    conn.send(("problem", item.path, item.reason, item.line))
                else:
                    conn.send(("doc", item))
            conn.send(("end",))
        except UnsupportedFile as exc:
            conn.send(("unsupported", exc.path, exc.reason, exc.line))
        except ParseError as exc:
            conn.send(("raise", exc.path, exc.reason, exc.line))
        except Exception as exc:  # a reader bug: reported for this file, the child goes on
            conn.send(("bug", f"unexpected {type(exc).__name__}: {exc}"))


class ReaderProcess:
    """One reusable reader child. `read(path, module, limit)` yields what the reader yields, or raises ParseError
    (FileTimeout past `limit` seconds of waiting). `close()` ends the child."""

    def __init__(self) -> None:
        self._process: Any = None
        self._conn: Connection | None = None
        self.started = 0  # children started so far (1 + one per timeout or crash)

    def _ensure(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return self._conn
        self._kill()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=_child, args=(child, os.getpid()), daemon=True, name="exorag-reader")
        process.start()
        child.close()
        self._process, self._conn = process, parent
        self.started += 1
        return parent

    def _kill(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(timeout=5)
        self._process, self._conn = None, None

    def _died(self, path: Path) -> ParseError:
        code = None
        if self._process is not None:
            self._process.join(timeout=5)  # the pipe closes a moment before the exit status is there to read
            code = self._process.exitcode
        self._kill()
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return ParseError(str(path), f"the reader process died ({how})")

    def read(self, path: Path, module: str, clock: FileClock) -> Iterator[Document | ParseError]:
        """The items the reader `module` yields for `path`; the time spent waiting for them is added to `clock`, and
        the child is killed once the clock's limit is past."""
        conn = self._ensure()
        conn.send((module, str(path)))
        finished = False
        try:
            while True:
                started = time.monotonic()
                try:
                    ready = conn.poll(clock.remaining())
                    message = conn.recv() if ready else None
                except (EOFError, OSError):
                    raise self._died(path) from None
                finally:
                    clock.spent += time.monotonic() - started
                if message is None:
                    raise FileTimeout(str(path), clock.limit or 0.0)
                kind = message[0]
                if kind == "doc":
                    yield message[1]
                elif kind == "problem":
                    yield ParseError(message[1], message[2], message[3])
                else:
                    finished = True
                    if kind == "unsupported":
                        raise UnsupportedFile(message[1], message[2], message[3])
                    if kind == "raise":
                        raise ParseError(message[1], message[2], message[3])
                    if kind == "bug":
                        raise ParseError(str(path), message[1])
                    return
        finally:
            if not finished:  # timed out, died, or the caller stopped early: the child may still be busy
                self._kill()

    def close(self) -> None:
        if self._conn is not None and self._process is not None and self._process.is_alive():
            try:
                self._conn.send(None)
                self._process.join(timeout=2)
            except (OSError, ValueError):
                pass
        self._kill()

    def __enter__(self) -> ReaderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
