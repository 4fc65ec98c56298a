"""Answers, hits and documents as JSON-ready dicts, plain text and Markdown; used by the CLI and the app alike.

The JSON shapes here are the CLI contract (`search --json`, `ask --json`, `show --json`, `cite --json`).
Reference lines follow a compact Vancouver-like style: authors (first three, then "et al."), year, title, journal,
PMID and DOI links.
Deliberately left out: BibTeX/RIS/CSL export (export.py, a later issue).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .types import Answer, Chunk, Citation, Document, Hit

if TYPE_CHECKING:
    from .cite import SentenceSupport
    from .generate import Generated


def hit_dict(hit: Hit) -> dict[str, Any]:
    d, c = hit.document, hit.chunk
    return {
        "doc_id": d.id, "title": d.title, "year": d.year, "pmid": d.pmid or None, "doi": d.doi or None,
        "url": d.url or None, "text": c.text, "section": c.section, "page": c.page, "score": round(hit.score, 6),
        "dense_score": None if hit.dense_score is None else round(hit.dense_score, 6),
        "lexical_score": None if hit.lexical_score is None else round(hit.lexical_score, 6),
        "chunk_id": c.id, "char_start": c.char_start, "char_end": c.char_end,
    }


def citation_dict(c: Citation) -> dict[str, Any]:
    d = c.document
    return {
        "n": c.n, "doc_id": d.id, "title": d.title, "year": d.year, "pmid": d.pmid or None, "doi": d.doi or None,
        "url": d.url or None, "quote": c.quote, "section": c.section, "page": c.page,
        "char_start": c.char_start, "char_end": c.char_end, "authors": list(d.authors), "journal": d.journal,
        "score": round(c.score, 6),
    }


def answer_dict(answer: Answer) -> dict[str, Any]:
    return {
        "question": answer.question,
        "answer": answer.text,
        "abstained": answer.abstained,
        "support": round(answer.support, 4),
        "citations": [citation_dict(c) for c in answer.citations],
        "closest": [hit_dict(h) for h in answer.hits] if answer.abstained else [],
    }


def document_dict(doc: Document, chunks: list[Chunk]) -> dict[str, Any]:
    return {
        "doc_id": doc.id, "title": doc.title, "authors": list(doc.authors), "journal": doc.journal,
        "year": doc.year, "pmid": doc.pmid or None, "doi": doc.doi or None, "pmcid": doc.pmcid or None,
        "url": doc.url or None, "publication_types": list(doc.publication_types), "mesh": list(doc.mesh),
        "source": doc.source, "origin": doc.origin,
        "chunks": [{"chunk_id": c.id, "text": c.text, "section": c.section, "page": c.page,
                    "char_start": c.char_start, "char_end": c.char_end} for c in chunks],
    }


def authors_short(authors: tuple[str, ...]) -> str:
    if not authors:
        return ""
    return ", ".join(authors[:3]) + (", et al." if len(authors) > 3 else "")


def reference_line(doc: Document, markdown: bool = False) -> str:
    """One reference: authors (year). Title. Journal. PMID / DOI."""
    parts = []
    who = authors_short(doc.authors)
    if who:
        parts.append(who + (f" ({doc.year})." if doc.year else "."))
    elif doc.year:
        parts.append(f"({doc.year}).")
    title = doc.title.rstrip(".") or doc.id
    parts.append(title + ".")
    if doc.journal:
        parts.append(doc.journal.rstrip(".") + ".")
    links = []
    for kind, url in doc.links:
        label = {"pmid": f"PMID {doc.pmid}", "doi": f"doi:{doc.doi}"}.get(kind)
        if label:  # PMC is left to the chat's source cards
            links.append(f"[{label}]({url})" if markdown else f"{label} {url}")
    if not links and doc.source in ("pdf", "text") and doc.origin:
        links.append(Path(doc.origin).name)  # a local file: its name, not the full path
    return " ".join(parts + ["; ".join(links)]).strip()


def grouped_references(citations: tuple[Citation, ...]) -> list[tuple[list[int], Document]]:
    """Citations grouped per document: ([n, ...], document), in order of first citation."""
    groups: dict[str, tuple[list[int], Document]] = {}
    for c in citations:
        groups.setdefault(c.document.id, ([], c.document))[0].append(c.n)
    return list(groups.values())


def where(section: str, page: int | None) -> str:
    return ", ".join(p for p in (section, f"p. {page}" if page else "") if p)


def answer_text(answer: Answer) -> str:
    lines = [answer.text, ""]
    if answer.abstained:
        if answer.hits:
            lines.append("Closest passages:")
            for hit in answer.hits:
                lines.append(f"- {reference_line(hit.document)}\n  \"{hit.chunk.text[:300]}\"")
        return "\n".join(lines).rstrip() + "\n"
    lines.append("References")
    for numbers, doc in grouped_references(answer.citations):
        label = ", ".join(str(n) for n in numbers)
        lines.append(f"[{label}] {reference_line(doc)}")
    return "\n".join(lines) + "\n"


def answer_markdown(answer: Answer, link_citations: bool = True) -> str:
    """The answer with `[n]` markers linked to the cited work, then a numbered reference list."""
    if answer.abstained:
        out = [f"*{answer.text}*"]
        for hit in answer.hits:
            out.append(f"- {reference_line(hit.document, markdown=True)}")
        return "\n".join(out)
    body = []
    for c in answer.citations:
        marker = f"[[{c.n}]]({c.document.url})" if link_citations and c.document.url else f"[{c.n}]"
        body.append(f"{c.quote} {marker}")
    refs = [f"{', '.join(f'[{n}]' for n in numbers)} {reference_line(doc, markdown=True)}"
            for numbers, doc in grouped_references(answer.citations)]
    return " ".join(body) + "\n\n**References**\n\n" + "\n".join(f"- {r}" for r in refs)


def hit_text(rank: int, hit: Hit) -> str:
    d = hit.document
    head = f"{rank}. {d.title or d.id} ({d.year or 'n.d.'}) [{d.id}] score={hit.score:.4f}"
    loc = where(hit.chunk.section, hit.chunk.page)
    return f"{head}\n   {loc}\n   {hit.chunk.text}\n"


def generated_dict(result: Generated) -> dict[str, Any]:
    """`ask --json` with an LLM set: the answer's usual shape plus mode, note, dropped and marked sentences."""
    return {**answer_dict(result.answer), "mode": result.mode, "note": result.note,
            "dropped": [r.sentence for r in result.dropped], "marked": [r.sentence for r in result.marked]}


