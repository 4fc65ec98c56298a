"""Answers, hits and documents as JSON-ready dicts, plain text and Markdown; used by the CLI and the app alike.

The JSON shapes here are the CLI contract (`search --json`, `ask --json`, `show --json`, `cite --json`).
Reference lines follow a compact Vancouver-like style: authors (first three, then "et al."), year, title, journal,
PMID and DOI links.
A quote is shown through `display_quote`, which sets it off from our own `[n]` markers: in typographic quotes, with
the source paper's own reference markers ("[16]", "[3, 5-7]") made plain as "[ref. 16]" / "[refs. 3, 5-7]" in
text and Markdown, and, on the page, in grey `<span class="src-ref">` spans (author-year ones too).
In Markdown, document text (titles, authors, journals, file names) goes through `md_escape`, so a record cannot
inject links, images or HTML; `reference_list` is the one builder of numbered reference lists; `display_title`
gives an untitled record its opening words. Deliberately left out: BibTeX/RIS/CSL export (export.py), the page's
HTML (web/page.py), and evidence tables (table.py).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from exorag.types import Answer, Chunk, Citation, Document, Hit

if TYPE_CHECKING:
    from exorag.ask.cite import SentenceSupport
    from exorag.ask.generate import Generated


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
        "score": round(c.score, 6), **({"stance": c.stance} if c.stance else {}),
    }


def answer_dict(answer: Answer) -> dict[str, Any]:
    return {
        "question": answer.question,
        "answer": answer.text,
        "abstained": answer.abstained,
        "support": round(answer.support, 4),
        "citations": [citation_dict(c) for c in answer.citations],
        "closest": [hit_dict(h) for h in answer.hits] if answer.abstained else [],
        **({"consensus": answer.consensus} if answer.consensus is not None else {}),
        "missing": list(answer.missing), "note": answer.note,
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


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>~|#!])")
# What GFM turns into a link without any bracket: "http://...", "www....", "name@host"; a backslash before the ":",
# the "." or the "@" (a CommonMark escape, shown as the character itself) keeps them text.
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|mailto)(?=:)|\b(www)(?=\.)|(?<=\S)(?=@\S)")


def md_escape(text: str) -> str:
    """Text safe to place in Markdown: no emphasis, links (bare URLs and e-mail addresses included), images, HTML or
    LaTeX made of its characters (document metadata and quotes are data, never markup)."""
    escaped = _MD_SPECIAL.sub(r"\\\1", text).replace("$", "\\$")
    return _AUTOLINK.sub(lambda m: (m.group(0) + "\\") if m.group(0) else "\\", escaped)


def _md_url(url: str) -> str:
    """A URL safe inside Markdown's (...): parentheses, spaces and angle brackets percent-encoded."""
    return url.replace("(", "%28").replace(")", "%29").replace(" ", "%20").replace("<", "%3C").replace(">", "%3E")


def display_title(doc: Document, chars: int = 90) -> str:
    """The document's title; without one, the opening words of its text ("[untitled] Exosomes are …"), never a bare
    id such as "pmid:N"."""
    if doc.title.strip():
        return doc.title.strip()
    opening = " ".join(doc.text.split())
    if not opening:
        return f"[untitled] {doc.id}"
    return "[untitled] " + (opening if len(opening) <= chars else opening[:chars].rsplit(" ", 1)[0] + " …")


def reference_line(doc: Document, markdown: bool = False) -> str:
    """One reference: authors (year). Title. Journal. PMID / DOI. With `markdown`, the document's text is escaped
    and the identifiers are links."""
    safe = md_escape if markdown else (lambda s: s)
    parts = []
    who = safe(authors_short(doc.authors))
    if who:
        parts.append(who + (f" ({doc.year})." if doc.year else "."))
    elif doc.year:
        parts.append(f"({doc.year}).")
    parts.append(safe(display_title(doc).rstrip(".")) + ".")
    if doc.journal:
        parts.append(safe(doc.journal.rstrip(".")) + ".")
    links = []
    for kind, url in doc.links:
        label = {"pmid": f"PMID {doc.pmid}", "doi": f"doi:{doc.doi}"}.get(kind)
        if label:  # PMC is left to the chat's source cards
            links.append(f"[{md_escape(label)}]({_md_url(url)})" if markdown else f"{label} {url}")
    if not links and doc.source in ("pdf", "text") and doc.origin:
        links.append(safe(Path(doc.origin).name))  # a local file: its name, not the full path
    return " ".join(parts + ["; ".join(links)]).strip()


def grouped_references(citations: tuple[Citation, ...]) -> list[tuple[list[int], Document]]:
    """Citations grouped per document: ([n, ...], document), in order of first citation."""
    groups: dict[str, tuple[list[int], Document]] = {}
    for c in citations:
        groups.setdefault(c.document.id, ([], c.document))[0].append(c.n)
    return list(groups.values())


