"""HTML and Markdown for the browser chat: chat replies, the sources panel, the draft check, the active-filter line,
the corpus make-up and its document list.

Every `[n]` marker is an in-page link `#exorag-cite-T-n` (T: the answer's turn in the conversation, so markers of
older answers still find their own sources); the page's small script (`app.JUMP_JS`) opens, scrolls to and
highlights the source card with that id, whose cited sentence is already in `<mark>` within its passage.
Quotes and passages go through `render.display_quote`: a quote in the reply is in typographic quotes before its
`[n]`, and the source paper's own reference markers ("[16]", "(Chen et al., 2018)") in replies and cards are grey,
smaller `<span class="src-ref">` text, never links, so only our `[n]` markers are clickable.
All text from the index is HTML-escaped (and `$` too, so nothing is read as LaTeX); links go to PubMed, DOI and
PMC only where those identifiers are known (a local PDF / text file without them shows its file name, a record of
a JSONL / RIS / BibTeX file its id). Deliberately left out: anything interactive beyond the anchors
(no scripts here), and the layout of the page itself (app.py).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from exorag.output.render import authors_short, consensus_line, display_quote, md_escape, reference_line, reference_list, \
    where
from exorag.types import Answer, Citation, Document, Filters, Hit, identifier_links

SOURCES_PLACEHOLDER = "<p class='exorag-muted'><em>The sources of each answer appear here.</em></p>"
CONTEXT_CHARS = 300  # characters of the document shown either side of a draft's supporting quote


def esc(text: str) -> str:
    return html.escape(text, quote=True).replace("$", "&#36;")


def cite_anchor(turn: int, n: int) -> str:
    return f"exorag-cite-{turn}-{n}"


def draft_anchor(n: int) -> str:
    return f"exorag-draft-{n}"


LOCAL_KINDS = (".pdf", ".txt", ".md", ".markdown")  # a file that is itself one document (not a file of records)


def local_file(doc: Document) -> str:
    """The file name of a document that is a local file of its own (a PDF or text file); '' for a record read from
    a JSONL, RIS or BibTeX file, whose file name says nothing about the paper."""
    if not doc.origin:
        return ""
    name = Path(doc.origin).name
    return name if name.lower().endswith(LOCAL_KINDS) else ""


def identifier_html(pmid: str = "", doi: str = "", pmcid: str = "") -> list[str]:
    """"PMID n", "DOI x" and the PMCID as links to PubMed, doi.org and PMC (escaped), for those given."""
    labels = {"pmid": f"PMID {pmid}", "doi": f"DOI {doi}", "pmcid": pmcid}
    return [f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer">{esc(labels[kind])}</a>'
            for kind, url in identifier_links(pmid, doi, pmcid)]


def links(doc: Document) -> str:
    """PMID, DOI and PMCID as links to PubMed, doi.org and PMC where known; else the file name of a local PDF or
    text document; else the record's id (never the name of the JSONL / RIS / BibTeX file it came from)."""
    out = identifier_html(doc.pmid, doc.doi, doc.pmcid)
    if not out:
        name = local_file(doc)
        out.append(f"<code>{esc(name)}</code>" if name else f"<span class='exorag-muted'>record {esc(doc.id)}</span>")
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


def filter_parts(filters: Filters) -> list[str]:
    """The active filters in words (unescaped), e.g. ["years 2015–…", "tags: design=review"]."""
    parts = []
    if filters.year_from is not None or filters.year_to is not None:
        parts.append(f"years {filters.year_from or '…'}–{filters.year_to or '…'}")
    by_key: dict[str, list[str]] = {}
    for key, value in filters.tags:
        by_key.setdefault(key, []).append(value)
    for label, values in (("source", filters.sources), ("journal", filters.journals),
                          ("publication type", filters.pub_types),
                          ("tags", tuple(f"{k}={' or '.join(vs)}" for k, vs in by_key.items()))):
        if values:
            parts.append(f"{label}: {', '.join(values)}")
    return parts


def filters_note(filters: Filters) -> str:
    """A short Markdown line naming the active filters ('' when none)."""
    if filters.empty:
        return ""
    return md_escape("Filters: " + "; ".join(filter_parts(filters)))


