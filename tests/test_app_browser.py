"""The browser chat in a real browser: headless Debian Chromium (/usr/bin/chromium) driven by Playwright.

One server per module over a copy of the session index (the upload test adds to it). A question typed in the page
shows "searching" at once, then an answer whose `[n]` markers bring up the cited sentence highlighted in its
passage; the references download as BibTeX; a PDF uploaded in the page is reported per file and becomes
searchable; the draft and corpus tabs work; and the page requests nothing from any host but the server.
Screenshots go to $EXORAG_SCREENSHOTS (default: the system temp folder, exorag-*.png).
Skipped, with the reason, where chromium or the playwright package is missing (`.ci/run` installs chromium).
"""

from __future__ import annotations

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
from exorag.web import app  # noqa: E402
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
    expect(pg.locator("#exorag-corpus")).to_contain_text(NEW_PDF_TITLE, timeout=30_000)
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
    pg.get_by_role("option", name="pdf", exact=True).click()
    pg.keyboard.press("Escape")
    bot = ask_in_page(pg, "Which complications does DVT prophylaxis cause in trauma patients?")
    expect(bot).to_contain_text("Filters: source: pdf")
    expect(bot).to_contain_text("deep venous thrombosis prophylaxis in trauma")
    assert "ev_literature" not in pg.locator("#exorag-sources details[open]").inner_text()
    pg.screenshot(path=str(SHOTS / "exorag-filtered.png"))


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
