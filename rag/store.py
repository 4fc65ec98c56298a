"""SQLite store: documents, chunks and an FTS5 index over chunks. The one module that writes the database.

A document and its chunks are written in one transaction, so an interrupted run leaves either the old or the new
version of a document, never half of one. Chunk ids come from AUTOINCREMENT and are never reused; they are also
the ids of the vectors in the FAISS file, which lets `rag.index` find vectors that are missing or stale after a
crash. The FTS5 table is kept in step with `chunks` by triggers. Deliberately left out: vectors (see vectors.py)
and any ranking logic beyond FTS5's bm25 (see retrieve.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import ExoragError, NotFound
from .types import Chunk, Document, Filters, Section

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    pmid TEXT, doi TEXT, pmcid TEXT,
    title TEXT, authors TEXT, journal TEXT, year INTEGER,
    publication_types TEXT, mesh TEXT, source TEXT, origin TEXT,
    text TEXT NOT NULL, sections TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    added_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX IF NOT EXISTS documents_pmid ON documents(pmid);
CREATE INDEX IF NOT EXISTS documents_doi ON documents(doi);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    section TEXT, page INTEGER,
    char_start INTEGER NOT NULL, char_end INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, text, tokenize="unicode61 remove_diacritics 2"
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, title, text)
    VALUES (new.id, (SELECT title FROM documents WHERE id = new.doc_id), new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.id;
END;
"""

STORE_FILE = "store.sqlite"


class StoreError(ExoragError):
    """The store file cannot be opened or is not an exorag store."""


