"""How a quote is shown next to our `[n]`: the source paper's own reference markers set off in text, Markdown and
the page (render.display_quote), while the JSON keeps the quote verbatim."""

from __future__ import annotations

import re

import pytest

from exorag.output import render
from exorag.web.page import answer_sources, cite_anchor, esc, md_escape, reply_markdown
from exorag.output.export import export
from exorag.output.render import SRC_REF_SPAN, display_quote
from exorag.types import Answer, Chunk, Citation, Document, Filters, Hit, Section

TEXT = ("Milk EVs protect the infant gut [16]. CD63 and CD81 were enriched [3, 5-7] as before (Chen et al., 2018). "
        "Plasma EVs carried PD-L1 $5 *and* more.")
DOC = Document(id="pmid:1", text=TEXT, sections=(Section("Abstract", 0, len(TEXT)),), title="Milk EVs",
               authors=("Doe J",), year=2024, journal="J EV", pmid="1")
S1, E1 = 0, TEXT.index(" CD63")
S2, E2 = E1 + 1, TEXT.index(" Plasma")
CHUNK = Chunk(doc_id=DOC.id, ordinal=0, text=TEXT, section="Abstract", page=None, char_start=0, char_end=len(TEXT),
              id=1)


def citation(n: int, s: int, e: int) -> Citation:
    return Citation(n=n, document=DOC, quote=TEXT[s:e], section="Abstract", page=None, char_start=s, char_end=e,
                    score=0.9)


CITATIONS = (citation(1, S1, E1), citation(2, S2, E2))
ANSWER = Answer(question="What do milk EVs do?", text=" ".join(f"{c.quote} [{c.n}]" for c in CITATIONS),
                abstained=False, citations=CITATIONS, hits=(Hit(chunk=CHUNK, document=DOC, score=1.0),), support=0.8)


@pytest.mark.parametrize("quote, text", [
    ("in infants [16].", "“in infants [ref. 16].”"),
    ("as shown [3, 5-7] and [12–14].", "“as shown [refs. 3, 5-7] and [refs. 12–14].”"),
    ("as shown [ 4 ].", "“as shown [ref. 4].”"),
    ("(Chen et al., 2018) found it.", "“(Chen et al., 2018) found it.”"),
    # not reference markers: labels, concentrations, dates, counts
    ("[3H]thymidine, [Ca2+]i, (March 2020), (n = 16), [unpublished]", None),
])
def test_display_quote_text(quote: str, text: str | None) -> None:
    assert display_quote(quote) == (text or f"“{quote}”")
    assert display_quote(quote, quotes=False) == (text or quote).strip("“”")


def test_display_quote_markdown_and_html() -> None:
    quote = TEXT[S2:E2]
    assert display_quote(quote, "markdown") == ("“CD63 and CD81 were enriched \\[refs. 3, 5-7\\] as before "
                                                "(Chen et al., 2018).”")
    page = display_quote(quote, "html")
    assert page == (f"“CD63 and CD81 were enriched {SRC_REF_SPAN}[3, 5-7]</span> as before "
                    f"{SRC_REF_SPAN}(Chen et al., 2018)</span>.”")
    assert 'class="src-ref"' in SRC_REF_SPAN and "color:" in SRC_REF_SPAN and "<a" not in page
    assert display_quote("a < b [2]", "html") == f"“a &lt; b {SRC_REF_SPAN}[2]</span>”"
    # the chat's Markdown: everything escaped but the spans
    assert display_quote("*x* [2]", "html", escape=md_escape) == f"“\\*x\\* {SRC_REF_SPAN}\\[2\\]</span>”"


def test_answer_text_markdown_and_export() -> None:
    out = render.answer_text(ANSWER)
    body = out.split("\n")[0]
    assert body == ("“Milk EVs protect the infant gut [ref. 16].” [1] “CD63 and CD81 were enriched [refs. 3, 5-7] as "
                    "before (Chen et al., 2018).” [2]")
    assert "[1, 2] Doe J (2024). Milk EVs. J EV. PMID 1" in out
    md = render.answer_markdown(ANSWER)
    url = DOC.url
    assert md.startswith(f"“Milk EVs protect the infant gut \\[ref. 16\\].” [[1]]({url}) “CD63 and CD81 were "
                         f"enriched \\[refs. 3, 5-7\\] as before (Chen et al., 2018).” [[2]]({url})")
    assert re.findall(r"(?<!\\)\[\[?(\d+)\]", md.split("**References**")[0]) == ["1", "2"]  # only ours unescaped
    assert export(ANSWER, "markdown") == f"**Q:** {ANSWER.question}\n\n{md}\n"


