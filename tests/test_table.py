"""Evidence tables: one row per paper with a verbatim quoted finding, valid CSV and escaped Markdown."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import pytest

from exorag.cli import main
from exorag.output.table import COLUMNS, HEADERS, columns, evidence_table, to_csv, to_markdown
from exorag.types import Filters

QUESTION = "Which methods are used to measure the size of extracellular vesicles?"


@pytest.fixture(scope="module")
def rows(built_index: Path):  # type: ignore[no-untyped-def]
    from exorag.index.index import open_index

    idx = open_index(built_index)
    try:
        yield evidence_table(idx, QUESTION, k=12)
    finally:
        idx.close()


def test_one_row_per_paper_with_verbatim_findings(rows) -> None:  # type: ignore[no-untyped-def]
    assert len(rows) >= 3
    assert len({r.doc_id for r in rows}) == len(rows)
    assert [r.n for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        c = row.quote
        assert c.document.text[c.char_start:c.char_end] == c.quote
        assert row.key_finding == f"\"{c.quote}\" [{row.n}]"
        assert row.year == c.document.year and row.doc_id == c.document.id
        assert (c.document.title or c.document.id).rstrip(".") in row.citation
    assert any(row.methods for row in rows)  # EV methods come from the study tags


def test_csv_is_valid_and_round_trips(rows) -> None:  # type: ignore[no-untyped-def]
    text = to_csv(rows)
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == [HEADERS[c] for c in columns(rows)]
    shown = [COLUMNS.index(c) for c in columns(rows)]
    assert parsed[1:] == [[r.values()[i] for i in shown] for r in rows]
    tricky = dataclasses.replace(rows[0], key_finding='"a, b" [1]\nsecond line', citation="x | y")
    assert list(csv.reader(io.StringIO(to_csv([tricky]))))[1][8] == '"a, b" [1]\nsecond line'


def test_markdown_escapes_pipes_and_folds_lines(rows) -> None:  # type: ignore[no-untyped-def]
    tricky = dataclasses.replace(rows[0], citation="A | B", key_finding="one\ntwo | three [1]")
    lines = to_markdown([tricky]).splitlines()
    assert lines[0].startswith("| n | citation | year | design |")
    assert len(lines) == 3
    assert "A \\| B" in lines[2] and "one two \\| three [1]" in lines[2]
    assert lines[2].count(" | ") == lines[0].count(" | ")  # no stray column from an unescaped pipe


def test_table_filters(index) -> None:  # type: ignore[no-untyped-def]
    from exorag.index import store

    rows = evidence_table(index, "exosomes in cancer", k=10, filters=Filters(tags=("design=review",)))
    tags = index.document_tags((r.doc_id for r in rows))
    assert rows and all("review" in tags[r.doc_id]["design"] for r in rows)


def test_cli_table_formats_out_file_and_abstention(built_index: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "table.csv"
    assert main(["table", QUESTION, "--index", str(built_index), "--format", "csv", "--out", str(out)]) == 0
    assert "rows to" in capsys.readouterr().out
    parsed = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert parsed[0][0] == "n" and len(parsed) >= 4
    assert main(["table", QUESTION, "--index", str(built_index)]) == 0
    assert capsys.readouterr().out.startswith("| n | citation |")
    assert main(["table", "What is the capital city of Australia?", "--index", str(built_index)]) == 1
    captured = capsys.readouterr()
    assert "does not appear to answer" in captured.err and captured.out == ""
    assert main(["table", QUESTION, "--index", str(built_index), "--out", str(tmp_path / "no" / "dir.md")]) == 1
    assert "cannot write" in capsys.readouterr().err
