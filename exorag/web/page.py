"""HTML and Markdown for the browser chat: chat replies, the sources panel, the draft check and the corpus overview.

Every `[n]` marker is an in-page link `#exorag-cite-T-n` (T: the answer's turn in the conversation, so markers of
older answers still find their own sources); the page's small script (`app.JUMP_JS`) opens, scrolls to and
highlights the source card with that id, whose cited sentence is already in `<mark>` within its passage.
Quotes and passages go through `render.display_quote`: a quote in the reply is in typographic quotes before its
`[n]`, and the source paper's own reference markers ("[16]", "(Chen et al., 2018)") in replies and cards are grey,
smaller `<span class="src-ref">` text, never links, so only our `[n]` markers are clickable.
All text from the index is HTML-escaped (and `$` too, so nothing is read as LaTeX); links go to PubMed, DOI and
PMC only where those identifiers are known. Deliberately left out: anything interactive beyond the anchors
(no scripts here), and the layout of the page itself (app.py).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from exorag.output.render import authors_short, consensus_line, display_quote, md_escape, reference_line, reference_list, \
    where
from exorag.types import Answer, Citation, Document, Filters, Hit

SOURCES_PLACEHOLDER = "<p class='exorag-muted'><em>The sources of each answer appear here.</em></p>"
CONTEXT_CHARS = 300  # characters of the document shown either side of a draft's supporting quote


def esc(text: str) -> str:
    return html.escape(text, quote=True).replace("$", "&#36;")


def cite_anchor(turn: int, n: int) -> str:
    return f"exorag-cite-{turn}-{n}"


def draft_anchor(n: int) -> str:
    return f"exorag-draft-{n}"


def links(doc: Document) -> str:
    """Links to PubMed, DOI and PMC where known; else the file name of a local document."""
    labels = {"pmid": f"PubMed {doc.pmid}", "doi": f"doi:{doc.doi}", "pmcid": doc.pmcid}
    out = [f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer">{esc(labels[kind])}</a>'
           for kind, url in doc.links]
    if not out and doc.origin:
        out.append(f"<code>{esc(Path(doc.origin).name)}</code>")
    return " · ".join(out)


def byline(doc: Document, section: str, page: int | None) -> str:
    """Authors · year · journal · section, page (escaped)."""
    parts = [authors_short(doc.authors), str(doc.year or ""), doc.journal, where(section, page)]
    return " · ".join(esc(p) for p in parts if p)


def highlighted_passage(citation: Citation, hits: tuple[Hit, ...]) -> str:
    """HTML of the chunk that holds the quote, with the quote in <mark>; the quote in its context if none does."""
    for hit in hits:
        c = hit.chunk
        if hit.document.id == citation.document.id and c.char_start <= citation.char_start \
                and citation.char_end <= c.char_end:
            s, e = citation.char_start - c.char_start, citation.char_end - c.char_start
            return f"{_passage(c.text[:s])}<mark>{_passage(c.text[s:e])}</mark>{_passage(c.text[e:])}"
    return highlighted_context(citation.document, citation.char_start, citation.char_end)


def highlighted_context(doc: Document, start: int, end: int, chars: int = CONTEXT_CHARS) -> str:
    """The document text around [start:end] (cut at word boundaries, with ellipses) with that span in <mark>."""
    text = doc.text
    lo, hi = max(0, start - chars), min(len(text), end + chars)
    if lo > 0:
        space = text.find(" ", lo, start)
        lo = space + 1 if space != -1 else lo
    if hi < len(text):
        space = text.rfind(" ", end, hi)
        hi = space if space != -1 else hi
    before = ("… " if lo > 0 else "") + _passage(text[lo:start])
    after = _passage(text[end:hi]) + (" …" if hi < len(text) else "")
    return f"{before}<mark>{_passage(text[start:end])}</mark>{after}"


def _passage(text: str) -> str:
    """Document text for a source card: escaped, the source's own reference markers in grey spans."""
    return display_quote(text, "html", escape=esc, quotes=False)