def test_json_keeps_the_quote_verbatim() -> None:
    data = render.answer_dict(ANSWER)
    assert data["answer"] == ANSWER.text
    for cited, c in zip(data["citations"], CITATIONS):
        assert cited["quote"] == TEXT[c.char_start:c.char_end] == c.quote
    assert data["citations"][0]["quote"] == "Milk EVs protect the infant gut [16]."


def test_page_reply_and_cards_grey_out_the_source_markers() -> None:
    reply = reply_markdown(ANSWER, 2, Filters())
    head = reply.split("**References**")[0]
    assert head == (f"“Milk EVs protect the infant gut {SRC_REF_SPAN}\\[16\\]</span>.” [[1]](#{cite_anchor(2, 1)}) "
                    f"“CD63 and CD81 were enriched {SRC_REF_SPAN}\\[3, 5-7\\]</span> as before "
                    f"{SRC_REF_SPAN}(Chen et al., 2018)</span>.” [[2]](#{cite_anchor(2, 2)})\n\n")
    assert re.findall(r"\[\[(\d+)\]\]\(#", reply) == ["1", "2"]  # our markers are the only links
    cards = answer_sources(ANSWER, 2)
    assert f"<mark>Milk EVs protect the infant gut {SRC_REF_SPAN}[16]</span>.</mark>" in cards
    assert "PD-L1 &#36;5 *and* more." in cards  # the rest of the passage escaped as before
    assert cards.count('class="src-ref"') == 6  # [16], [3, 5-7] and (Chen ...) in each of the two cards
    assert esc("[16]") == "[16]"


def test_cite_text_and_llm_answers() -> None:
    from exorag.ask.cite import SentenceSupport

    support = SentenceSupport(sentence="Milk EVs protect the gut.", start=0, end=25, citations=(CITATIONS[0],))
    out = render.cite_text([support])
    assert "Milk EVs protect the gut. [1]" in out
    assert "    [1] “Milk EVs protect the infant gut [ref. 16].” (Abstract)" in out
    # text around the quotes (a note before, a remark after) stays; an LLM's own sentences are printed as they are
    framed = Answer(question="q", text=f"Note.\n\n{CITATIONS[0].quote} [1] (supports)", abstained=False,
                    citations=CITATIONS[:1])
    assert render.answer_text(framed).startswith(
        "Note.\n\n“Milk EVs protect the infant gut [ref. 16].” [1] (supports)\n")
    generated = Answer(question="q", text="Milk EVs protect the gut [1].", abstained=False, citations=CITATIONS[:1])
    assert render.answer_text(generated).startswith("Milk EVs protect the gut [1].\n")


def _stanced(c: Citation, stance: str) -> Citation:
    import dataclasses

    return dataclasses.replace(c, stance=stance)


