"""The versioned default query list (`corpus/default_sources.json`) that `exorag fetch default` pulls.

The file is {"version": int, "sources": [{"name", "query", "max", "since"?}, ...]}; all sources are PubMed
queries. `find_list` looks for it in ./corpus, then beside the installed package (a source checkout).
Deliberately left out: other databases in the list, and merging several lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from exorag.errors import FetchError

LIST_RELATIVE = Path("corpus") / "default_sources.json"


@dataclass(frozen=True)
class DefaultSource:
    name: str
    query: str
    max: int
    since: int | None = None


def find_list(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return Path(explicit)
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / LIST_RELATIVE).exists():
            return base / LIST_RELATIVE
    raise FetchError(
        f"no default source list found ({LIST_RELATIVE} here or in the exorag checkout); name one with --sources"
    )


def load(path: Path) -> tuple[int, list[DefaultSource]]:
    """(version, sources) of a default source list; FetchError naming the file and entry for anything malformed."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise FetchError(f"cannot read the source list {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise FetchError(f"the source list {path} is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("sources"), list):
        raise FetchError(f"the source list {path} needs a 'sources' list")
    sources = []
    for n, entry in enumerate(payload["sources"], start=1):
        if not isinstance(entry, dict) or not str(entry.get("query") or "").strip():
            raise FetchError(f"the source list {path}: entry {n} has no 'query'")
        try:
            count = int(entry.get("max", 200))
            since = int(entry["since"]) if entry.get("since") else None
        except (TypeError, ValueError):
            raise FetchError(f"the source list {path}: entry {n} has a non-numeric 'max' or 'since'") from None
        sources.append(DefaultSource(str(entry.get("name") or f"source-{n}"), str(entry["query"]), count, since))
    return int(payload.get("version") or 0), sources