def reference_list(citations: tuple[Citation, ...], markdown: bool = False) -> list[str]:
    """The numbered reference list, one line per cited work: "[1, 3] ..." as text, "- [1], [3] ..." as Markdown."""
    if markdown:
        return [f"- {', '.join(f'[{n}]' for n in numbers)} {reference_line(doc, markdown=True)}"
                for numbers, doc in grouped_references(citations)]
    return [f"[{', '.join(str(n) for n in numbers)}] {reference_line(doc)} (id {doc.id})"
            for numbers, doc in grouped_references(citations)]


def where(section: str, page: int | None) -> str:
    return ", ".join(p for p in (section, f"p. {page}" if page else "") if p)


# The source paper's own reference markers inside a quote: bracketed numbers ("[16]", "[3, 5-7]", "[12–14]") and
# author-year parentheticals ("(Chen et al., 2018)", "(Théry and Witwer 2018; Lee 2019a)"; not "(March 2020)").
_NUMERIC_REF = r"\[\s*\d{1,4}(?:\s*[-–—]\s*\d{1,4})?(?:\s*[,;]\s*\d{1,4}(?:\s*[-–—]\s*\d{1,4})?)*\s*\]"
_NAME = r"(?:(?:van|von|der|den|de|del|della|da|di|du|le|la|dos|das|ten)\s+)*[A-ZÀ-ÖØ-Þ][A-Za-zÀ-ÖØ-öø-ÿ'’-]+"
_ONE_CITE = (rf"{_NAME}(?:\s+et\s+al\.?|\s+(?:and|&)\s+{_NAME})?,?\s+(?:19|20)\d\d[a-z]?"
             r"(?:\s*,\s*(?:19|20)\d\d[a-z]?)*")
_MONTHS = ("Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
           "Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?|Spring|Summer|Autumn|Fall|Winter")
_AUTHOR_YEAR = (rf"\((?:(?:e\.g\.|see|cf\.|reviewed in),?\s+)?(?!(?:{_MONTHS})\b){_ONE_CITE}"
                rf"(?:\s*;\s*(?!(?:{_MONTHS})\b){_ONE_CITE})*\)")
SOURCE_REF = re.compile(f"(?P<numeric>{_NUMERIC_REF})|(?P<author_year>{_AUTHOR_YEAR})")
SRC_REF_SPAN = '<span class="src-ref" title="reference in the quoted paper" style="color:#6b7280;font-size:0.85em">'


def display_quote(quote: str, markup: Literal["text", "markdown", "html"] = "text", *,
                  escape: Callable[[str], str] | None = None, quotes: bool = True) -> str:
    """A quote as shown next to our `[n]`, so the source's own reference markers cannot pass for ours.

    The JSON keeps the quote verbatim; only its display changes. `quotes` puts it in typographic quotes “…” (our
    marker then follows outside them).
    - "text": bracketed numeric markers read "[ref. 16]", "[refs. 3, 5-7]"; author-year ones stay as written.
    - "markdown": the same with the brackets escaped ("\\[ref. 16\\]"), so no marker reads as a link of ours; the
      rest of the quote goes through `escape` when given (else unchanged, as before).
    - "html": `escape` (default: html.escape) on the text, and every source marker, numeric or author-year,
      verbatim in a grey, smaller, non-link `<span class="src-ref">`. With a Markdown escape (the chat's
      `md_escape`) this is Markdown with inline spans.
    """
    plain = escape or ((lambda t: html.escape(t, quote=True)) if markup == "html" else (lambda t: t))
    out, at = [], 0
    for m in SOURCE_REF.finditer(quote):
        out.append(plain(quote[at : m.start()]))
        ref, at = m.group(0), m.end()
        if markup == "html":
            out.append(f"{SRC_REF_SPAN}{plain(ref)}</span>")
        elif m.group("numeric"):
            inner = " ".join(ref[1:-1].split())
            word = "ref." if inner.isdigit() else "refs."
            out.append(f"\\[{word} {inner}\\]" if markup == "markdown" else f"[{word} {inner}]")
        else:
            out.append(plain(ref))
    out.append(plain(quote[at:]))
    body = "".join(out)
    return f"“{body}”" if quotes else body


def _displayed(answer: Answer) -> str:
    """The answer's text with each "quote [n]" in it shown through `display_quote` (the rest, and an LLM's own
    sentences, as they are)."""
    text, out, at = answer.text, [], 0
    for c in answer.citations:
        target = f"{c.quote} [{c.n}]"
        found = text.find(target, at)
        if found < 0:
            continue
        out += [text[at:found], f"{display_quote(c.quote)} [{c.n}]"]
        at = found + len(target)
    return "".join(out) + text[at:]


