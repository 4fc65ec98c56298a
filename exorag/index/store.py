"""SQLite store: documents, chunks and an FTS5 index over chunks. The one module that writes the database.

A document and its chunks are written in one transaction, so an interrupted run leaves either the old or the new
version of a document, never half of one. Chunk ids come from AUTOINCREMENT and are never reused; they are also
the ids of the vectors in the FAISS file, which lets `exorag.index.index` find vectors that are missing or stale after a
crash. The FTS5 table (Porter stemmer over unicode61 tokens; a store made before stemming has it rebuilt on first
open) is kept in step with `chunks` by triggers. Each document's study tags and the abbreviations it defines
(a types.Derived, computed by the build stage: exorag/build/enrich.py) are written in the same transaction; an index
built before them, or under older rules, gets them computed on open (`migrate`, with the `derive` function and rule
versions the caller passes). This module computes nothing about a document. For the shards of a sharded index it
also reads the figures bm25 is made of (fts_totals, phrase_hits, phrase_frequencies: exorag/cluster/bm25.py adds
them up). Deliberately left out: vectors (see vectors.py) and any ranking logic beyond FTS5's bm25 (see retrieve.py).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from exorag.build import tags  # the tag vocabulary (keys, values, their order); no analysis
from exorag.errors import ExoragError, NotFound
from exorag.types import Chunk, Derived, Document, Filters, Section

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
    title, text, tokenize="porter unicode61 remove_diacritics 2"
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, title, text)
    VALUES (new.id, (SELECT title FROM documents WHERE id = new.doc_id), new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.id;
END;
CREATE TABLE IF NOT EXISTS doc_tags (
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (doc_id, key, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS doc_tags_kv ON doc_tags(key, value);
CREATE TABLE IF NOT EXISTS abbreviations (
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    short TEXT NOT NULL, long TEXT NOT NULL,
    PRIMARY KEY (doc_id, short)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS abbreviations_short ON abbreviations(short);
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

STORE_FILE = "store.sqlite"
FTS_STEMMER = "porter"  # stemming raised SciFact train nDCG@10 of bm25 alone from 0.655 to 0.684 (bench/tune_fusion.py)
BM25_WEIGHTS = (1.0, 1.0)  # title, text (0.5/1, 1/1, 2/1 tried on SciFact train: 1/1 best with the stemmer in fusion)


class StoreError(ExoragError):
    """The store file cannot be opened or is not an exorag store."""


def connect(folder: Path, derive: Callable[[Document], Derived] | None = None,
            versions: dict[str, Any] | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the store in `folder`; with `derive` and `versions`, recompute the derived tables
    of documents stored under other rule versions (migrate)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STORE_FILE
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(SCHEMA)
        _stem_fts(conn, path)
        try:
            if derive is not None and versions:
                migrate(conn, derive, versions)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: the study tags and abbreviations of this store must be computed once, which "
                             f"failed ({exc}); open it where it can be written") from exc
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        raise StoreError(f"{path}: not a usable exorag store ({exc})") from exc
    except BaseException:
        if conn is not None:
            conn.close()  # a StoreError from the FTS rebuild or the migration, or Ctrl-C: no connection left open
        raise
    return conn


def connect_readonly(folder: Path) -> sqlite3.Connection:
    """A read-only connection to an existing store (no schema, migration or FTS work): for processes that only
    read chunks while another process may be the store's writer (the cluster build's embedding actors)."""
    path = folder / STORE_FILE
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("SELECT 1 FROM chunks LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a readable exorag store ({exc})") from exc
    return conn


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    return {r[0]: r[1] for r in conn.execute("SELECT key, value FROM store_meta")}


def _write_derived(conn: sqlite3.Connection, doc_id: str, derived: Derived,
                   what: Iterable[str] = ("tags_version", "abbreviations_version")) -> None:
    """Tags and mined abbreviations of one document (inside the caller's transaction)."""
    if "tags_version" in what:
        conn.execute("DELETE FROM doc_tags WHERE doc_id = ?", (doc_id,))
        conn.executemany("INSERT OR IGNORE INTO doc_tags (doc_id, key, value) VALUES (?,?,?)",
                         [(doc_id, k, v) for k, vs in derived.tags.items() for v in vs])
    if "abbreviations_version" in what:
        conn.execute("DELETE FROM abbreviations WHERE doc_id = ?", (doc_id,))
        conn.executemany("INSERT OR IGNORE INTO abbreviations (doc_id, short, long) VALUES (?,?,?)",
                         [(doc_id, s, lf) for s, lf in derived.abbreviations])


def migrate(conn: sqlite3.Connection, derive: Callable[[Document], Derived], versions: dict[str, Any]) -> list[str]:
    """Compute tags / abbreviations for documents stored before these rules (an older index, or changed rules).

    Runs in one transaction; a second process opening the same index waits and then finds nothing to do.
    Returns the names of what was recomputed.
    """
    if all(_meta(conn).get(k) == str(v) for k, v in versions.items()):
        return []
    conn.execute("BEGIN IMMEDIATE")
    try:
        stale = [k for k, v in versions.items() if _meta(conn).get(k) != str(v)]
        if stale:
            for row in conn.execute("SELECT * FROM documents").fetchall():
                doc = _row_to_document(row)
                _write_derived(conn, doc.id, derive(doc), stale)
            conn.executemany("INSERT OR REPLACE INTO store_meta (key, value) VALUES (?,?)",
                             [(k, str(versions[k])) for k in stale])
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return stale


def _stem_fts(conn: sqlite3.Connection, path: Path) -> None:
    """Rebuild the FTS5 table of a store made before it used the Porter stemmer (~3 s for the 15,759 chunks of the
    demo index; chunks, documents and vectors are untouched)."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'chunks_fts'").fetchone()
    if row is None or FTS_STEMMER in row[0]:
        return
    create = next(s for s in SCHEMA.split(";") if "chunks_fts USING" in s)
    try:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'chunks_fts'").fetchone()
        if FTS_STEMMER in row[0]:  # another process rebuilt it while this one waited for the lock
            conn.execute("COMMIT")
            return
        conn.execute("DROP TABLE chunks_fts")
        conn.execute(create)
        conn.execute("INSERT INTO chunks_fts(rowid, title, text) SELECT c.id, d.title, c.text FROM chunks c"
                     " JOIN documents d ON d.id = c.doc_id")
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreError(f"{path}: the full-text index of this store predates stemming and must be rebuilt once, "
                         f"which failed ({exc}); open it where it can be written") from exc


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already done so (it does on a full disk; a second ROLLBACK
    would then hide the real error behind "cannot rollback - no transaction is active")."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """What is damaged in the store: SQLite's quick_check of every table and index, then FTS5's own check of the
    full-text table (which quick_check does not read). [] when both are sound."""
    problems = []
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check(20)")]
        if rows != ["ok"]:
            problems += [f"database: {r}" for r in rows]
    except sqlite3.DatabaseError as exc:
        problems.append(f"database: {exc}")
    try:
        conn.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1)")
    except sqlite3.DatabaseError as exc:
        problems.append(f"full-text table: {exc}")
    return problems


def fts_answers(conn: sqlite3.Connection) -> bool:
    """A cheap probe (about a millisecond) that the full-text table still finds what the chunks hold: a word of the
    first chunk must match. Garbled FTS5 pages make every MATCH return nothing, silently."""
    row = conn.execute("SELECT c.id, c.text FROM chunks c ORDER BY c.id LIMIT 1").fetchone()
    if row is None:
        return True
    words = re.findall(r"[^\W\d_]{4,}", row[1])
    if not words:
        return True
    found = conn.execute("SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid = ?",
                         (f'"{words[0]}"', row[0])).fetchone()
    return found is not None


def rebuild_fts(conn: sqlite3.Connection) -> int:
    """Drop and refill the full-text table from chunks and titles (documents and chunks are untouched); rows."""
    create = next(s for s in SCHEMA.split(";") if "chunks_fts USING" in s)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DROP TABLE IF EXISTS chunks_fts")
        conn.execute(create)
        conn.execute("INSERT INTO chunks_fts(rowid, title, text) SELECT c.id, d.title, c.text FROM chunks c"
                     " JOIN documents d ON d.id = c.doc_id")
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return chunk_count(conn)


def _dumps(value: Iterable[str]) -> str:
    return json.dumps(list(value), ensure_ascii=False)


def document_hash(conn: sqlite3.Connection, doc_id: str) -> str | None:
    row = conn.execute("SELECT content_hash FROM documents WHERE id = ?", (doc_id,)).fetchone()
    return row["content_hash"] if row else None


def put_document(conn: sqlite3.Connection, doc: Document, chunks: list[Chunk], derived: Derived) -> str:
    """Insert or replace one document with its chunks and derived tags and abbreviations, atomically.

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
        _write_derived(conn, doc.id, derived)
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return "added" if old is None else "updated"


def _storable(doc_id: str) -> bool:
    """False for an id SQLite cannot hold (a lone surrogate: undecodable bytes of a command-line argument)."""
    try:
        doc_id.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def remove_document(conn: sqlite3.Connection, doc_id: str) -> None:
    if not _storable(doc_id):
        raise NotFound(f"no document with id {doc_id!r}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        deleted = conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,)).rowcount
        gone = conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    if not gone and not deleted:
        raise NotFound(f"no document with id {doc_id!r}")


def document_origins(conn: sqlite3.Connection) -> Iterator[tuple[str, str]]:
    """(document id, origin) of every document, origin as recorded when it was read ('' when unknown), streamed."""
    for row in conn.execute("SELECT id, origin FROM documents ORDER BY id"):
        yield row[0], row[1] or ""


def chunk_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])