def active_filters_html(filters: Filters | None, matching: int, total: int, problem: str = "") -> str:
    """The one-line summary above the tabs: the active filters and how many documents pass them, or what is wrong
    with a filter value."""
    if problem:
        return f"<p class='exorag-active-filters exorag-filter-problem'>Filters: {esc(problem)}</p>"
    if filters is None or filters.empty:
        return (f"<p class='exorag-active-filters'><strong>No filters</strong>: searching all {total:,} "
                f"documents.</p>")
    return (f"<p class='exorag-active-filters'><strong>Filters</strong>: {esc('; '.join(filter_parts(filters)))} "
            f"— {matching:,} of {total:,} documents.</p>")


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


def draft_html(sentences: list[Any], filters: Filters | None = None) -> str:
    """`cite_paragraph`'s result: the draft with each sentence's verdict (supporting `[n]`; a red badge and the
    contradicting `[n]` for a contradicted sentence; an amber one for mixed evidence; a grey one for no support),
    a tally (saying which filters the check was limited to), then each quoted source with its sentence highlighted
    in context, contradicting ones labelled."""
    if not sentences:
        return "<p class='exorag-muted'><em>Paste a paragraph of your draft and press Check.</em></p>"
    filtered = filters is not None and not filters.empty
    where_checked = "within the filters" if filtered else "in the index"

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
                       f"<span class='exorag-badge'>no supporting passage {where_checked}</span> ")
    out.append("</p></div>")
    tally = {v: sum(1 for s in sentences if s.verdict == v) for v in ("supported", "contradicted", "mixed")}
    parts = [f"<strong>{tally['supported']} of {len(sentences)} sentences</strong> have a supporting passage"]
    if tally["contradicted"]:
        parts.append(f"<strong class='exorag-contradicted-count'>{tally['contradicted']} contradicted</strong>")
    if tally["mixed"]:
        parts.append(f"{tally['mixed']} with evidence both ways")
    out.append("<p>" + "; ".join(parts) + ".</p>")
    if filtered:
        out.append(f"<p class='exorag-draft-filtered'><em>Checked only against documents that pass the filters "
                   f"({esc('; '.join(filter_parts(filters)))}).</em></p>")  # type: ignore[arg-type]
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


YEAR_COLUMNS = 40  # at most this many columns in the years chart; a longer span is shown in bins of several years