def connect(folder: Path) -> sqlite3.Connection:
    """Open (creating if needed) the store in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STORE_FILE
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(SCHEMA)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a usable exorag store ({exc})") from exc
    return conn


def _dumps(value: Iterable[str]) -> str:
    return json.dumps(list(value), ensure_ascii=False)


def document_hash(conn: sqlite3.Connection, doc_id: str) -> str | None:
    row = conn.execute("SELECT content_hash FROM documents WHERE id = ?", (doc_id,)).fetchone()
    return row["content_hash"] if row else None


def put_document(conn: sqlite3.Connection, doc: Document, chunks: list[Chunk]) -> str:
    """Insert or replace one document with its chunks, atomically.

    Returns "added", "updated" or "unchanged" (same content hash: nothing is written).
    """
    digest = doc.content_hash
    old = document_hash(conn, doc.id)
    if old == digest:
        return "unchanged"
    sections = json.dumps(
        [[s.heading, s.start, s.end, s.page, s.indexed] for s in doc.sections], ensure_ascii=False
    )
    conn.execute("BEGIN IMMEDIATE")
    try:
        if old is not None:
            conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc.id,))
            conn.execute("DELETE FROM documents WHERE id = ?", (doc.id,))
        conn.execute(
            "INSERT INTO documents (id, pmid, doi, pmcid, title, authors, journal, year, publication_types, mesh,"
            " source, origin, text, sections, content_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (doc.id, doc.pmid, doc.doi, doc.pmcid, doc.title, _dumps(doc.authors), doc.journal, doc.year,
             _dumps(doc.publication_types), _dumps(doc.mesh), doc.source, doc.origin, doc.text, sections, digest),
        )
        conn.executemany(
            "INSERT INTO chunks (doc_id, ordinal, text, section, page, char_start, char_end) VALUES (?,?,?,?,?,?,?)",
            [(doc.id, c.ordinal, c.text, c.section, c.page, c.char_start, c.char_end) for c in chunks],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return "added" if old is None else "updated"


def remove_document(conn: sqlite3.Connection, doc_id: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        deleted = conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,)).rowcount
        gone = conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if not gone and not deleted:
        raise NotFound(f"no document with id {doc_id!r}")


def document_origins(conn: sqlite3.Connection) -> Iterator[tuple[str, str]]:
    """(document id, origin) of every document, origin as recorded when it was read ('' when unknown), streamed."""
    for row in conn.execute("SELECT id, origin FROM documents ORDER BY id"):
        yield row[0], row[1] or ""


def chunk_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])


def _row_to_document(row: sqlite3.Row) -> Document:
    return Document(
        id=row["id"],
        text=row["text"],
        sections=tuple(Section(h, s, e, p, bool(i)) for h, s, e, p, i in json.loads(row["sections"])),
        title=row["title"] or "",
        authors=tuple(json.loads(row["authors"] or "[]")),
        journal=row["journal"] or "",
        year=row["year"],
        pmid=row["pmid"] or "",
        doi=row["doi"] or "",
        pmcid=row["pmcid"] or "",
        publication_types=tuple(json.loads(row["publication_types"] or "[]")),
        mesh=tuple(json.loads(row["mesh"] or "[]")),
        source=row["source"] or "",
        origin=row["origin"] or "",
    )


def _row_to_chunk(row: sqlite3.Row) -> Chunk:
    return Chunk(doc_id=row["doc_id"], ordinal=row["ordinal"], text=row["text"], section=row["section"] or "",
                 page=row["page"], char_start=row["char_start"], char_end=row["char_end"], id=row["id"])


def get_document(conn: sqlite3.Connection, doc_id: str) -> Document:
    row = conn.execute("SELECT * FROM documents WHERE id = ?", (doc_id,)).fetchone()
    if row is None:
        raise NotFound(f"no document with id {doc_id!r}")
    return _row_to_document(row)


def get_documents(conn: sqlite3.Connection, doc_ids: Iterable[str]) -> dict[str, Document]:
    ids = list(dict.fromkeys(doc_ids))
    out: dict[str, Document] = {}
    for i in range(0, len(ids), 500):
        batch = ids[i : i + 500]
        q = f"SELECT * FROM documents WHERE id IN ({','.join('?' * len(batch))})"
        out.update((r["id"], _row_to_document(r)) for r in conn.execute(q, batch))
    return out


def document_chunks(conn: sqlite3.Connection, doc_id: str) -> list[Chunk]:
    rows = conn.execute("SELECT * FROM chunks WHERE doc_id = ? ORDER BY ordinal", (doc_id,))
    return [_row_to_chunk(r) for r in rows]


def get_chunks(conn: sqlite3.Connection, chunk_ids: Iterable[int]) -> dict[int, Chunk]:
    ids = [int(i) for i in chunk_ids]
    out: dict[int, Chunk] = {}
    for i in range(0, len(ids), 500):
        batch = ids[i : i + 500]
        q = f"SELECT * FROM chunks WHERE id IN ({','.join('?' * len(batch))})"
        out.update((r["id"], _row_to_chunk(r)) for r in conn.execute(q, batch))
    return out


def chunk_ids(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT id FROM chunks ORDER BY id")]


def iter_chunk_ids(conn: sqlite3.Connection, after: int = 0, limit: int | None = None) -> Iterator[int]:
    """Chunk ids greater than `after`, ascending (at most `limit`), streamed from the cursor."""
    q = "SELECT id FROM chunks WHERE id > ? ORDER BY id" + (" LIMIT ?" if limit is not None else "")
    for row in conn.execute(q, (after, limit) if limit is not None else (after,)):
        yield row[0]


def iter_chunks(conn: sqlite3.Connection, ids: list[int]) -> Iterator[tuple[Chunk, str]]:
    """Chunks with their document titles, in the order of `ids` (for embedding)."""
    for i in range(0, len(ids), 500):
        batch = ids[i : i + 500]
        q = (f"SELECT c.*, d.title AS title FROM chunks c JOIN documents d ON d.id = c.doc_id"
             f" WHERE c.id IN ({','.join('?' * len(batch))}) ORDER BY c.id")
        for r in conn.execute(q, batch):
            yield _row_to_chunk(r), r["title"] or ""


def filter_clause(filters: Filters | None) -> tuple[str, list[Any]]:
    """SQL over `documents d` for the filters: (' AND ...' clause, parameters); ('', []) when none is set."""
    if filters is None or filters.empty:
        return "", []
    sql, params = [], []
    if filters.year_from is not None:
        sql.append("d.year >= ?")
        params.append(filters.year_from)
    if filters.year_to is not None:
        sql.append("d.year <= ?")
        params.append(filters.year_to)
    for column, values in (("source", filters.sources), ("journal", filters.journals)):
        if values:
            sql.append(f"lower(d.{column}) IN ({','.join('?' * len(values))})")
            params.extend(v.lower() for v in values)
    if filters.pub_types:
        sql.append("EXISTS (SELECT 1 FROM json_each(d.publication_types) p WHERE lower(p.value) IN "
                   f"({','.join('?' * len(filters.pub_types))}))")
        params.extend(v.lower() for v in filters.pub_types)
    return " AND " + " AND ".join(sql), params


def allowed_chunk_ids(conn: sqlite3.Connection, filters: Filters) -> list[int]:
    """Ids of the chunks whose documents pass the filters."""
    clause, params = filter_clause(filters)
    q = f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE 1{clause}"
    return [r[0] for r in conn.execute(q, params)]


def lexical_search(
    conn: sqlite3.Connection, match: str, k: int, filters: Filters | None = None
) -> list[tuple[int, float]]:
    """(chunk id, bm25 score; higher is better) for an FTS5 MATCH expression, within the filters."""
    clause, params = filter_clause(filters)
    if clause:
        q = ("SELECT f.rowid, bm25(chunks_fts, 0.5, 1.0) AS r FROM chunks_fts f JOIN chunks c ON c.id = f.rowid"
             f" JOIN documents d ON d.id = c.doc_id WHERE chunks_fts MATCH ?{clause} ORDER BY r LIMIT ?")
    else:
        q = "SELECT rowid, bm25(chunks_fts, 0.5, 1.0) AS r FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY r LIMIT ?"
    rows = conn.execute(q, [match, *params, k])
    return [(int(row[0]), -float(row[1])) for row in rows]


def counts(conn: sqlite3.Connection) -> dict[str, Any]:
    docs = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
    chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    sources = {r[0] or "": r[1] for r in conn.execute("SELECT source, count(*) FROM documents GROUP BY source")}
    return {"documents": docs, "chunks": chunks, "sources": sources}