def _card(anchor: str, label: str, doc: Document, section: str, page: int | None, passage: str,
          kind: str = "") -> str:
    """A source card; `kind` adds a class (e.g. exorag-source-contradicts)."""
    title = esc(doc.title or doc.id)
    classes = f"exorag-source {kind}" if kind else "exorag-source"
    return (f"<div class='{classes}' id='{anchor}'><p><strong>{label}{title}</strong><br>"
            f"<small>{byline(doc, section, page)}</small><br><span class='exorag-links'>{links(doc)}</span></p>"
            f"<blockquote>{passage}</blockquote></div>")


def answer_sources(answer: Answer, turn: int) -> str:
    """The cards of one answer: each citation's reference, location, links and highlighted passage, or, when the
    answer abstains, the closest passages (not cited)."""
    if answer.abstained:
        head = ("<p><strong>No answer in the indexed literature.</strong> Closest passages (not cited):</p>"
                if answer.hits else "<p><strong>No passage passed the search and filters.</strong></p>")
        cards = [_card(f"exorag-closest-{turn}-{i}", "", h.document, h.chunk.section, h.chunk.page,
                       _passage(h.chunk.text))
                 for i, h in enumerate(answer.hits, start=1)]
        return head + "\n".join(cards)
    return "\n".join(_card(cite_anchor(turn, c.n), f"[{c.n}] ", c.document, c.section, c.page,
                           highlighted_passage(c, answer.hits)) for c in answer.citations)


def sources_panel(turns: list[dict[str, Any]]) -> str:
    """Every answered turn's sources, newest first and open; older ones folded (a marker click unfolds them)."""
    if not turns:
        return SOURCES_PLACEHOLDER
    blocks = []
    for i, t in enumerate(reversed(turns)):
        opened = " open" if i == 0 else ""
        blocks.append(f"<details class='exorag-turn' id='exorag-turn-{t['turn']}'{opened}>"
                      f"<summary>Answer {t['turn']}: {esc(t['question'])}</summary>{t['sources']}</details>")
    return "\n".join(blocks)


def filters_note(filters: Filters) -> str:
    """A short Markdown line naming the active filters ('' when none)."""
    if filters.empty:
        return ""
    parts = []
    if filters.year_from is not None or filters.year_to is not None:
        parts.append(f"years {filters.year_from or '…'}–{filters.year_to or '…'}")
    for label, values in (("source", filters.sources), ("journal", filters.journals),
                          ("publication type", filters.pub_types),
                          ("tags", tuple(f"{k}={v}" for k, v in filters.tags))):
        if values:
            parts.append(f"{label}: {', '.join(values)}")
    return md_escape("Filters: " + "; ".join(parts))


def reply_markdown(answer: Answer, turn: int, filters: Filters) -> str:
    """The chat reply: quotes each followed by an in-page `[n]` link, then the references (external links)."""
    note = filters_note(filters)
    tail = f"\n\n*{note}*" if note else ""
    if answer.abstained:
        closest = [f"- {reference_line(h.document, markdown=True)}" for h in answer.hits]
        if not answer.hits:
            return f"*{md_escape(answer.text)}* No passage passed the search and filters." + tail
        why = f" {md_escape(answer.note)}" if answer.note else ""
        return f"*{md_escape(answer.text)}*{why}\n\n" + "\n".join(closest) + tail
    body = " ".join(f"{display_quote(c.quote, 'html', escape=md_escape)} [[{c.n}]](#{cite_anchor(turn, c.n)})"
                    + (f" *({c.stance})*" if c.stance else "") for c in answer.citations)
    if answer.consensus is not None:
        body = f"**{md_escape(consensus_line(answer.consensus))}**\n\n" + body
    if answer.note:
        body += f"\n\n*{md_escape(answer.note)}*"
    return body + "\n\n**References**\n\n" + "\n".join(reference_list(answer.citations, markdown=True)) + tail


