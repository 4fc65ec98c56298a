"""Evidence tables for review writing: one row per paper that answers a question, as CSV or Markdown.

`evidence_table` asks the question the way exorag/ask/answer.py does (same retrieval, same judge, same abstention), but
keeps one evidence sentence per paper and up to `k` papers, so a paper has a row only when the judge says its
sentence answers the question, and every row's key finding is a Citation: the sentence quoted verbatim
(`document.text[char_start:char_end]`) followed by its `[n]`. For a yes/no question a `stance` column says whether
the paper's sentence supports or contradicts (or neither) the question's proposition; other questions have no such
column. The other columns come from the paper's metadata and its study tags (exorag/build/tags.py). An abstaining question
gives no rows.
Deliberately left out: effect sizes, sample sizes and risk-of-bias columns (no reliable extraction offline).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from exorag.ask.answer import ask, paper_stance
from exorag.index.index import Index
from exorag.output.render import authors_short, display_title
from exorag.types import Answer, Citation, Filters

COLUMNS: tuple[str, ...] = ("n", "citation", "year", "design", "species", "source", "methods", "cargo",
                            "key_finding", "stance", "doc_id", "url")
HEADERS: dict[str, str] = {"n": "n", "citation": "citation", "year": "year", "design": "design",
                           "species": "species", "source": "EV source", "methods": "methods", "cargo": "cargo",
                           "key_finding": "key finding", "stance": "stance", "doc_id": "doc id",
                           "url": "url"}


@dataclass(frozen=True)
class Row:
    """One paper of an evidence table; `key_finding` is the quoted sentence with its `[n]`."""

    n: int
    citation: str
    year: int | None
    design: str
    species: str
    source: str
    methods: str
    cargo: str
    key_finding: str
    doc_id: str
    url: str
    quote: Citation
    stance: str = ""  # yes/no questions: supports / contradicts / neither

    def values(self) -> list[str]:
        return [str(self.n), self.citation, "" if self.year is None else str(self.year), self.design, self.species,
                self.source, self.methods, self.cargo, self.key_finding, self.stance, self.doc_id, self.url]


def columns(rows: list[Row]) -> tuple[str, ...]:
    """The table's columns: `stance` only when the rows have one (a yes/no question)."""
    return COLUMNS if any(r.stance for r in rows) else tuple(c for c in COLUMNS if c != "stance")


def _label(values: list[str]) -> str:
    return "; ".join(v.replace("_", " ") for v in values)


def short_citation(citation: Citation) -> str:
    """'Author A, Author B, et al. (2021). Title. Journal' (PMID or DOI in the url column)."""
    d = citation.document
    who = authors_short(d.authors)
    parts = [p for p in (who, f"({d.year})" if d.year else "") if p]
    head = " ".join(parts)
    title = display_title(d).rstrip(".")
    tail = ". ".join(p for p in (title, d.journal.rstrip(".")) if p)
    return f"{head}. {tail}" if head else tail


def evidence_table(index: Index, question: str, k: int = 12, filters: Filters | None = None,
                   expand: bool = True) -> list[Row]:
    """Rows for the papers whose sentences answer `question` (within `filters`); [] when the answer abstains."""
    answer = ask(index, question, k=k, max_sentences=k, per_doc=1, filters=filters, expand=expand)
    return rows_for(index, answer)


def rows_for(index: Index, answer: Answer) -> list[Row]:
    """One row per cited paper of `answer`, in citation order; [] when it abstained.

    A paper quoted more than once (an ordinary answer quotes up to 2 sentences per paper) gets all its quotes, each
    with its own `[n]`, in its key finding, so the table's numbers are the answer's.
    """
    if answer.abstained or not answer.citations:
        return []
    tags = index.document_tags((c.document.id for c in answer.citations))
    by_paper: dict[str, list[Citation]] = {}
    for c in answer.citations:
        by_paper.setdefault(c.document.id, []).append(c)
    rows = []
    for quotes in by_paper.values():
        c = quotes[0]
        t = tags.get(c.document.id, {})
        rows.append(Row(
            n=c.n, citation=short_citation(c), year=c.document.year, design=_label(t.get("design", [])),
            species=_label(t.get("species", [])), source=_label(t.get("ev_source", [])),
            methods=_label(t.get("isolation", []) + t.get("characterisation", [])), cargo=_label(t.get("cargo", [])),
            key_finding=" ".join(f"\"{q.quote}\" [{q.n}]" for q in quotes), doc_id=c.document.id,
            url=c.document.url, quote=c, stance=paper_stance(stances) if (stances := {q.stance for q in quotes if q.stance}) else "",
        ))
    return rows


def to_csv(rows: list[Row]) -> str:
    """RFC 4180 CSV (csv module quoting), a header row first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    shown = columns(rows)
    writer.writerow([HEADERS[c] for c in shown])
    for row in rows:
        cells = dict(zip(COLUMNS, row.values()))
        writer.writerow([cells[c] for c in shown])
    return buffer.getvalue()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")


def to_markdown(rows: list[Row]) -> str:
    """A GitHub-flavoured Markdown table; pipes and backslashes in cells are escaped, line breaks folded."""
    shown = [c for c in columns(rows) if c != "doc_id"]
    lines = ["| " + " | ".join(HEADERS[c] for c in shown) + " |", "|" + "---|" * len(shown)]
    for row in rows:
        cells = dict(zip(COLUMNS, row.values()))
        lines.append("| " + " | ".join(_cell(cells[c]) for c in shown) + " |")
    return "\n".join(lines) + "\n"