def chunk_id_bound(conn: sqlite3.Connection) -> int:
    """The highest chunk id ever stored (ids are never reused) less the store's first id (seed_chunk_ids): an upper
    bound of the chunk count, read in O(log n)."""
    base = int(_meta(conn).get("chunk_id_base", 0))
    return max(0, int(conn.execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()[0]) - base)


def seed_chunk_ids(conn: sqlite3.Connection, base: int) -> None:
    """Make this store's chunk ids start after `base` (a shard of a sharded index takes its own range, so chunk ids
    are unique across shards). Idempotent; refused once chunks below the range exist or another base was set."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        meta = _meta(conn)
        if "chunk_id_base" in meta:
            if int(meta["chunk_id_base"]) != base:
                raise ExoragError(f"this store's chunk ids start at {meta['chunk_id_base']}, not {base}")
        else:
            low = conn.execute("SELECT min(id) FROM chunks").fetchone()[0]
            if low is not None and low <= base:
                raise ExoragError(f"this store already holds chunk ids below {base + 1}: it is not a fresh shard")
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'chunks'").fetchone()
            if row is None:
                conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('chunks', ?)", (base,))
            elif row[0] < base:
                conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'chunks'", (base,))
            conn.execute("INSERT OR REPLACE INTO store_meta (key, value) VALUES ('chunk_id_base', ?)", (str(base),))
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _vocab_tables(conn: sqlite3.Connection) -> None:
    """Per-connection TEMP tables: an fts5vocab view of chunks_fts, and a scratch FTS5 table with the same tokenizer
    (stems query words exactly as the index does). Nothing is written to the store file."""
    if conn.execute("SELECT 1 FROM temp.sqlite_master WHERE name = 'chunks_vocab'").fetchone():
        return
    tokenizer = re.search(r'tokenize\s*=\s*"([^"]*)"', SCHEMA).group(1)  # type: ignore[union-attr]
    conn.execute("CREATE VIRTUAL TABLE temp.chunks_vocab USING fts5vocab(main, chunks_fts, 'row')")
    conn.execute(f"CREATE VIRTUAL TABLE temp.query_fts USING fts5(text, tokenize=\"{tokenizer}\")")
    conn.execute("CREATE VIRTUAL TABLE temp.query_vocab USING fts5vocab(temp, query_fts, 'instance')")


def term_chunk_counts(conn: sqlite3.Connection, words: list[str]) -> list[int | None]:
    """For each word, the number of chunks containing its (stemmed) token; None for a word of several tokens."""
    if not words:
        return []
    _vocab_tables(conn)
    conn.execute("DELETE FROM temp.query_fts")
    conn.executemany("INSERT INTO temp.query_fts(rowid, text) VALUES (?, ?)", list(enumerate(words)))
    tokens: dict[int, list[str]] = {}
    for doc, term in conn.execute("SELECT doc, term FROM temp.query_vocab"):
        tokens.setdefault(int(doc), []).append(term)
    conn.execute("DELETE FROM temp.query_fts")
    single = {i: t[0] for i, t in tokens.items() if len(t) == 1}
    counts: dict[str, int] = {}
    if single:
        terms = sorted(set(single.values()))
        q = f"SELECT term, doc FROM temp.chunks_vocab WHERE term IN ({','.join('?' * len(terms))})"
        counts = {row[0]: int(row[1]) for row in conn.execute(q, terms)}
    return [counts.get(single[i], 0) if i in single else None for i in range(len(words))]


def fts_totals(conn: sqlite3.Connection) -> tuple[int, int]:
    """(rows, tokens) of the full-text table: its chunks, and the tokens of their titles and texts together; FTS5's
    bm25 takes its N and average length (tokens / rows) from these. For bm25 over several shards (exorag/cluster)."""
    _vocab_tables(conn)
    tokens = conn.execute("SELECT coalesce(sum(cnt), 0) FROM temp.chunks_vocab").fetchone()[0]
    return chunk_count(conn), int(tokens)


def phrase_hits(conn: sqlite3.Connection, phrases: list[str]) -> list[int]:
    """For each phrase, the chunks whose title or text holds it (the n(q) of bm25's IDF, as FTS5 counts it)."""
    q = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
    return [int(conn.execute(q, ('"' + p.replace('"', '""') + '"',)).fetchone()[0]) for p in phrases]


def _scratch_tokens(conn: sqlite3.Connection, texts: list[str], terms: set[str] | None = None
                    ) -> tuple[dict[int, int], dict[int, dict[str, set[int]]]]:
    """Run `texts` through the full-text table's tokenizer (the scratch table temp.query_fts): ({text number: tokens},
    {text number: {term: offsets}}), the offsets only of `terms` when given. Inside a savepoint that is rolled back:
    one transaction for the scratch rows (not one per row), and nothing to delete after."""
    _vocab_tables(conn)
    conn.execute("SAVEPOINT scratch")
    try:
        conn.executemany("INSERT INTO temp.query_fts(rowid, text) VALUES (?, ?)", list(enumerate(texts)))
        sizes = {int(i): _varint(sz) for i, sz in conn.execute("SELECT id, sz FROM temp.query_fts_docsize")}
        where, params = "", []
        if terms is not None:
            where, params = f" WHERE term IN ({','.join('?' * len(terms))})", sorted(terms)
        offsets: dict[int, dict[str, set[int]]] = {}
        if terms is None or terms:
            for doc, term, offset in conn.execute(f"SELECT doc, term, offset FROM temp.query_vocab{where}", params):
                offsets.setdefault(int(doc), {}).setdefault(term, set()).add(int(offset))
    finally:
        conn.execute("ROLLBACK TO scratch")
        conn.execute("RELEASE scratch")
    return sizes, offsets


def _varint(blob: bytes) -> int:
    """The first varint of an FTS5 docsize record (a row's tokens in its first column; SQLite's varint format)."""
    value = 0
    for i, byte in enumerate(blob[:9]):
        if i == 8:
            return (value << 8) | byte
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value
    return value


def phrase_frequencies(conn: sqlite3.Connection, chunk_ids: list[int],
                       phrases: list[str]) -> dict[int, tuple[int, list[float]]]:
    """For each chunk: (tokens in its title and text, [occurrences of each phrase, weighted by BM25_WEIGHTS per
    column]), bm25's |D| and f(q, D) exactly as FTS5 counts them: title and text go through the table's own tokenizer
    and a phrase occurs where its tokens stand at consecutive offsets of one column."""
    if not chunk_ids:
        return {}
    _, phrase_offsets = _scratch_tokens(conn, phrases)
    sequences = [_sequence(phrase_offsets.get(i, {})) for i in range(len(phrases))]
    rows: list[tuple[int, str, str]] = []
    for i in range(0, len(chunk_ids), 500):
        batch = [int(c) for c in chunk_ids[i : i + 500]]
        q = (f"SELECT c.id, d.title, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id"
             f" WHERE c.id IN ({','.join('?' * len(batch))})")
        rows.extend((int(r[0]), r[1] or "", r[2]) for r in conn.execute(q, batch))
    wanted = {t for seq in sequences for t, _ in seq}
    sizes, offsets = _scratch_tokens(conn, [text for _, title, body in rows for text in (title, body)], wanted)
    weights = [float(w) for w in BM25_WEIGHTS]
    out: dict[int, tuple[int, list[float]]] = {}
    for n, (chunk_id, _, _) in enumerate(rows):
        length = sizes.get(2 * n, 0) + sizes.get(2 * n + 1, 0)
        freqs = []
        for seq in sequences:
            f = 0.0
            for column in (0, 1):
                found = offsets.get(2 * n + column, {})
                if seq and all(t in found for t, _ in seq):
                    f += weights[column] * sum(1 for o in found[seq[0][0]]
                                               if all(o + d in found[t] for t, d in seq[1:]))
            freqs.append(f)
        out[chunk_id] = (length, freqs)
    return out


def _sequence(offsets: dict[str, set[int]]) -> list[tuple[str, int]]:
    """A tokenized phrase as (term, offset from its first token), in order."""
    pairs = sorted((o, t) for t, os_ in offsets.items() for o in os_)
    return [(t, o - pairs[0][0]) for o, t in pairs] if pairs else []


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
    row = conn.execute("SELECT * FROM documents WHERE id = ?", (doc_id,)).fetchone() if _storable(doc_id) else None
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


def existing_chunk_ids(conn: sqlite3.Connection, chunk_ids: Iterable[int]) -> set[int]:
    """Those of `chunk_ids` that are stored chunks (primary-key lookups only; no text read)."""
    ids = [int(i) for i in chunk_ids]
    found: set[int] = set()
    for i in range(0, len(ids), 500):
        batch = ids[i : i + 500]
        found.update(r[0] for r in conn.execute(f"SELECT id FROM chunks WHERE id IN ({','.join('?' * len(batch))})",
                                                batch))
    return found


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
    by_key: dict[str, list[str]] = {}
    for key, value in filters.tags:  # one key: any listed value; several keys: all of them (checked by Filters)
        by_key.setdefault(key, []).append(value)
    for key, values in by_key.items():
        sql.append("EXISTS (SELECT 1 FROM doc_tags t WHERE t.doc_id = d.id AND t.key = ? AND t.value IN "
                   f"({','.join('?' * len(values))}))")
        params.extend([key, *values])
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
    w_title, w_text = (float(w) for w in BM25_WEIGHTS)
    if clause:
        q = (f"SELECT f.rowid, bm25(chunks_fts, {w_title}, {w_text}) AS r FROM chunks_fts f"
             f" JOIN chunks c ON c.id = f.rowid JOIN documents d ON d.id = c.doc_id WHERE chunks_fts MATCH ?{clause} ORDER BY r LIMIT ?")
    else:
        q = (f"SELECT rowid, bm25(chunks_fts, {w_title}, {w_text}) AS r FROM chunks_fts WHERE chunks_fts MATCH ?"
             " ORDER BY r LIMIT ?")
    rows = conn.execute(q, [match, *params, k])
    return [(int(row[0]), -float(row[1])) for row in rows]


def document_tags(conn: sqlite3.Connection, doc_ids: Iterable[str]) -> dict[str, dict[str, list[str]]]:
    """{doc id: {key: [values]}} in TAG_KEYS order; documents without tags are absent."""
    ids = list(dict.fromkeys(doc_ids))
    order = {k: i for i, k in enumerate(tags.TAG_KEYS)}
    rank = {(k, v): i for k, vs in tags.TAG_VALUES.items() for i, v in enumerate(vs)}
    rows: list[tuple[str, str, str]] = []
    for i in range(0, len(ids), 500):
        batch = ids[i : i + 500]
        q = f"SELECT doc_id, key, value FROM doc_tags WHERE doc_id IN ({','.join('?' * len(batch))})"
        rows.extend((r[0], r[1], r[2]) for r in conn.execute(q, batch))
    out: dict[str, dict[str, list[str]]] = {}
    for doc_id, key, value in sorted(rows, key=lambda r: (r[0], order.get(r[1], 99), rank.get((r[1], r[2]), 99))):
        out.setdefault(doc_id, {}).setdefault(key, []).append(value)
    return out


def tag_values(conn: sqlite3.Connection) -> dict[str, list[tuple[str, int]]]:
    """{key: [(value, documents)]} of the tags present in the index, most common first (for filter choices)."""
    out: dict[str, list[tuple[str, int]]] = {k: [] for k in tags.TAG_KEYS}
    rows = conn.execute("SELECT key, value, count(*) AS n FROM doc_tags GROUP BY key, value ORDER BY key, n DESC, value")
    for r in rows:
        out.setdefault(r[0], []).append((r[1], int(r[2])))
    return out


def long_forms(conn: sqlite3.Connection, shorts: list[str]) -> dict[str, list[tuple[str, int]]]:
    """{short form key: [(long form, documents defining it)]} from the abbreviations mined at ingest."""
    if not shorts:
        return {}
    q = (f"SELECT short, long, count(*) FROM abbreviations WHERE short IN ({','.join('?' * len(shorts))})"
         " GROUP BY short, long")
    out: dict[str, list[tuple[str, int]]] = {}
    for r in conn.execute(q, shorts):
        out.setdefault(r[0], []).append((r[1], int(r[2])))
    return out


def counts(conn: sqlite3.Connection) -> dict[str, Any]:
    docs = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
    chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    sources = {r[0] or "": r[1] for r in conn.execute("SELECT source, count(*) FROM documents GROUP BY source")}
    return {"documents": docs, "chunks": chunks, "sources": sources}


# Read-only overviews for the browser chat's filter choices and corpus tab.

def distinct_sources(conn: sqlite3.Connection) -> list[str]:
    """Every non-empty `source` value, sorted case-insensitively."""
    rows = conn.execute("SELECT DISTINCT source FROM documents WHERE source IS NOT NULL AND source != ''")
    return sorted((r[0] for r in rows), key=str.lower)


def pub_type_counts(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """(publication type, documents) of every type named by some document, most common first."""
    rows = conn.execute("SELECT p.value, count(DISTINCT d.id) AS n FROM documents d, json_each(d.publication_types) p"
                        " WHERE d.publication_types IS NOT NULL AND p.value != '' GROUP BY p.value"
                        " ORDER BY n DESC, p.value")
    return [(str(r[0]), int(r[1])) for r in rows]


def distinct_pub_types(conn: sqlite3.Connection) -> list[str]:
    """Every publication type named by some document, sorted case-insensitively."""
    rows = conn.execute("SELECT DISTINCT p.value FROM documents d, json_each(d.publication_types) p"
                        " WHERE d.publication_types IS NOT NULL AND p.value != ''")
    return sorted({str(r[0]) for r in rows}, key=str.lower)


def year_counts(conn: sqlite3.Connection) -> list[tuple[int | None, int]]:
    """(year, documents) by year, oldest first; documents without a year last, as (None, n)."""
    rows = conn.execute("SELECT year, count(*) FROM documents GROUP BY year ORDER BY year IS NULL, year")
    return [(r[0], int(r[1])) for r in rows]


def source_counts(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """(source, documents), largest first; '' for documents without a source."""
    rows = conn.execute("SELECT coalesce(source, ''), count(*) AS n FROM documents GROUP BY 1 ORDER BY n DESC, 1")
    return [(r[0], int(r[1])) for r in rows]


def recent_documents(conn: sqlite3.Connection, limit: int = 10) -> list[dict[str, Any]]:
    """The `limit` most recently added documents: id, title, year, source, added_at (UTC, as stored)."""
    rows = conn.execute("SELECT id, title, year, source, added_at FROM documents"
                        " ORDER BY added_at DESC, rowid DESC LIMIT ?", (limit,))
    return [{"id": r[0], "title": r[1] or "", "year": r[2], "source": r[3] or "", "added_at": r[4]} for r in rows]


def count_documents(conn: sqlite3.Connection, filters: Filters | None = None) -> int:
    """How many documents pass `filters` (all of them without)."""
    clause, params = filter_clause(filters)
    return int(conn.execute(f"SELECT count(*) FROM documents d WHERE 1{clause}", params).fetchone()[0])


def _like(term: str) -> str:
    """A LIKE pattern matching `term` anywhere, its own % and _ taken literally (ESCAPE '\\')."""
    return "%" + term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def find_documents(conn: sqlite3.Connection, query: str = "", limit: int = 50,
                   offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """(documents matching, one page of them, newest first): every word of `query` must occur (case-insensitively)
    in the title, id, PMID, DOI or PMCID; an empty query matches every document. Rows: id, title, year, journal,
    source, pmid, doi, pmcid, added_at."""
    terms = (query or "").split()
    where = " AND ".join("(lower(title) LIKE ? ESCAPE '\\' OR lower(id) LIKE ? ESCAPE '\\' OR pmid LIKE ? ESCAPE '\\'"
                         " OR lower(doi) LIKE ? ESCAPE '\\' OR lower(pmcid) LIKE ? ESCAPE '\\')" for _ in terms)
    params = [_like(t) for t in terms for _ in range(5)]
    sql_where = f" WHERE {where}" if where else ""
    total = int(conn.execute(f"SELECT count(*) FROM documents{sql_where}", params).fetchone()[0])
    rows = conn.execute(f"SELECT id, title, year, journal, source, pmid, doi, pmcid, added_at FROM documents{sql_where}"
                        " ORDER BY added_at DESC, rowid DESC LIMIT ? OFFSET ?",
                        [*params, max(0, limit), max(0, offset)])
    return total, [{"id": r[0], "title": r[1] or "", "year": r[2], "journal": r[3] or "", "source": r[4] or "",
                    "pmid": r[5] or "", "doi": r[6] or "", "pmcid": r[7] or "", "added_at": r[8]} for r in rows]