_CHECKED_MARKERS = re.compile(r"((?:\\\[\d+\\\])+)$")  # the escaped "[1][2]" verify() puts after a sentence


def generated_markdown(result: Any, turn: int, filters: Filters, model: str) -> str:
    """A `exorag.ask.generate.Generated` as the chat reply: the model's checked sentences with in-page `[n]` links and the
    references (or, when it fell back, the extractive reply with the note), then what was dropped."""
    if result.mode != "llm":
        note = f"*{md_escape(result.note)}*\n\n" if result.note else ""
        return note + reply_markdown(result.answer, turn, filters)
    answer = result.answer
    sentences = [s for s in re.split(r"(?<=\])\s+", answer.text) if s]
    parts = []
    for sentence in sentences:
        escaped = md_escape(sentence)
        m = _CHECKED_MARKERS.search(escaped)
        if m:
            numbers = re.findall(r"\d+", m.group(1))
            links = "".join(f"[[{n}]](#{cite_anchor(turn, int(n))})" for n in numbers)
            escaped = escaped[: m.start()].rstrip() + " " + links
        parts.append(escaped)
    refs = reference_list(answer.citations, markdown=True)
    lines = [" ".join(parts), "", "**References** (each `[n]` opens the sentence that supports it)", "", *refs, "",
             f"*Written by {md_escape(model)} from the passages; every sentence was checked against the passage it "
             f"cites.*"]
    contradicted = [r for r in result.dropped if r.contradicted]
    if contradicted:
        lines.append(f"*{len(contradicted)} sentence(s) dropped as contradicted by the passages they cite:*")
        lines += [f"- ~~{md_escape(r.sentence)}~~ ({md_escape(r.reason)})" for r in contradicted]
    if len(result.dropped) > len(contradicted):
        lines.append(f"*{len(result.dropped) - len(contradicted)} sentence(s) dropped as not supported by the "
                     "passages they cite.*")
    note = filters_note(filters)
    if note:
        lines.append(f"*{note}*")
    return "\n".join(lines)


def drafting_markdown(text: str, model: str) -> str:
    """The model's reply while it streams: shown as an unchecked draft, replaced by the checked answer."""
    # md_escape, not just HTML escaping: the model's text must not become links or images (a remote image would be
    # a request to another host), nor headings or lists; line breaks fold into spaces.
    return (f"*{md_escape(model)} is writing; not yet checked against the passages…*\n\n"
            f"<span class='exorag-muted'>{md_escape(' '.join(text.split()))}</span>")


def draft_html(sentences: list[Any]) -> str:
    """`cite_paragraph`'s result: the draft with each sentence's verdict (supporting `[n]`; a red badge and the
    contradicting `[n]` for a contradicted sentence; an amber one for mixed evidence; a grey one for no support),
    a tally, then each quoted source with its sentence highlighted in context, contradicting ones labelled."""
    if not sentences:
        return "<p class='exorag-muted'><em>Paste a paragraph of your draft and press Check.</em></p>"

    def marks(citations: tuple[Any, ...]) -> str:
        return "".join(f"<a href='#{draft_anchor(c.n)}' class='exorag-marker'>[{c.n}]</a>" for c in citations)

    out = ["<div class='exorag-draft'><p>"]
    for s in sentences:
        verdict = s.verdict
        if verdict == "supported":
            out.append(f"<span class='exorag-supported'>{esc(s.sentence)}</span> {marks(s.citations)} ")
        elif verdict == "contradicted":
            out.append(f"<span class='exorag-contradicted'>{esc(s.sentence)}</span> "
                       f"<span class='exorag-badge exorag-badge-contradicted'>contradicted by</span> "
                       f"{marks(s.contradicting)} ")
        elif verdict == "mixed":
            out.append(f"<span class='exorag-mixed'>{esc(s.sentence)}</span> {marks(s.citations)} "
                       f"<span class='exorag-badge exorag-badge-mixed'>but contradicted by</span> "
                       f"{marks(s.contradicting)} ")
        else:
            out.append(f"<span class='exorag-unsupported'>{esc(s.sentence)}</span> "
                       "<span class='exorag-badge'>no supporting passage in the index</span> ")
    out.append("</p></div>")
    tally = {v: sum(1 for s in sentences if s.verdict == v) for v in ("supported", "contradicted", "mixed")}
    parts = [f"<strong>{tally['supported']} of {len(sentences)} sentences</strong> have a supporting passage"]
    if tally["contradicted"]:
        parts.append(f"<strong class='exorag-contradicted-count'>{tally['contradicted']} contradicted</strong>")
    if tally["mixed"]:
        parts.append(f"{tally['mixed']} with evidence both ways")
    out.append("<p>" + "; ".join(parts) + ".</p>")
    seen: set[int] = set()
    for s in sentences:
        for c in s.citations + s.contradicting:
            if c.n in seen:
                continue
            seen.add(c.n)
            against = c.stance == "contradicts"
            out.append(_card(draft_anchor(c.n), f"[{c.n}] " + ("contradicts: " if against else ""), c.document,
                             c.section, c.page, highlighted_context(c.document, c.char_start, c.char_end),
                             kind="exorag-source-contradicts" if against else ""))
    return "\n".join(out)