def test_verdicts_in_cite_json_text_and_the_draft_page() -> None:
    from exorag.web.page import draft_html
    from exorag.ask.cite import SentenceSupport

    supported = SentenceSupport("Milk EVs protect the gut.", 0, 25, citations=(_stanced(CITATIONS[0], "supports"),))
    against = SentenceSupport("CD63 is absent from EVs.", 26, 50, citations=(),
                              contradicting=(_stanced(CITATIONS[1], "contradicts"),))
    both = SentenceSupport("EVs carry PD-L1.", 51, 67, citations=(_stanced(CITATIONS[0], "supports"),),
                           contradicting=(_stanced(CITATIONS[1], "contradicts"),))
    nothing = SentenceSupport("The moon is cheese.", 68, 87, citations=())
    sentences = [supported, against, both, nothing]
    assert [s.verdict for s in sentences] == ["supported", "contradicted", "mixed", "unsupported"]
    assert [s.supported for s in sentences] == [True, False, False, False]
    payload = render.cite_dict(sentences)["sentences"]
    assert [p["verdict"] for p in payload] == ["supported", "contradicted", "mixed", "unsupported"]
    assert payload[1]["citations"] == [] and payload[1]["contradicting"][0]["stance"] == "contradicts"
    assert payload[1]["contradicting"][0]["quote"] == TEXT[S2:E2]
    lines = render.cite_text(sentences).splitlines()
    assert lines[0] == "Milk EVs protect the gut. [1]"
    assert lines[1] == "CD63 is absent from EVs. [contradicted by the index: [2]]"
    assert lines[2] == "EVs carry PD-L1. [1] [the index both supports and contradicts this: [2]]"
    assert lines[3] == "The moon is cheese. [no supporting passage in the index]"
    assert any(line.startswith("    [2] “CD63") and line.endswith("(contradicts)") for line in lines)
    page = draft_html(sentences)
    assert "<span class='exorag-contradicted'>CD63 is absent from EVs.</span>" in page
    assert "exorag-badge-contradicted'>contradicted by</span> <a href='#exorag-draft-2'" in page
    assert "exorag-source exorag-source-contradicts' id='exorag-draft-2'" in page
    assert "[2] contradicts: " in page and "1 contradicted" in page and "1 with evidence both ways" in page


def test_consensus_and_stance_labels_for_yes_no_answers() -> None:
    cited = (_stanced(CITATIONS[0], "supports"), _stanced(CITATIONS[1], "contradicts"))
    consensus = {"supports": 1, "contradicts": 1, "neither": 0}
    answer = Answer(question="Do milk EVs protect the gut?", abstained=False, citations=cited, hits=ANSWER.hits,
                    text=render.consensus_line(consensus) + "\n\n" + " ".join(
                        f"{c.quote} [{c.n}] ({c.stance})" for c in cited), consensus=consensus, support=0.9)
    assert render.consensus_line(consensus) == "Consensus: 1 paper supports, 1 paper contradicts."
    assert render.consensus_line({"supports": 3, "contradicts": 0, "neither": 2}) == \
        "Consensus: 3 papers support, 0 papers contradict, 2 papers neither."
    payload = render.answer_dict(answer)
    assert payload["consensus"] == consensus and [c["stance"] for c in payload["citations"]] == [
        "supports", "contradicts"]
    text = render.answer_text(answer)
    assert text.startswith("Consensus: 1 paper supports, 1 paper contradicts.\n\n“Milk EVs")
    assert "[1] (supports)" in text and "[2] (contradicts)" in text
    markdown = render.answer_markdown(answer)
    assert markdown.startswith("**Consensus: 1 paper supports") and "*(contradicts)*" in markdown
    assert "Consensus: 1 paper supports" in reply_markdown(answer, 1, Filters())
    assert "consensus" not in render.answer_dict(ANSWER)  # not a yes/no question: no consensus key


def test_md_escape_leaves_no_bare_url_or_address_to_autolink() -> None:
    """GFM links a bare "http://...", "www...." or "name@host" without brackets: document text must not become a
    link (the chat's Markdown), so the ":", "." or "@" that starts one is escaped; the text reads the same."""
    text = "See http://e/x.png, HTTPS://a.org/b, ftp://f, www.example.org and write to ev@lab.org ![x](http://e/y)"
    escaped = md_escape(text)
    assert "http\\://e/x.png" in escaped and "HTTPS\\://a.org" in escaped and "ftp\\://f" in escaped
    assert "www\\.example.org" in escaped and "ev\\@lab.org" in escaped and "\\!\\[x\\](http\\://e/y)" in escaped
    assert not re.search(r"(?<!\\)://|(?<![\\\w])www\.|(?<!\\)@", escaped)
    assert re.sub(r"\\(.)", r"\1", escaped) == text  # nothing but escapes added
    assert md_escape("doi:10.1/x · a @ b · 5 $") == "doi:10.1/x · a @ b · 5 \\$"  # no needless escapes
    doc = Document(id="u:1", text=TEXT, sections=DOC.sections, title="Data at http://e/x.png", year=2024,
                   doi="10.1/u")
    line = render.reference_line(doc, markdown=True)
    assert "Data at http\\://e/x.png." in line and "(https://doi.org/10.1/u)" in line  # our own links stay links