def year_bins(years: list[tuple[int | None, int]], columns: int = YEAR_COLUMNS) -> list[tuple[str, int]]:
    """(label, documents) from the first to the last dated year, empty years included (so the axis is honest),
    in bins of several years when the span is longer than `columns`; undated documents are not in it."""
    dated = {y: n for y, n in years if y is not None}
    if not dated:
        return []
    lo, hi = min(dated), max(dated)
    width = -(-(hi - lo + 1) // columns)  # ceiling
    out = []
    for start in range(lo, hi + 1, width):
        end = min(start + width - 1, hi)
        label = str(start) if start == end else f"{start}–{str(end)[-2:]}"
        out.append((label, sum(dated.get(y, 0) for y in range(start, end + 1))))
    return out


def years_chart(years: list[tuple[int | None, int]]) -> str:
    """Documents by year as a compact column chart (counts on the columns, every few years labelled), with the
    undated documents counted apart, in words, so they never dwarf the years."""
    bins = year_bins(years)
    undated = sum(n for y, n in years if y is None)
    apart = (f"<p class='exorag-undated'>{undated:,} document{'s' if undated != 1 else ''} without a year "
             "(not in the chart).</p>" if undated else "")
    if not bins:
        return f"<div class='exorag-years-box'><p class='exorag-caption'>Documents by year</p>{apart}</div>"
    top = max(n for _, n in bins) or 1
    every = max(1, -(-len(bins) // 12))  # about a dozen labels at most
    cols = []
    for i, (label, n) in enumerate(bins):
        shown = esc(label) if i % every == 0 or i == len(bins) - 1 else ""
        cols.append(f"<div class='exorag-ycol' title='{esc(label)}: {n:,}'><span class='exorag-yn'>{n or ''}</span>"
                    f"<div class='exorag-ybar' style='height:{70 * n / top:.1f}px'></div>"
                    f"<span class='exorag-yl'>{shown}</span></div>")
    span = f"{bins[0][0]}–{bins[-1][0]}" if len(bins) > 1 else bins[0][0]
    return (f"<div class='exorag-years-box'><p class='exorag-caption'>Documents by year ({esc(span)})</p>"
            f"<div class='exorag-years'>{''.join(cols)}</div>{apart}</div>")


def corpus_html(overview: dict[str, Any], folder: Path) -> str:
    """The corpus tab's make-up (handlers.corpus_overview): documents and passages, the share tagged as EV papers,
    documents by source and by year."""
    counts = overview["counts"]
    docs = counts["documents"]
    head = (f"<p><strong>{docs:,} documents</strong>, {counts['chunks']:,} passages "
            f"in <code>{esc(str(folder))}</code>.</p>")
    if not docs:
        return head + ("<p>The index is empty: add papers in the <em>Add papers</em> tab or with "
                       "<code>exorag ingest</code>.</p>")
    ev = overview.get("ev_documents", 0)
    share = (f"<p class='exorag-ev-share'><strong>{ev:,} of {docs:,} ({100 * ev / docs:.0f}%)</strong> are "
             "extracellular-vesicle papers (tagged <code>topic=extracellular_vesicle</code>).</p>")
    by_source = _bars([(s or "(none)", n) for s, n in overview["sources"]], "Documents by source")
    return head + share + by_source + years_chart(overview["years"])


def document_ids(row: dict[str, Any]) -> str:
    """PMID, DOI and PMCID of a document-list row, as links (escaped)."""
    return " · ".join(identifier_html(row.get("pmid", ""), row.get("doi", ""), row.get("pmcid", "")))


def documents_html(total: int, rows: list[dict[str, Any]], query: str = "") -> str:
    """The corpus tab's document list: id, year, title, journal, source and identifiers of the first rows matching
    the search, newest first, with how many match."""
    what = f" matching “{esc(query.strip())}”" if (query or "").strip() else ""
    if not rows:
        return f"<p class='exorag-doc-count'>No document{what}.</p>"
    noun = "document" if total == 1 else "documents"
    shown = (f"{total:,} {noun}{what}, newest first" if len(rows) == total else
             f"The newest {len(rows):,} of {total:,} documents{what}; type more of a title, id, PMID or DOI to "
             "narrow the list")
    body = "".join(f"<tr><td><code>{esc(r['id'])}</code></td><td>{esc(str(r['year'] or ''))}</td>"
                   f"<td>{esc(r['title'] or '')}<br><small>{document_ids(r)}</small></td><td>{esc(r['journal'])}</td>"
                   f"<td>{esc(r['source'])}</td></tr>" for r in rows)
    return (f"<p class='exorag-doc-count'>{shown}.</p><table class='exorag-table exorag-doclist'>"
            f"<tr><th>id</th><th>year</th><th>title</th><th>journal</th><th>source</th></tr>{body}</table>")


def removal_choices(rows: list[dict[str, Any]], chars: int = 70) -> list[tuple[str, str]]:
    """(label "id · title", id) for the documents listed, to pick the ones to remove."""
    out = []
    for r in rows:
        title = r["title"] or ""
        title = title if len(title) <= chars else title[: chars - 1] + "…"
        out.append((f"{r['id']} · {title}" if title else r["id"], r["id"]))
    return out


def upload_html(rows: list[tuple[str, bool, str]], status: str = "") -> str:
    """The per-file result of an upload: file name, ok or not, and what happened (errors named)."""
    if not rows and not status:
        return ""
    body = "".join(f"<tr class='{'exorag-ok' if ok else 'exorag-failed'}'><td>{esc(name)}</td>"
                   f"<td>{'✓' if ok else '✗'}</td><td>{esc(message)}</td></tr>" for name, ok, message in rows)
    head = f"<p>{esc(status)}</p>" if status else ""
    return head + (f"<table class='exorag-table exorag-upload'><tr><th>file</th><th></th><th>result</th></tr>"
                   f"{body}</table>" if rows else "")