def generated_text(result: Generated) -> str:
    lines = [f"Note: {result.note}", ""] if result.note else []
    lines.append(answer_text(result.answer).rstrip("\n"))
    if result.dropped:
        lines += ["", "Dropped (not supported by the passages they cite):"]
        lines += [f"- {r.sentence} ({r.reason})" for r in result.dropped]
    return "\n".join(lines) + "\n"


def cite_dict(sentences: list[SentenceSupport]) -> dict[str, Any]:
    """`cite --json`: each sentence of the user's text, whether the index supports it, and the quotes that do."""
    return {"sentences": [{"sentence": s.sentence, "start": s.start, "end": s.end, "supported": s.supported,
                           "citations": [citation_dict(c) for c in s.citations]} for s in sentences]}


def cite_text(sentences: list[SentenceSupport]) -> str:
    """Each sentence with its suggested [n] (or a note that the index has none), then references with the quotes."""
    lines = [f"{s.sentence} " + ("".join(f"[{c.n}]" for c in s.citations) if s.supported
                                 else "[no supporting passage in the index]") for s in sentences]
    citations = {c.n: c for s in sentences for c in s.citations}
    if citations:
        lines += ["", "References"]
        for numbers, doc in grouped_references(tuple(citations[n] for n in sorted(citations))):
            lines.append(f"[{', '.join(map(str, numbers))}] {reference_line(doc)}")
            for n in numbers:
                c = citations[n]
                loc = where(c.section, c.page)
                lines.append(f"    [{n}] \"{c.quote}\"" + (f" ({loc})" if loc else ""))
    return "\n".join(lines) + "\n"
