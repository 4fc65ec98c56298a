"""Test helper: a sharded index made the plain way, without Ray or `exorag cluster build` (another branch writes that).

`make_sharded(root, records, shards)` writes, for each shard i, the records whose id routes to it
(layout.shard_of_document) into a JSONL, opens ROOT/shard-00i as an ordinary index, seeds its chunk ids at
layout.first_chunk_id(i), ingests the JSONL and gives it vectors; then writes cluster.json. `make_single(folder,
records)` is the one-process index of the same records. Vectors: by default sync_vectors embeds them; with
`vectors_from` (an index folder holding the same records, e.g. the session's built_index) each chunk takes the vector
that index holds for the same (document, ordinal), i.e. what sync_vectors computed from the same title and text with
the same model, so the tests embed nothing twice on a 2-core machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from exorag.build.ingest import ingest_paths
from exorag.cluster.layout import Layout, first_chunk_id, shard_folder, shard_of_document, write_layout
from exorag.index.index import Index, open_index, sync_vectors
from exorag.index.vectors import all_vectors


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _source_vectors(folder: Path) -> dict[tuple[str, int], np.ndarray]:
    source = open_index(folder)
    try:
        ids, vecs = all_vectors(source.vectors.index)
        chunks = source.get_chunks(ids.tolist())
        return {(chunks[int(cid)].doc_id, chunks[int(cid)].ordinal): vec for cid, vec in zip(ids, vecs)
                if int(cid) in chunks}
    finally:
        source.close()


def _fill(index: Index, vectors_from: dict[tuple[str, int], np.ndarray] | None) -> None:
    if vectors_from is None:
        sync_vectors(index, progress=False)
        return
    ids = index.chunk_ids()
    chunks = index.get_chunks(ids)
    missing = [cid for cid in ids if (chunks[cid].doc_id, chunks[cid].ordinal) not in vectors_from]
    assert not missing, f"{len(missing)} chunks have no vector in the source index"
    index.vectors.add(np.array(ids, dtype=np.int64),
                      np.vstack([vectors_from[(chunks[cid].doc_id, chunks[cid].ordinal)] for cid in ids]))
    index.vectors.save()


def _build(folder: Path, jsonl: Path, base: int | None, vectors: dict | None) -> int:
    index = open_index(folder)
    try:
        if base is not None:
            index.seed_chunk_ids(base)
        report = ingest_paths(index, [jsonl], progress=False, embed=False)
        assert not report.failed, report.failed
        _fill(index, vectors)
        return report.added
    finally:
        index.close()


def make_single(folder: Path, records: list[dict], vectors_from: Path | None = None) -> Path:
    jsonl = _write_jsonl(folder.parent / f"{folder.name}.jsonl", records)
    _build(folder, jsonl, None, _source_vectors(vectors_from) if vectors_from else None)
    return folder


def make_sharded(root: Path, records: list[dict], shards: int, vectors_from: Path | None = None) -> Path:
    vectors = _source_vectors(vectors_from) if vectors_from else None
    root.mkdir(parents=True, exist_ok=True)
    model = None
    for shard in range(shards):
        mine = [r for r in records if shard_of_document(r["id"], shards) == shard]
        jsonl = _write_jsonl(root.parent / f"{root.name}-shard-{shard}.jsonl", mine)
        assert _build(shard_folder(root, shard), jsonl, first_chunk_id(shard), vectors) == len(mine)
        index = open_index(shard_folder(root, shard))
        model = index.model_name
        assert all(shard_of_document(d, shards) == shard for d, _ in index.document_origins())
        index.close()
    write_layout(root, Layout(shards=shards, model=model or "", dim=384))
    return root
