"""The browser chat in a real browser: headless Debian Chromium (/usr/bin/chromium) driven by Playwright.

One server per module over a copy of the session index (the upload test adds to it). A question typed in the page
shows "searching" at once, then an answer whose `[n]` markers bring up the cited sentence highlighted in its
passage; the references download as BibTeX; a PDF uploaded in the page is reported per file and becomes
searchable; the draft and corpus tabs work; and the page requests nothing from any host but the server.
Screenshots go to $EXORAG_SCREENSHOTS (default: the system temp folder, exorag-*.png).
Skipped, with the reason, where chromium or the playwright package is missing (`.ci/run` installs chromium).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.fakes import free_port  # noqa: E402
from tests.conftest import SECOND_PDF

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package "
                                                             "(pip install playwright; no `playwright install`)")

from exorag.settings import LLMSettings, Settings  # noqa: E402
from exorag.web import app, handlers  # noqa: E402
from exorag.index.index import Index, open_index  # noqa: E402

EV_QUESTION = "Which markers are used to characterise extracellular vesicles and exosomes?"
NEW_PDF = SECOND_PDF.name  # tests/fixtures/pdfs/agyemanduah2014_...: not in the session index until uploaded
NEW_PDF_TITLE = "Understanding the barriers to setting up a healthcare quality improvement process"
PDF_QUESTION = "What are the barriers to healthcare quality improvement in resource-limited settings?"
SHOTS = Path(os.environ.get("EXORAG_SCREENSHOTS") or tempfile.gettempdir())
ANSWER_WAIT_MS = 90_000
NEWEST_ANSWER_STARTS_IN_VIEW = """() => {
  const rows = document.querySelectorAll('#exorag-chat .message-row.bot-row');
  if (!rows.length) { return false; }
  const top = rows[rows.length - 1].getBoundingClientRect().top;
  const box = document.querySelector('#exorag-chat').getBoundingClientRect();
  return top >= box.top - 1 && top < box.top + 0.5 * box.height;
}"""




@pytest.fixture(scope="module")
def server(built_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Index, str]]:
    folder = tmp_path_factory.mktemp("browser") / "index"
    shutil.copytree(built_index, folder)
    index = open_index(folder)
    demo = app.build_app(index)
    url = app.launch(demo, host="127.0.0.1", port=free_port(), block=False)
    yield index, url
    demo.close()
    index.close()


@pytest.fixture(scope="module")
def page(server: tuple[Index, str]) -> Iterator[object]:
    _, url = server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
        pg = context.new_page()
        pg.requested = []  # type: ignore[attr-defined]
        pg.on("request", lambda request: pg.requested.append(request.url))  # type: ignore[attr-defined]
        pg.goto(url)
        pg.wait_for_selector("#exorag-question textarea")
        yield pg
        context.close()
        browser.close()


def ask_in_page(pg, question: str):  # type: ignore[no-untyped-def]
    """Type a question, press Enter; return the locator of the newest assistant message once it is the answer."""
    answers_before = pg.locator("#exorag-chat .message-row.bot-row").count()
    pg.fill("#exorag-question textarea", question)
    pg.press("#exorag-question textarea", "Enter")
    bot = pg.locator("#exorag-chat .message-row.bot-row").nth(answers_before)
    sync_api.expect(bot).not_to_contain_text("Searching the index", timeout=ANSWER_WAIT_MS)
    return bot


def test_question_answer_and_citation_highlight(server: tuple[Index, str], page) -> None:  # type: ignore[no-untyped-def]
    index, url = server
    pg = page
    expect = sync_api.expect
    with index._lock:  # the index is busy (a writer holds it): the page must still say at once that it is searching
        pg.fill("#exorag-question textarea", EV_QUESTION)
        pg.press("#exorag-question textarea", "Enter")
        expect(pg.locator("#exorag-chat")).to_contain_text("Searching the index", timeout=20_000)
        pg.screenshot(path=str(SHOTS / "exorag-searching.png"))
    bot = pg.locator("#exorag-chat .message-row.bot-row").last
    expect(bot).to_contain_text("References", timeout=ANSWER_WAIT_MS)
    markers = bot.locator('a[href^="#exorag-cite-1-"]')
    assert markers.count() >= 2
    pg.wait_for_function(NEWEST_ANSWER_STARTS_IN_VIEW, timeout=10_000)  # the start of the answer, not its end
    pg.wait_for_timeout(500)  # show_newest.js scrolls once more at 400 ms: a click meanwhile can miss the marker
    pg.screenshot(path=str(SHOTS / "exorag-answer.png"))

    marker = markers.nth(1)
    target = marker.get_attribute("href")[1:]
    marker.click()
    card = pg.locator(f"#{target}")
    expect(card).to_have_class("exorag-source exorag-active")
    expect(card).to_be_in_viewport()
    quote = card.locator("mark").inner_text()
    assert len(quote) > 30 and " ".join(quote.split())[:60] in " ".join(bot.inner_text().split())
    expect(card.locator("mark")).to_be_visible()
    # PubMed / DOI / PMC links on the cards of papers that have those identifiers (some fixture records, such as
    # the Pap2Pat full texts and SciFact abstracts, have none: their cards have no link)
    card_links = pg.locator("[id^='exorag-cite-1-'] .exorag-links a")
    hrefs = [card_links.nth(i).get_attribute("href") for i in range(card_links.count())]
    assert hrefs and all(h.startswith(("https://pubmed.ncbi.nlm.nih.gov/", "https://doi.org/",
                                       "https://www.ncbi.nlm.nih.gov/pmc/")) for h in hrefs), hrefs
    pg.screenshot(path=str(SHOTS / "exorag-citation-clicked.png"))
    assert len(pg.context.pages) == 1  # the marker did not open a new tab

    with pg.expect_download() as download:
        pg.click("#exorag-bibtex")
    bib = Path(download.value.path()).read_text(encoding="utf-8")
    assert bib.startswith("@article{") and "title = {" in bib
    with pg.expect_download() as download:
        pg.click("#exorag-table-csv")
    table_csv = Path(download.value.path()).read_text(encoding="utf-8")
    assert table_csv.startswith("n,citation,year,design,species,EV source,methods,cargo,key finding")
    assert re.search(r'""[^"]{20,}"" \[1\]', table_csv), table_csv[:500]  # the key finding quoted with its [n]
    pg.click("text=Last answer as Markdown, with references (copy)")
    markdown = pg.locator("#exorag-markdown-text textarea").input_value()
    assert markdown.startswith("**Q:** ") and "**References**" in markdown and "https://" in markdown

    hosts = {urlparse(u).hostname for u in pg.requested if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, hosts


def test_upload_pdf_then_find_it(server: tuple[Index, str], page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pg = page
    expect = sync_api.expect
    pdf = SECOND_PDF
    bad = tmp_path / "macro.exe"
    bad.write_bytes(b"MZ\x90\x00 not a paper")
    pg.get_by_role("tab", name="Add papers").click()
    pg.locator("#exorag-files input[type=file]").set_input_files([str(pdf), str(bad)])
    expect(pg.locator("#exorag-files")).to_contain_text("16.0 B", timeout=30_000)  # both files are in
    pg.click("#exorag-add")
    result = pg.locator("#exorag-upload-result")
    expect(result).to_contain_text("Done: 1 of 2 files added", timeout=180_000)
    expect(result.locator("tr", has_text=NEW_PDF)).to_contain_text("1 document: 1 added")
    expect(result.locator("tr", has_text="macro.exe")).to_contain_text("refused: .exe files are not accepted")
    expect(result).to_contain_text("new passages embedded; now searchable")
    pg.screenshot(path=str(SHOTS / "exorag-upload.png"))

    pg.get_by_role("tab", name="Corpus").click()
    expect(pg.locator("#exorag-doc-list")).to_contain_text(NEW_PDF_TITLE, timeout=30_000)  # the newest first
    pg.screenshot(path=str(SHOTS / "exorag-corpus.png"))

    pg.get_by_role("tab", name="Chat").click()
    bot = ask_in_page(pg, PDF_QUESTION)
    expect(bot).to_contain_text(NEW_PDF_TITLE)
    pg.wait_for_function(NEWEST_ANSWER_STARTS_IN_VIEW, timeout=10_000)
    expect(pg.locator("#exorag-sources details[open]")).to_contain_text(NEW_PDF_TITLE)
    pg.screenshot(path=str(SHOTS / "exorag-pdf-answer.png"))


def test_draft_tab_and_filters(page) -> None:  # type: ignore[no-untyped-def]
    pg = page
    expect = sync_api.expect
    pg.get_by_role("tab", name="Chat").click()
    pg.fill("#exorag-year-from textarea, #exorag-year-from input", "2020")
    pg.fill("#exorag-year-to textarea, #exorag-year-to input", "2010")
    bot = ask_in_page(pg, EV_QUESTION)
    expect(bot).to_contain_text("Please fix the filters: the year range 2020–2010 is empty")
    pg.fill("#exorag-year-to textarea, #exorag-year-to input", "")
    bot = ask_in_page(pg, EV_QUESTION)
    expect(bot).to_contain_text("Filters: years 2020–…")
    pg.fill("#exorag-year-from textarea, #exorag-year-from input", "")

    pg.get_by_role("tab", name="Check my draft").click()
    pg.fill("#exorag-draft textarea", "Exosomes are extracellular vesicles of endosomal origin secreted by cells. "
                                      "The Eiffel Tower was repainted bronze in the spring of 1968.")
    pg.click("#exorag-check")
    out = pg.locator("#exorag-draft-result")
    expect(out).to_contain_text("of 2 sentences", timeout=ANSWER_WAIT_MS)
    expect(out).to_contain_text("no supporting passage in the index")
    out.locator("a[href='#exorag-draft-1']").first.click()
    expect(pg.locator("#exorag-draft-1")).to_have_class("exorag-source exorag-active")
    pg.screenshot(path=str(SHOTS / "exorag-draft.png"))

    pg.get_by_role("tab", name="Chat").click()
    pg.click("#exorag-filter-sources input")
    pg.get_by_role("option", name=re.compile(r"^pdf \(\d+\)$")).click()  # the choice shows its count
    pg.keyboard.press("Escape")
    bot = ask_in_page(pg, "Which complications does DVT prophylaxis cause in trauma patients?")
    expect(bot).to_contain_text("Filters: source: pdf")
    expect(bot).to_contain_text("deep venous thrombosis prophylaxis in trauma")
    assert "ev_literature" not in pg.locator("#exorag-sources details[open]").inner_text()
    pg.screenshot(path=str(SHOTS / "exorag-filtered.png"))


HOSTILE_TITLE = "Quokka vesicles <img src=x onerror=alert(1)> and ![x](http://e/x.png) in zebrafish fins"
HOSTILE_ABSTRACT = ("Zebrafish fin fold cells release quokka-marked extracellular vesicles carrying the QKA-7 protein "
                    "during tail fin regeneration in the exorag page test. QKA-7 vesicles were counted by "
                    "nanoparticle tracking analysis.")
HOSTILE_QUESTION = "Do zebrafish fin fold cells release extracellular vesicles carrying the QKA-7 protein?"
DRAFT = "Exosomes are extracellular vesicles of endosomal origin secreted by cells."


def shot(pg, name: str) -> None:  # type: ignore[no-untyped-def]
    """A screenshot of the window scrolled to the top (the filter line, the tabs and the start of the tab)."""
    pg.evaluate("window.scrollTo(0, 0)")
    pg.wait_for_timeout(300)  # a dropdown's opening animation, the scroll
    pg.screenshot(path=str(SHOTS / name))


def pick(pg, box: str, label: re.Pattern[str]) -> str:  # type: ignore[no-untyped-def]
    """Choose the option whose label matches in the multiselect `box`; return that label."""
    pg.click(f"{box} input")
    option = pg.locator(box).get_by_role("option", name=label).first
    text = option.get_attribute("aria-label")
    option.click()
    pg.keyboard.press("Escape")
    pg.locator(f"{box} input").blur()
    return text


def test_page_filters_retry_sources_and_corpus(server: tuple[Index, str], page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 13 in one flow: tag filters by key with counts, Clear filters, the active-filter line on every tab and
    on answers / draft checks, "retry without filters", the chat as tall as the window, source cards with
    identifiers (no record file names), the corpus make-up, document search and removal; a hostile title stays
    text in the card, the reply and the list."""
    from exorag.build.ingest import ingest_paths
    from exorag.errors import NotFound
    from exorag.index.index import check

    index, _ = server
    pg = page
    expect = sync_api.expect
    active = pg.locator("#exorag-active-filters")
    pg.get_by_role("tab", name="Chat").click()

    # 2. Clear filters resets what the earlier tests left (source: pdf)
    pg.click("#exorag-clear-filters")
    expect(active).to_contain_text("No filters: searching all")
    expect(pg.locator("#exorag-filter-sources .token")).to_have_count(0)

    # 5. the chat is as tall as the window allows, not a fixed 520 px box
    height = pg.locator("#exorag-chat").bounding_box()["height"]
    assert height > 600, height  # calc(100vh - 330px) in a 1000 px window
    pg.set_viewport_size({"width": 1500, "height": 1300})
    pg.wait_for_function("() => document.querySelector('#exorag-chat').getBoundingClientRect().height > "
                         f"{height + 250}", timeout=5000)
    pg.set_viewport_size({"width": 1500, "height": 1000})

    # 1. one multiselect per tag key present, each choice "value (n)"; sources and publication types counted too
    present = [key for key, values in index.tag_values().items() if values]
    for key in handlers.TAG_KEYS:
        expect(pg.locator(f"#exorag-filter-tag-{key}")).to_have_count(1 if key in present else 0)
    pg.click("#exorag-filter-tag-design input")
    options = pg.locator("#exorag-filter-tag-design [role=option]")
    expect(options.first).to_be_visible()
    labels = options.evaluate_all("els => els.map(e => e.getAttribute('aria-label'))")
    designs = dict(index.tag_values()["design"])
    assert labels and all(re.fullmatch(r"[a-z ]+ \(\d+\)", t) for t in labels), labels
    assert f"review ({designs['review']})" in labels
    style = pg.evaluate("() => { const o = document.querySelector('#exorag-filter-tag-design [role=option]');"
                        " const s = getComputedStyle(o); return [s.wordBreak, s.overflowWrap]; }")
    assert style == ["normal", "normal"], style  # choices wrap between words only
    shot(pg, "exorag-tag-filters.png")
    pg.keyboard.press("Escape")
    pg.locator("#exorag-filter-tag-design input").blur()
    pick(pg, "#exorag-filter-tag-design", re.compile(r"^review \(\d+\)$"))
    pick(pg, "#exorag-filter-tag-topic", re.compile(r"^extracellular vesicle \(\d+\)$"))
    pg.click("#exorag-filter-pub_types input")
    assert all(re.fullmatch(r".+ \(\d+\)", t) for t in pg.locator("#exorag-filter-pub_types [role=option]")
               .evaluate_all("els => els.map(e => e.getAttribute('aria-label'))"))
    pg.keyboard.press("Escape")
    pg.locator("#exorag-filter-pub_types input").blur()
    token = pg.locator("#exorag-filter-tag-topic .token").first
    assert token.evaluate("t => getComputedStyle(t).wordBreak") == "normal"

    # 3. the active filters, with how many documents pass them, above every tab
    reviews = index.count_documents(handlers.make_filters(None, None, [], [], ["design=review",
                                                                               "topic=extracellular_vesicle"]))
    line = f"tags: topic=extracellular_vesicle, design=review — {reviews} of {index.count_documents()} documents"
    expect(active).to_contain_text(line)
    for tab in ("Check my draft", "Add papers", "Corpus", "Chat"):
        pg.get_by_role("tab", name=tab).click()
        expect(active).to_be_visible()
        expect(active).to_contain_text(line)
    bot = ask_in_page(pg, EV_QUESTION)
    expect(bot).to_contain_text("Filters: tags: topic=extracellular_vesicle, design=review")
    shot(pg, "exorag-filters-active.png")

    # 4. filters that leave no evidence: "Retry without filters" clears them and asks again
    pg.click("#exorag-clear-filters")
    expect(active).to_contain_text("No filters")
    pg.fill("#exorag-year-from textarea, #exorag-year-from input", "2990")
    expect(active).to_contain_text("years 2990–… — 0 of")
    bot = ask_in_page(pg, EV_QUESTION)
    expect(bot).to_contain_text("No passage passed the search and filters")
    expect(bot).to_contain_text("Filters: years 2990–…")
    retry = pg.locator("#exorag-retry")
    expect(retry).to_be_visible()
    shot(pg, "exorag-retry.png")
    answers = pg.locator("#exorag-chat .message-row.bot-row").count()
    retry.click()
    bot = pg.locator("#exorag-chat .message-row.bot-row").nth(answers)
    expect(bot).to_contain_text("References", timeout=ANSWER_WAIT_MS)
    expect(bot).not_to_contain_text("Filters:")
    expect(retry).to_be_hidden()
    expect(active).to_contain_text("No filters")
    assert pg.locator("#exorag-year-from textarea, #exorag-year-from input").input_value() == ""
    assert pg.locator("#exorag-chat .message-row.user-row").last.inner_text().strip() == EV_QUESTION

    # 6. source cards: PubMed / DOI / PMC links, never the name of the JSONL file the record came from
    cards = pg.locator("#exorag-sources details[open] .exorag-source")
    assert cards.count() >= 2
    text = pg.locator("#exorag-sources details[open]").inner_text()
    assert ".jsonl" not in text
    assert pg.locator("#exorag-sources details[open] .exorag-links a[href^='https://']").count() >= 1
    assert re.search(r"PMID \d+|DOI 10\.", text)
    pg.wait_for_function(NEWEST_ANSWER_STARTS_IN_VIEW, timeout=10_000)
    shot(pg, "exorag-retried.png")

    # 3-4 on the draft tab: the check says it was filtered; the retry reruns it without filters
    pg.fill("#exorag-year-from textarea, #exorag-year-from input", "2990")
    pg.get_by_role("tab", name="Check my draft").click()
    pg.fill("#exorag-draft textarea", DRAFT)
    pg.click("#exorag-check")
    out = pg.locator("#exorag-draft-result")
    expect(out).to_contain_text("Checked only against documents that pass the filters (years 2990–…)",
                                timeout=ANSWER_WAIT_MS)
    expect(out).to_contain_text("0 of 1 sentences")
    draft_retry = pg.locator("#exorag-draft-retry")
    expect(draft_retry).to_be_visible()
    shot(pg, "exorag-draft-filtered.png")
    draft_retry.click()
    expect(out).to_contain_text("1 of 1 sentences", timeout=ANSWER_WAIT_MS)
    expect(out).not_to_contain_text("Checked only against")
    expect(draft_retry).to_be_hidden()
    expect(active).to_contain_text("No filters")

    # a record whose title is markup: text in the card and the reply
    records = tmp_path / "hostile.jsonl"
    records.write_text(json.dumps({"id": "hostile:1", "title": HOSTILE_TITLE, "abstract": HOSTILE_ABSTRACT,
                                   "journal": "J <b>Test</b>", "year": 2024, "doi": "10.5555/exorag.hostile",
                                   "source": "page_test"}) + "\n", encoding="utf-8")
    report = ingest_paths(index, [records], progress=False)
    assert report.added == 1, report
    pg.get_by_role("tab", name="Chat").click()
    bot = ask_in_page(pg, HOSTILE_QUESTION)
    expect(bot).to_contain_text("<img src=x onerror=alert(1)> and ![x](http://e/x.png)")
    panel = pg.locator("#exorag-sources details[open]")
    expect(panel).to_contain_text(HOSTILE_TITLE)
    expect(panel).to_contain_text("DOI 10.5555/exorag.hostile")
    assert pg.locator("#exorag-chat img, #exorag-sources img").count() == 0
    assert bot.locator("a[href*='e/x.png']").count() == 0  # the URL in the title is not even a link
    shot(pg, "exorag-hostile-title.png")

    # 7. the corpus make-up, the document list (search) and removal through remove_documents
    pg.get_by_role("tab", name="Corpus").click()
    pg.get_by_role("button", name="Refresh").click()
    corpus = pg.locator("#exorag-corpus")
    total = index.count_documents()
    expect(corpus).to_contain_text(f"{total} documents")
    ev = dict(index.tag_values()["topic"])["extracellular_vesicle"]
    expect(corpus).to_contain_text(f"{ev} of {total} ({100 * ev / total:.0f}%) are extracellular-vesicle papers")
    expect(corpus).to_contain_text("Documents by source")
    expect(corpus.locator(".exorag-ycol").first).to_be_visible()
    undated = dict(index.year_counts()).get(None, 0)
    if undated:
        expect(corpus).to_contain_text(f"{undated} documents without a year")
    listing = pg.locator("#exorag-doc-list")
    expect(listing).to_contain_text(f"The newest 50 of {total} documents")
    shot(pg, "exorag-corpus-makeup.png")
    pg.fill("#exorag-doc-query textarea, #exorag-doc-query input", "quokka zebrafish")
    expect(listing).to_contain_text("1 document matching “quokka zebrafish”, newest first")
    expect(listing).to_contain_text(HOSTILE_TITLE)
    assert listing.locator("img, b").count() == 0
    pick(pg, "#exorag-remove-pick", re.compile(r"^hostile:1 · "))
    pg.click("#exorag-remove")
    confirm = pg.locator("#exorag-remove-confirm")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("Remove 1 document (hostile:1) from the index?")
    shot(pg, "exorag-corpus-remove-confirm.png")
    pg.click("#exorag-remove-yes")
    expect(pg.locator("#exorag-remove-result")).to_contain_text("Removed 1 document (hostile:1) and",
                                                                timeout=60_000)
    expect(confirm).to_be_hidden()
    expect(listing).to_contain_text("No document matching “quokka zebrafish”")
    expect(corpus).to_contain_text(f"{total - 1} documents")
    with pytest.raises(NotFound):
        index.get_document("hostile:1")
    assert check(index)["consistent"]
    shot(pg, "exorag-corpus-removed.png")

    hosts = {urlparse(u).hostname for u in pg.requested if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, hosts  # the image in the title was never fetched


def test_generative_chat_streams_a_draft_then_the_checked_answer(built_index: Path, page) -> None:  # type: ignore[no-untyped-def]
    """`serve --llm-url`: the model's words appear as they come, marked unchecked; then the checked answer, whose
    [n] open their sources like the extractive ones (the model is test_generate's fake, on 127.0.0.1)."""
    from exorag.web import handlers
    from exorag.ask.generate import config_from

    from .fakes import QUESTION, FakeLLM

    fake = FakeLLM()
    fake.behaviour = "trickle"
    index = open_index(built_index)
    llm = config_from(fake.url, "fake-model", timeout=10.0, settings=LLMSettings())
    demo = app.build_app(index, handlers.AppSettings.for_index(index, llm=llm))
    url = app.launch(demo, host="127.0.0.1", port=free_port(), block=False)
    expect = sync_api.expect
    try:
        pg = page.context.browser.new_page(viewport={"width": 1500, "height": 1000})  # the module's chromium
        try:
            pg.goto(url)
            pg.wait_for_selector("#exorag-question textarea")
            pg.fill("#exorag-question textarea", QUESTION)
            pg.press("#exorag-question textarea", "Enter")
            bot = pg.locator("#exorag-chat .message-row.bot-row").last
            expect(bot).to_contain_text("not yet checked against the passages", timeout=ANSWER_WAIT_MS)
            pg.screenshot(path=str(SHOTS / "exorag-llm-drafting.png"))
            expect(bot).to_contain_text("Written by fake-model", timeout=ANSWER_WAIT_MS)
            expect(bot).not_to_contain_text("ten minutes")  # the invented sentence did not survive the check
            marker = bot.locator("a[href^='#exorag-cite-']").first
            target = marker.get_attribute("href")[1:]
            for attempt in range(3):  # the sources panel may still be re-rendered just after the reply lands
                marker.click()
                try:
                    expect(pg.locator(f"#{target}")).to_have_class("exorag-source exorag-active", timeout=3000)
                    break
                except AssertionError:
                    if attempt == 2:
                        raise
            pg.screenshot(path=str(SHOTS / "exorag-llm-answer.png"))
        finally:
            pg.close()
    finally:
        demo.close()
        index.close()
        fake.server.shutdown()