def answer_text(answer: Answer) -> str:
    lines = [_displayed(answer), ""]
    if answer.note:
        lines[1:1] = ["", f"Note: {answer.note}"]
    if answer.abstained:
        if answer.hits:
            lines.append("Closest passages:")
            for hit in answer.hits:
                lines.append(f"- {reference_line(hit.document)}\n  \"{hit.chunk.text[:300]}\"")
        return "\n".join(lines).rstrip() + "\n"
    lines.append("References")
    lines += reference_list(answer.citations)
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
        body.append(f"{display_quote(c.quote, 'markdown')} {marker}" + (f" *({c.stance})*" if c.stance else ""))
    head = f"**{consensus_line(answer.consensus)}**\n\n" if answer.consensus is not None else ""
    note = f"\n\n*Note: {answer.note}*" if answer.note else ""
    return head + " ".join(body) + note + "\n\n**References**\n\n" + "\n".join(reference_list(answer.citations, True))


def hit_text(rank: int, hit: Hit) -> str:
    d = hit.document
    head = f"{rank}. {display_title(d)} ({d.year or 'n.d.'}) [{d.id}] score={hit.score:.4f}"
    loc = where(hit.chunk.section, hit.chunk.page)
    return f"{head}\n   {loc}\n   {hit.chunk.text}\n"


def generated_dict(result: Generated) -> dict[str, Any]:
    """`ask --json` with an LLM set: the answer's usual shape plus mode, note, dropped, contradicted and marked
    sentences (`contradicted` ones are among `dropped`, whatever `--llm-unsupported` says)."""
    return {**answer_dict(result.answer), "mode": result.mode, "note": result.note,
            "dropped": [r.sentence for r in result.dropped], "marked": [r.sentence for r in result.marked],
            "contradicted": [{"sentence": r.sentence, "reason": r.reason} for r in result.contradicted]}


def generated_text(result: Generated) -> str:
    lines = [f"Note: {result.note}", ""] if result.note else []
    lines.append(answer_text(result.answer).rstrip("\n"))
    contradicted = [r for r in result.dropped if r.contradicted]
    unsupported = [r for r in result.dropped if not r.contradicted]
    if contradicted:
        lines += ["", "Dropped as contradicted by the passages they cite:"]
        lines += [f"- {r.sentence} ({r.reason})" for r in contradicted]
    if unsupported:
        lines += ["", "Dropped (not supported by the passages they cite):"]
        lines += [f"- {r.sentence} ({r.reason})" for r in unsupported]
    return "\n".join(lines) + "\n"


def consensus_line(consensus: dict[str, int]) -> str:
    """"Consensus: 3 papers support, 1 contradicts." (and how many neither, when any)."""
    def papers(n: int) -> str:
        return f"{n} paper{'' if n == 1 else 's'}"

    s, c, n = consensus.get("supports", 0), consensus.get("contradicts", 0), consensus.get("neither", 0)
    parts = [f"{papers(s)} support{'s' if s == 1 else ''}", f"{papers(c)} contradict{'s' if c == 1 else ''}"]
    if n:
        parts.append(f"{papers(n)} neither")
    return "Consensus: " + ", ".join(parts) + "."


VERDICT_TEXT = {"supported": "", "contradicted": "[contradicted by the index: {against}]",
                "mixed": "[the index both supports and contradicts this: {against}]",
                "unsupported": "[no supporting passage in the index]"}


def cite_dict(sentences: list[SentenceSupport]) -> dict[str, Any]:
    """`cite --json`: each sentence of the user's text, its verdict, and the quotes that support (`citations`) and
    contradict (`contradicting`) it."""
    return {"sentences": [{"sentence": s.sentence, "start": s.start, "end": s.end, "verdict": s.verdict,
                           "supported": s.supported, "citations": [citation_dict(c) for c in s.citations],
                           "contradicting": [citation_dict(c) for c in s.contradicting]} for s in sentences]}


def cite_text(sentences: list[SentenceSupport]) -> str:
    """Each sentence with its supporting [n] and its verdict when not plainly supported (contradicting quotes are
    numbered too, after "contradicted by"), then references with the quotes."""
    lines = []
    for s in sentences:
        marks = "".join(f"[{c.n}]" for c in s.citations)
        against = "".join(f"[{c.n}]" for c in s.contradicting)
        verdict = VERDICT_TEXT[s.verdict].format(against=against)
        lines.append(" ".join(p for p in (s.sentence, marks, verdict) if p))
    citations = {c.n: c for s in sentences for c in s.citations + s.contradicting}
    if citations:
        lines += ["", "References"]
        for numbers, doc in grouped_references(tuple(citations[n] for n in sorted(citations))):
            lines.append(f"[{', '.join(map(str, numbers))}] {reference_line(doc)}")
            for n in numbers:
                c = citations[n]
                loc = where(c.section, c.page)
                stance = " (contradicts)" if c.stance == "contradicts" else ""
                lines.append(f"    [{n}] {display_quote(c.quote)}" + (f" ({loc})" if loc else "") + stance)
    return "\n".join(lines) + "\n"