def _bars(rows: list[tuple[str, int]], caption: str) -> str:
    top = max((n for _, n in rows), default=1) or 1
    body = "".join(f"<tr><td>{esc(label)}</td><td class='exorag-num'>{n:,}</td><td class='exorag-barcell'>"
                   f"<div class='exorag-bar' style='width:{100 * n / top:.1f}%'></div></td></tr>" for label, n in rows)
    return f"<table class='exorag-table'><caption>{esc(caption)}</caption>{body}</table>"


def corpus_html(counts: dict[str, Any], years: list[tuple[int | None, int]], sources: list[tuple[str, int]],
                recent: list[dict[str, Any]], folder: Path) -> str:
    """The corpus tab: totals, documents by year and by source, and the most recent additions."""
    head = (f"<p><strong>{counts['documents']:,} documents</strong>, {counts['chunks']:,} passages "
            f"in <code>{esc(str(folder))}</code>.</p>")
    if not counts["documents"]:
        return head + ("<p>The index is empty: add papers in the <em>Add papers</em> tab or with "
                       "<code>exorag ingest</code>.</p>")
    by_year = _bars([(str(y) if y is not None else "no year", n) for y, n in years], "Documents by year")
    by_source = _bars([(s or "(none)", n) for s, n in sources], "Documents by source")
    rows = "".join(f"<tr><td>{esc(r['added_at'] or '')}</td><td>{esc(r['title'] or r['id'])}</td>"
                   f"<td>{esc(str(r['year'] or ''))}</td><td>{esc(r['source'])}</td></tr>" for r in recent)
    added = (f"<table class='exorag-table exorag-recent'><caption>Recent additions</caption>"
             f"<tr><th>added (UTC)</th><th>title</th><th>year</th><th>source</th></tr>{rows}</table>")
    return head + f"<div class='exorag-corpus'>{by_year}{by_source}</div>" + added


def upload_html(rows: list[tuple[str, bool, str]], status: str = "") -> str:
    """The per-file result of an upload: file name, ok or not, and what happened (errors named)."""
    if not rows and not status:
        return ""
    body = "".join(f"<tr class='{'exorag-ok' if ok else 'exorag-failed'}'><td>{esc(name)}</td>"
                   f"<td>{'✓' if ok else '✗'}</td><td>{esc(message)}</td></tr>" for name, ok, message in rows)
    head = f"<p>{esc(status)}</p>" if status else ""
    return head + (f"<table class='exorag-table exorag-upload'><tr><th>file</th><th></th><th>result</th></tr>"
                   f"{body}</table>" if rows else "")
