"""What a fetch leaves on disk under `--out`: the JSONL of records, a state file, and a cache of raw answers.

For a query the files are `<kind>-<slug>-<hash>.jsonl` and `<kind>-<slug>-<hash>.state.json`, the hash taken over
the query and its options, so the same command finds its own files again. The JSONL is always rewritten whole
(temp file + rename) with records merged by id, so an interrupted run never leaves a half line and a resumed one
never duplicates a record. The state file (also written by rename) says which batches are done. Raw answers are
kept under `raw/<service>/<sha256 of the request>` so that repeating a request reads the disk, not the network.
Deliberately left out: locking against two fetches of the same query at once, and expiry of the raw cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from exorag.files import write_atomic
from exorag.errors import ExoragError

DEFAULT_OUT = Path("corpus") / "fetched"
_NOT_CACHE_KEY = frozenset({"api_key", "email", "tool"})
T = TypeVar("T")


def slug(text: str, limit: int = 40) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)[:limit].strip("-") or "query"


def stem(kind: str, *key: object) -> str:
    """'pubmed-exosomal-pd-l1-1a2b3c4d' for the query and options in `key`."""
    digest = hashlib.sha256(json.dumps([kind, *key], ensure_ascii=False).encode("utf-8")).hexdigest()[:8]
    return f"{kind}-{slug(str(key[0]) if key else kind)}-{digest}"




def read_state(path: Path) -> dict[str, Any]:
    """The state dict, or {} when there is none (or it is unreadable: then the fetch starts over)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def write_state(path: Path, state: Mapping[str, Any]) -> None:
    write_atomic(path, (json.dumps(state, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file this package wrote ([] when there is none)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines(): U+2028 may sit inside a record
        if line.strip():
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records


def merge_records(path: Path, records: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Merge `records` into the JSONL at `path` by id (a newer record replaces an older one in place).

    Returns (records in the file, records that were not there before).
    """
    merged = {r["id"]: r for r in read_records(path)}
    new = 0
    for record in records:
        new += record["id"] not in merged
        merged[record["id"]] = record
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in merged.values())
    write_atomic(path, lines.encode("utf-8"))
    return len(merged), new


def metadata_only_lines(path: Path) -> set[int]:
    """Line numbers (1-based) of records flagged `no_abstract` that carry no full-text sections either."""
    lines = set()
    if not path.exists():
        return lines
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("no_abstract") and not record.get("sections"):
            lines.add(n)
    return lines


class RawCache:
    """Raw answers on disk, keyed by the request (service, path and parameters, secrets left out)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, service: str, path: str, params: Mapping[str, object], ext: str) -> Path:
        key = json.dumps([path, sorted((k, str(v)) for k, v in params.items() if k not in _NOT_CACHE_KEY)])
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.folder / slug(service) / f"{digest}.{ext}"

    def get(self, service: str, path: str, params: Mapping[str, object], ext: str) -> bytes | None:
        try:
            return self.path(service, path, params, ext).read_bytes()
        except OSError:
            return None

    def put(self, service: str, path: str, params: Mapping[str, object], ext: str, data: bytes) -> None:
        write_atomic(self.path(service, path, params, ext), data)


def cached(
    cache: RawCache,
    service: str,
    path: str,
    params: Mapping[str, object],
    ext: str,
    get: Callable[[str, Mapping[str, object]], bytes],
    parse: Callable[[bytes], T],
) -> tuple[T, bool]:
    """`parse` of the cached answer, else of a fresh `get(path, params)` that is cached once it parses.

    Returns (parsed, whether the network was used). An answer that does not parse (a truncated body) is never
    cached, so the next run asks again; a cached one that no longer parses is dropped and asked again.
    """
    data = cache.get(service, path, params, ext)
    if data is not None:
        try:
            return parse(data), False
        except ExoragError:
            cache.path(service, path, params, ext).unlink(missing_ok=True)
    data = get(path, params)
    parsed = parse(data)
    cache.put(service, path, params, ext, data)
    return parsed, True
