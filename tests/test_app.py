"""Tests for the browser chat's server side: the real Gradio server on 127.0.0.1 over the real session index.

Covers the `/ask` JSON (citations verbatim against the store, `[n]` markers, filters), abstention, the empty-index
and empty-question messages, reply Markdown and the sources panel (anchors, highlighting, escaping), exports,
uploads (per-file results, type/size limits, untrusted paths), the draft check, the corpus overview, several
concurrent clients, loopback-only binding, files that must not be readable through the server, and that the page
references no external font or script host. The page in a real browser: tests/test_app_browser.py.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest

gradio_client = pytest.importorskip("gradio_client")

from gradio.utils import get_upload_folder  # noqa: E402

from tests.fakes import free_port  # noqa: E402
from exorag.errors import EmptyIndex, EmptyQuery
from exorag.web import app, handlers
from exorag.index import store
from exorag.output import table  # noqa: E402
from exorag.web.page import active_filters_html, answer_sources, cite_anchor, corpus_html, documents_html, draft_html, \
    esc, links, md_escape, removal_choices, reply_markdown, sources_panel  # noqa: E402
from exorag.web.page import year_bins as page_year_bins, years_chart as page_years_chart  # noqa: E402
from exorag.index.index import Index, open_index  # noqa: E402
from exorag.output.render import display_quote  # noqa: E402
from exorag.ask.retrieve import search  # noqa: E402
from exorag.types import Answer, Chunk, Citation, Document, Filters, Hit, Section  # noqa: E402

EV_QUESTION = "Which markers are used to characterise extracellular vesicles and exosomes?"
OFF_TOPIC = "What is the boiling point of tungsten in a vacuum furnace?"
LOCAL_HOSTS = {"127.0.0.1", "localhost", ""}
SERVER_UPLOAD_MB = 1.0  # Gradio's own upload limit on the module server




def start(index: Index, max_upload_mb: float = handlers.DEFAULT_MAX_UPLOAD_MB) -> tuple[object, str]:
    demo = app.build_app(index)
    url = app.launch(demo, host="127.0.0.1", port=free_port(), block=False, max_upload_mb=max_upload_mb)
    return demo, url


@pytest.fixture(scope="module")
def served(built_index: Path) -> Iterator[tuple[Index, object, str, object]]:
    index = open_index(built_index)
    demo, url = start(index, max_upload_mb=SERVER_UPLOAD_MB)
    client = gradio_client.Client(url, verbose=False)
    yield index, demo, url, client
    demo.close()  # type: ignore[attr-defined]
    index.close()


@pytest.fixture()
def writable_index(built_index: Path, tmp_path: Path) -> Iterator[Index]:
    """A copy of the session index that a test may add to."""
    folder = tmp_path / "index"
    shutil.copytree(built_index, folder)
    index = open_index(folder)
    yield index
    index.close()


def received(tmp_name: str, name: str, data: bytes) -> Path:
    """A file placed where Gradio puts what a browser uploads (what the upload handler accepts)."""
    folder = Path(get_upload_folder()) / f"exorag-test-{tmp_name}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def test_ask_endpoint_cites_verbatim(served: tuple[Index, object, str, object]) -> None:
    index, _, _, client = served
    result = client.predict(EV_QUESTION, 8, api_name="/ask")  # type: ignore[attr-defined]
    assert "error" not in result, result
    assert result["abstained"] is False
    citations = result["citations"]
    assert citations
    assert [c["n"] for c in citations] == list(range(1, len(citations) + 1))
    for c in citations:
        doc = index.get_document(c["doc_id"])
        assert doc.text[c["char_start"]:c["char_end"]] == c["quote"]
        assert c["quote"] in result["answer"]
    markers = [int(n) for n in re.findall(r"\[(\d+)\]", result["answer"])]
    assert sorted(set(markers)) == [c["n"] for c in citations]


def test_ask_endpoint_applies_filters(served: tuple[Index, object, str, object]) -> None:
    index, _, _, client = served
    result = client.predict(EV_QUESTION, 8, 2015, 2019, None, None, api_name="/ask")  # type: ignore[attr-defined]
    assert result["citations"] or result["abstained"]
    for c in result["citations"] + result["closest"]:
        assert c["year"] is not None and 2015 <= c["year"] <= 2019, c
    only_pdf = client.predict("Which complications does DVT prophylaxis cause in trauma patients?", 8, None, None,
                              ["pdf"], None, api_name="/ask")  # type: ignore[attr-defined]
    assert only_pdf["citations"]
    assert {index.get_document(c["doc_id"]).source for c in only_pdf["citations"]} == {"pdf"}
    wrong = client.predict(EV_QUESTION, 8, 2020, 2010, None, None, api_name="/ask")  # type: ignore[attr-defined]
    assert wrong["error"] == "Please fix the filters: the year range 2020–2010 is empty: 'from' is after 'to'"
    reviews = client.predict(EV_QUESTION, 8, None, None, None, None, ["design=review"],
                             api_name="/ask")  # type: ignore[attr-defined]
    assert reviews["citations"]
    tagged = index.document_tags([c["doc_id"] for c in reviews["citations"] + reviews["closest"]])
    assert all("review" in tagged.get(c["doc_id"], {}).get("design", []) for c in reviews["citations"])
    bad = client.predict(EV_QUESTION, 8, None, None, None, None, ["design=opinion"],
                         api_name="/ask")  # type: ignore[attr-defined]
    assert bad["error"].startswith("Please fix the filters: tag filter 'design=opinion': unknown value")


def test_make_filters_and_choices(index: Index) -> None:
    f = handlers.make_filters(" 2012 ", "", ["pdf"], [])
    assert f == Filters(year_from=2012, sources=("pdf",))
    assert handlers.make_filters(None, None).empty
    with pytest.raises(handlers.FilterError, match="'twenty' is not a number"):
        handlers.make_filters("twenty", None)
    with pytest.raises(handlers.FilterError, match="not a plausible publication year"):
        handlers.make_filters("20", None)
    sources, pub_types, tag_choices = handlers.filter_choices(index)
    assert "pdf" in sources and "ev_literature_notes_aquiles" in sources
    assert sources == sorted(sources, key=str.lower)
    assert "Journal Article" in pub_types
    assert "topic=extracellular_vesicle" in tag_choices and all("=" in t for t in tag_choices)
    assert [f.field for f in handlers.CHOICE_FILTERS] == ["sources", "pub_types", "tags"]
    tagged = handlers.make_filters(None, None, [], [], ["Topic=extracellular-vesicle", "design=review"])
    assert tagged.tags == (("topic", "extracellular_vesicle"), ("design", "review"))
    with pytest.raises(handlers.FilterError, match="unknown key 'colour'"):
        handlers.make_filters(None, None, [], [], ["colour=red"])
    assert all(hasattr(Filters(), f.field) for f in handlers.CHOICE_FILTERS)


def test_off_topic_question_abstains(served: tuple[Index, object, str, object]) -> None:
    _, _, _, client = served
    result = client.predict(OFF_TOPIC, 8, api_name="/ask")  # type: ignore[attr-defined]
    assert result["abstained"] is True, result["answer"]
    assert result["citations"] == []
    assert result["closest"]


def test_empty_question_is_a_polite_message(served: tuple[Index, object, str, object]) -> None:
    index, _, _, client = served
    result = client.predict("   ", 8, api_name="/ask")  # type: ignore[attr-defined]
    assert result["error"].startswith("Please type a question")
    with pytest.raises(EmptyQuery):
        handlers.run_question(index, "?!", 8)
    assert app.user_message(EmptyQuery("x"), index) == handlers.EMPTY_QUESTION


def test_reply_markdown_links_markers_to_source_cards(index: Index) -> None:
    answer = handlers.run_question(index, EV_QUESTION, 8)
    assert isinstance(answer, Answer) and not answer.abstained
    reply = reply_markdown(answer, 3, Filters(year_from=2010))
    panel = answer_sources(answer, 3)
    for c in answer.citations:
        assert f"[[{c.n}]](#{cite_anchor(3, c.n)})" in reply
        assert f"id='{cite_anchor(3, c.n)}'" in panel
        # the quote escaped, with the source's own reference markers (if any) in grey spans
        assert f"<mark>{display_quote(c.quote, 'html', escape=esc, quotes=False)}</mark>" in panel
    assert "**References**" in reply and "https://" in reply.split("**References**")[1]
    assert reply.endswith("*Filters: years 2010–…*")
    folded = sources_panel([{"turn": 1, "question": "first <q>", "sources": "A"},
                            {"turn": 2, "question": "second", "sources": "B"}])
    assert folded.index("exorag-turn-2' open") < folded.index("exorag-turn-1'")
    assert "first &lt;q&gt;" in folded


def test_markdown_escaping_keeps_quotes_inert() -> None:
    text = "CD63 *and* [CD81](javascript:alert(1)) <img src=x onerror=alert(1)> cost $5_000 ~ `x` | #1"
    escaped = md_escape(text)
    assert re.search(r"(?<!\\)[*\[\]<>$`_~|#]", escaped) is None, escaped  # every special character escaped
    assert re.sub(r"\\(.)", r"\1", escaped) == text


def test_sources_panel_escapes_and_highlights_within_chunk() -> None:
    text = "Intro <b>bold</b> & more. CD63 <script>alert(1)</script> marks exosomes. Tail sentence here."
    doc = Document(id="x:1", text=text, sections=(Section("Abstract", 0, len(text)),), title="A <i>title</i>",
                   authors=("Doe J",), year=2024, journal="J EV", pmid="123", doi="10.1/x", pmcid="PMC9")
    s = text.index("CD63")
    e = text.index(" Tail")
    chunk = Chunk(doc_id=doc.id, ordinal=0, text=text, section="Abstract", page=None, char_start=0,
                  char_end=len(text), id=1)
    cit = Citation(n=1, document=doc, quote=text[s:e], section="Abstract", page=None, char_start=s, char_end=e,
                   score=0.9)
    panel = answer_sources(Answer(question="q", text=f"{text[s:e]} [1]", abstained=False, citations=(cit,),
                                  hits=(Hit(chunk=chunk, document=doc, score=1.0),)), 1)
    assert "<script>" not in panel and "<b>" not in panel and "<i>" not in panel
    assert "<mark>CD63 &lt;script&gt;alert(1)&lt;/script&gt; marks exosomes.</mark>" in panel
    assert panel.index("Intro &lt;b&gt;") < panel.index("<mark>") < panel.index("Tail sentence")
    for link in ("https://pubmed.ncbi.nlm.nih.gov/123/", "https://doi.org/10.1/x",
                 "https://www.ncbi.nlm.nih.gov/pmc/articles/PMC9/"):
        assert link in panel
    assert "Doe J · 2024 · J EV · Abstract" in panel


def test_exports_are_written_per_answer(index: Index, tmp_path: Path) -> None:
    answer = handlers.run_question(index, EV_QUESTION, 8)
    assert isinstance(answer, Answer)
    files = handlers.write_exports(answer, tmp_path)
    docs = {c.document.id for c in answer.citations}
    bib = files["bibtex"].read_text(encoding="utf-8")
    assert len(re.findall(r"^@article\{", bib, re.MULTILINE)) == len(docs)
    assert files["ris"].read_text(encoding="utf-8").count("TY  - JOUR") == len(docs)
    md = files["markdown"].read_text(encoding="utf-8")
    assert md.startswith(f"**Q:** {answer.question}") and "**References**" in md
    assert "table_csv" not in files  # the evidence table only when its rows are given
    rows = table.rows_for(index, answer)
    with_table = handlers.write_exports(answer, tmp_path, rows)
    csv_rows = list(csv.reader(io.StringIO(with_table["table_csv"].read_text(encoding="utf-8"))))
    assert len(csv_rows) == 1 + len(docs) and csv_rows[0][0] == "n"
    numbers = [int(n) for row in csv_rows[1:] for n in re.findall(r"\[(\d+)\]", row[8])]
    assert sorted(numbers) == [c.n for c in answer.citations]  # every quote of the answer, with the answer's [n]
    for c in answer.citations:
        assert f'"{c.quote}" [{c.n}]' in " ".join(row[8] for row in csv_rows[1:])
    assert with_table["table_markdown"].read_text(encoding="utf-8").count("\n") == 2 + len(docs)
    again = handlers.write_exports(answer, tmp_path)
    assert again["bibtex"].parent != files["bibtex"].parent and again["bibtex"].parent.parent == tmp_path
    hour_ago = time.time() - handlers.EXPORTS_KEPT_S - 60
    os.utime(files["bibtex"].parent, (hour_ago, hour_ago))
    handlers.write_exports(answer, tmp_path)
    assert not files["bibtex"].parent.exists() and again["bibtex"].exists()


def test_empty_index_explains_how_to_add_literature(tmp_path: Path) -> None:
    index = open_index(tmp_path / "empty")
    demo, url = start(index)
    try:
        result = gradio_client.Client(url, verbose=False).predict(EV_QUESTION, 8, api_name="/ask")
        assert "exorag ingest" in result["error"] and "Add papers" in result["error"]
        with pytest.raises(EmptyIndex):
            handlers.check_draft(index, "Exosomes carry CD63.")
        assert "exorag ingest" in app.user_message(EmptyIndex("empty"), index)
        assert "The index is empty" in corpus_html(handlers.corpus_overview(index), index.folder)
        assert documents_html(*handlers.find_documents(index)) == "<p class='exorag-doc-count'>No document.</p>"
    finally:
        demo.close()  # type: ignore[attr-defined]
        index.close()


def test_uploads_report_each_file(writable_index: Index, tmp_path: Path) -> None:
    index = writable_index
    settings = handlers.AppSettings(uploads=index.folder / "uploads", downloads=tmp_path, max_upload_mb=0.05)
    good = ("Exosomal galectin-9 from nasopharyngeal carcinoma cells induces apoptosis of Epstein-Barr "
            "virus specific CD4 T cells. This dampens antitumour immunity in the exorag upload test.\n")
    records = (json.dumps({"id": "upload:1", "title": "Uploaded record about plasma EV isolation",
                           "abstract": "Size-exclusion chromatography separated plasma vesicles from lipoproteins "
                                       "with high purity in the exorag upload test."}) + "\n{not json\n")
    outside = tmp_path / "notes.txt"
    outside.write_text(good, encoding="utf-8")
    paths = [received("a", "notes on EVs.txt", good.encode()),
             received("a", "records.jsonl", records.encode()),
             received("a", "tool.exe", b"MZ\x90\x00"),
             received("a", "big.txt", b"exosome " * 10_000),
             received("a", "broken.pdf", b"%PDF-1.4 this is not really a pdf"),
             received("a", "empty.md", b""),
             outside]
    seen: list[str] = []
    steps = list(handlers.ingest_uploads(index, paths, settings,
                                             on_file=lambda i, n, name: seen.append(name)))
    rows = steps[-1]
    assert [len(s) for s in steps] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert seen == [p.name for p in paths] + ["embedding"]
    by_name = {name: (ok, message) for name, ok, message in rows}
    assert by_name["notes on EVs.txt"] == (True, "1 document: 1 added")
    ok, message = by_name["records.jsonl"]
    assert ok and message.startswith("1 document: 1 added; 1 problem(s): line 2: ")
    assert by_name["tool.exe"] == (False, "refused: .exe files are not accepted; upload "
                                          + ", ".join(handlers.UPLOAD_TYPES))
    assert {".pdf", ".jsonl", ".txt", ".md", ".ris", ".bib"} <= set(handlers.UPLOAD_TYPES)
    assert by_name["big.txt"] == (False, "refused: 0.1 MB is over the 0.05 MB limit")
    ok, message = by_name["broken.pdf"]
    assert not ok and message.startswith("not added: ") and len(message) > len("not added: ") + 5
    assert by_name["empty.md"] == (False, "refused: the file is empty")
    assert by_name["notes.txt"] == (False, "refused: not a file uploaded through this page")
    assert rows[-1][0] == "(index)" and rows[-1][1] and re.match(r"\d+ new passages embedded", rows[-1][2])
    assert sorted(p.name for p in settings.uploads.iterdir()) == ["notes_on_EVs.txt", "records.jsonl"]
    hits = search(index, "galectin-9 nasopharyngeal carcinoma apoptosis CD4 T cells", k=3)
    assert hits and hits[0].document.origin == str(settings.uploads / "notes_on_EVs.txt")
    assert index.get_document("upload:1").title == "Uploaded record about plasma EV isolation"
    # The same bytes again: the saved copy is reused and the document is unchanged; other bytes get a new name.
    again = list(handlers.ingest_uploads(index, [received("b", "notes on EVs.txt", good.encode())], settings))
    assert again[-1][0] == ("notes on EVs.txt", True, "1 document: 1 unchanged (already in the index)")
    other = received("c", "notes on EVs.txt", b"Plasma exosomes carry PD-L1 in melanoma patients, exorag test.\n")
    list(handlers.ingest_uploads(index, [other], settings))
    assert (settings.uploads / "notes_on_EVs-2.txt").exists()


def test_safe_names() -> None:
    assert handlers.safe_name("../../etc/passwd") == "passwd"
    assert handlers.safe_name(".hidden.pdf") == "hidden.pdf"
    assert handlers.safe_name("Théry et al. (2018).pdf") == "Th_ry_et_al._2018_.pdf"
    assert handlers.safe_name("...") == "upload"


def test_check_draft(index: Index) -> None:
    doc = next(d for d in (index.get_document(i) for i, _ in index.document_origins())
               if d.source == "ev_literature_notes_aquiles" and len(d.text) > 300)
    claim = index.document_chunks(doc.id)[0].text.split(". ")[0] + "."
    off = "The Eiffel Tower was repainted in a shade of bronze during the spring of 1968."
    result = handlers.check_draft(index, f"{claim} {off}", 8)
    assert not isinstance(result, str)
    assert result[0].supported and not result[1].supported
    assert doc.id in {c.document.id for c in result[0].citations}
    page = draft_html(result)
    assert "no supporting passage in the index" in page and "href='#exorag-draft-1'" in page
    assert "id='exorag-draft-1'" in page and "<mark>" in page
    assert "1 of 2 sentences" in page
    with pytest.raises(EmptyQuery):
        handlers.check_draft(index, "   ")


def test_corpus_overview(index: Index) -> None:
    data = handlers.corpus_overview(index)
    total = data["counts"]["documents"]
    assert sum(n for _, n in data["years"]) == total == sum(n for _, n in data["sources"])
    assert dict(data["sources"])["pdf"] >= 1
    ev = dict(index.tag_values()["topic"])["extracellular_vesicle"]
    assert data["ev_documents"] == ev == index.count_documents(Filters(tags=(("topic", "extracellular_vesicle"),)))
    page = corpus_html(data, index.folder)
    assert f"{total:,} documents" in page and "Documents by year" in page and "Documents by source" in page
    assert f"<strong>{ev:,} of {total:,} ({100 * ev / total:.0f}%)</strong> are extracellular-vesicle papers" in page
    undated = dict(data["years"]).get(None, 0)
    assert undated and f"{undated:,} documents without a year (not in the chart)" in page
    assert "no year" not in page  # the undated are counted apart, not a bar that dwarfs the years
    dated = [(y, n) for y, n in data["years"] if y is not None]
    columns = re.findall(r"<div class='exorag-ycol' title='([^']+): (\d+)'>", page)
    assert sum(int(n) for _, n in columns) == total - undated
    assert columns[0][0] == str(dated[0][0]) and columns[-1][0] == str(dated[-1][0])
    assert len(columns) == dated[-1][0] - dated[0][0] + 1  # every year of the span, empty ones too
    tallest = max(n for _, n in dated)
    assert "height:70.0px'></div>" in page and f">{tallest}</span>" in page


def test_year_chart_bins_a_long_span() -> None:
    bins = page_year_bins([(1901, 2), (1950, 1), (2025, 3), (None, 5)])
    assert len(bins) <= 40 and sum(n for _, n in bins) == 6
    assert bins[0] == ("1901–04", 2) and bins[-1][0].startswith("2025")
    assert page_year_bins([(None, 4)]) == []
    chart = page_years_chart([(None, 4)])
    assert "4 documents without a year" in chart and "exorag-ycol" not in chart


def test_concurrent_clients_all_answered(served: tuple[Index, object, str, object]) -> None:
    index, _, url, _ = served
    questions = [EV_QUESTION, "How are extracellular vesicles used for drug delivery?",
                 "Do tumour-derived exosomes suppress immune responses?", "What do exosomes carry?",
                 "How are exosomes isolated by ultracentrifugation?", OFF_TOPIC]
    results: dict[int, dict] = {}
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            results[i] = gradio_client.Client(url, verbose=False).predict(questions[i], 8, api_name="/ask")
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(questions))]
    started = time.monotonic()
    for t in threads:
        t.start()
    page_times = []
    while any(t.is_alive() for t in threads) and time.monotonic() - started < 120:
        t0 = time.monotonic()
        assert b"exorag" in urllib.request.urlopen(url, timeout=10).read()
        page_times.append(time.monotonic() - t0)
        time.sleep(0.2)
    for t in threads:
        t.join(timeout=120)
    elapsed = time.monotonic() - started
    assert not errors, errors
    assert len(results) == len(questions) and elapsed < 120
    assert page_times and max(page_times) < 5.0, page_times
    for i, result in results.items():
        assert result["question"] and "error" not in result, result
        if questions[i] == OFF_TOPIC:
            assert result["abstained"]
            continue
        assert result["citations"], result
        for c in result["citations"]:
            assert index.get_document(c["doc_id"]).text[c["char_start"]:c["char_end"]] == c["quote"]


def _status(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_no_file_outside_the_app_folders_is_served(served: tuple[Index, object, str, object]) -> None:
    index, _, url, _ = served
    base = url.rstrip("/") + "/gradio_api/file="
    for path in ("/etc/passwd", str(Path(__file__).resolve().parents[1] / "README.md"),
                 str(index.folder / "store.sqlite"), str(index.folder / "index.json"),
                 get_upload_folder() + "/../../etc/passwd", "README.md", "../../../../etc/hostname"):
        assert _status(base + quote(path)) in (403, 404), path
    assert _status(url.rstrip("/") + "/gradio_api/file=" + quote(str(Path.home() / ".bashrc"))) in (403, 404)


def test_upload_size_limit_over_http(served: tuple[Index, object, str, object]) -> None:
    _, _, url, _ = served
    boundary = "exoragboundary"
    payload = b"x" * int(SERVER_UPLOAD_MB * 1e6 * 1.5)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url.rstrip("/") + "/gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        status = urllib.request.urlopen(request, timeout=30).status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status == 413


def _other_address() -> str | None:
    """A non-loopback address of this machine, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # UDP: no packet is sent
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def _listening_on(port: int) -> set[str]:
    """The local addresses of the sockets listening on `port`, read from the kernel's table (/proc/net/tcp*): the
    check that the server is bound to loopback, which works on a machine with no other address too."""
    import ipaddress

    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            pytest.skip("needs Linux /proc/net/tcp to read the listening address")
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) != port or fields[3] != "0A":  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            if len(raw) == 4:
                found.add(str(ipaddress.IPv4Address(raw[::-1])))
            else:  # four little-endian 32-bit words
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                ip = ipaddress.IPv6Address(words)
                found.add(str(ip.ipv4_mapped or ip))
    return found


def test_bound_to_loopback_only(served: tuple[Index, object, str, object]) -> None:
    _, demo, url, _ = served
    assert demo.server_name == "127.0.0.1"  # type: ignore[attr-defined]
    assert urlparse(url).hostname == "127.0.0.1"
    assert getattr(demo, "share_url", None) is None
    assert _listening_on(urlparse(url).port) == {"127.0.0.1"}
    other = _other_address()
    if other:  # where the machine has another address, try it too
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            assert s.connect_ex((other, urlparse(url).port)) != 0


def test_page_loads_nothing_from_other_hosts(served: tuple[Index, object, str, object]) -> None:
    _, _, url, _ = served
    page = urllib.request.urlopen(url, timeout=10).read().decode("utf-8")
    theme_css = urllib.request.urlopen(url.rstrip("/") + "/theme.css", timeout=10).read().decode("utf-8")
    for text in (page, theme_css):
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text
    assert not re.search(r"@import\s+url\(\s*['\"]?https?:", theme_css)
    loaded = re.findall(r"<script[^>]*\ssrc=[\"']([^\"']+)", page)
    loaded += re.findall(r"<link[^>]*\shref=[\"']([^\"']+)", page)
    loaded += re.findall(r"<img[^>]*\ssrc=[\"']([^\"']+)", page)
    assert any(src.endswith(".js") for src in loaded)
    for src in loaded:
        assert urlparse(src).hostname in LOCAL_HOSTS | {None}, src
    assert re.search(r'"stylesheets":\s*\[\s*\]', page), "the theme asks for no external stylesheets"
    # The frontend adds Google Fonts links only for its Hugging Face Spaces badge, i.e. when space_id is set.
    assert re.search(r'"space_id":\s*null', page)
    assert re.search(r'"analytics_enabled":\s*false', page)


def test_serve_command(built_index: Path, tmp_path: Path) -> None:
    """`exorag serve` binds 127.0.0.1 by default and answers; a bad upload limit is a clear error (exit 2)."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "EXORAG_MAX_UPLOAD_MB": "ten"}
    bad = subprocess.run([sys.executable, "-m", "exorag.cli", "serve", "--index", str(built_index)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "EXORAG_MAX_UPLOAD_MB='ten': expected a number" in bad.stderr, bad.stderr
    folder = tmp_path / "index"
    shutil.copytree(built_index, folder)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exorag.cli", "serve", "--index", str(folder), "--port", str(port),
                             "--max-upload-mb", "5"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("exorag serve did not come up within 90 s")
        assert b"Add papers" in page and b"up to 5 MB each" in page
        result = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False).predict(EV_QUESTION, 8,
                                                                                          api_name="/ask")
        assert result["citations"]
        assert _listening_on(port) == {"127.0.0.1"}
        other = _other_address()
        if other:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                assert s.connect_ex((other, port)) != 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_upload_into_an_unwritable_folder_is_named(writable_index: Index, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the uploads folder should be", encoding="utf-8")
    settings = handlers.AppSettings(uploads=blocker / "uploads", downloads=tmp_path)
    rows = list(handlers.ingest_uploads(writable_index, [received("d", "n.txt", b"Exosomes carry CD9.\n")],
                                            settings))[-1]
    assert rows == [("n.txt", False, f"could not be saved into {blocker / 'uploads'}: Not a directory")]


def test_foreign_host_and_cross_origin_requests_are_refused(served: tuple[Index, object, str, object]) -> None:
    """DNS rebinding (a foreign Host) and another site's page (a foreign Origin) get 403; the page itself, same
    origin, works and carries a Content-Security-Policy that allows nothing from other hosts."""
    import urllib.error

    _, _, url, _ = served
    base = url.rstrip("/")
    port = urlparse(url).port

    def status(path: str, **headers: str) -> tuple[int, dict[str, str], str]:
        request = urllib.request.Request(base + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, dict(response.headers), response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read().decode("utf-8", "replace")

    code, headers, _ = status("/")
    assert code == 200
    policy = headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy and "img-src 'self' data: blob:" in policy
    assert "http:" not in policy and "*" not in policy
    code, _, body = status("/", Host="evil.example")
    assert code == 403 and "evil.example" in body
    code, _, body = status("/gradio_api/info", Origin="http://evil.example")
    assert code == 403 and "cross-origin" in body
    assert status("/gradio_api/info", Origin=f"http://127.0.0.1:{port}")[0] == 200
    assert status("/", Host=f"localhost:{port}")[0] == 200


def _raw_ask(url: str, data: list) -> tuple[str, object]:  # type: ignore[type-arg]
    """POST /gradio_api/call/ask as a raw HTTP caller would; (event name, its data)."""
    base = url.rstrip("/")
    request = urllib.request.Request(base + "/gradio_api/call/ask", data=json.dumps({"data": data}).encode(),
                                     headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(request, timeout=60).read())["event_id"]
    text = urllib.request.urlopen(f"{base}/gradio_api/call/ask/{event}", timeout=180).read().decode()
    name = re.findall(r"^event: (\w+)", text, re.MULTILINE)[-1]
    payload = json.loads(re.findall(r"^data: (.*)$", text, re.MULTILINE)[-1])
    return name, payload


def test_raw_api_callers_get_a_message_for_every_bad_input(served: tuple[Index, object, str, object]) -> None:
    """Wrong types from a raw HTTP caller (a number for the question, an object for a filter, a lone surrogate, an
    infinite year, too few inputs) each come back as a readable message, never an error with a null message."""
    _, _, url, _ = served
    cases = {
        "number question": ([123, 8, None, None, None, None, None], "Please type a question"),
        "object filter": (["exosomes", 8, None, None, {"a": 1}, None, None], "expected a list of text values"),
        "number filter": (["exosomes", 8, None, None, None, 5, None], "expected a list of text values"),
        "lone surrogate": (["exosomes \ud800 PD-L1", 8, None, None, None, None, None], "not valid text"),
        "infinite year": (["exosomes", 8, "inf", None, None, None, None], "is not a number"),
        "huge k": ([EV_QUESTION, 10**9, None, None, None, None, None], None),
    }
    for label, (data, expected) in cases.items():
        name, payload = _raw_ask(url, data)
        assert name == "complete", (label, payload)
        result = payload[0]  # type: ignore[index]
        if expected is None:
            assert len(result["citations"]) <= handlers.MAX_K, label
        else:
            assert expected in result["error"], (label, result)
    name, payload = _raw_ask(url, [EV_QUESTION])  # Gradio itself wants all 7 inputs: it says so
    assert name == "error" and "needed: 7, got: 1" in payload["error"]  # type: ignore[index]


# Issue 13 ("Page"): filters with counts, clear / retry, the active-filter line, source cards, the corpus tab.

HOSTILE_TITLE = "Vesicles <img src=x onerror=alert(1)> and ![x](http://e/x.png) in zebrafish"


def _no_tags() -> list[list[str]]:
    return [[] for _ in handlers.TAG_KEYS]


def test_panel_choices_are_counted_and_grouped_by_tag_key(index: Index) -> None:
    options = handlers.panel_choices(index)
    values = index.tag_values()
    assert list(options["tags"]) == list(handlers.TAG_KEYS)
    for key, choices in options["tags"].items():
        assert choices == [(f"{v.replace('_', ' ')} ({n:,})", v) for v, n in values.get(key, [])]
    assert options["tags"]["topic"][0] == (f"extracellular vesicle ({dict(values['topic'])['extracellular_vesicle']})",
                                           "extracellular_vesicle")
    assert ("pdf (1)", "pdf") in options["sources"] or ("pdf (2)", "pdf") in options["sources"]
    assert all(re.fullmatch(r".+ \(\d[\d,]*\)", label) for label, _ in options["sources"] + options["pub_types"])
    assert dict((v, label) for label, v in options["pub_types"])["Journal Article"].startswith("Journal Article (")
    # the panel's values: one list per tag key, joined into make_filters' "key=value" (the /ask API's form)
    tags = _no_tags()
    tags[handlers.TAG_KEYS.index("design")] = ["review", "in_vitro"]
    tags[handlers.TAG_KEYS.index("topic")] = ["extracellular_vesicle"]
    f = handlers.panel_filters("2012", "", ["pdf"], [], *tags)
    assert f == Filters(year_from=2012, sources=("pdf",), tags=(("topic", "extracellular_vesicle"),
                                                                 ("design", "review"), ("design", "in_vitro")))
    assert f == handlers.make_filters("2012", "", ["pdf"], [], ["topic=extracellular_vesicle", "design=review",
                                                                "design=in_vitro"])
    tags[handlers.TAG_KEYS.index("design")] = ["opinion"]
    with pytest.raises(handlers.FilterError, match="unknown value 'opinion' for design"):
        handlers.panel_filters(None, None, [], [], *tags)
    cleared = handlers.panel_cleared()
    assert len(cleared) == 4 + len(handlers.TAG_KEYS) and handlers.panel_filters(*cleared).empty
    reviews = dict(values["design"])["review"]
    assert index.count_documents(Filters(tags=(("design", "review"),))) == reviews
    assert index.count_documents() == index.counts()["documents"]


def test_active_filters_line(index: Index) -> None:
    total = index.count_documents()
    assert active_filters_html(Filters(), total, total) == (
        f"<p class='exorag-active-filters'><strong>No filters</strong>: searching all {total:,} documents.</p>")
    f = Filters(year_from=2015, sources=("a<b>",), tags=(("design", "review"), ("design", "in_vitro"),
                                                         ("species", "human")))
    line = active_filters_html(f, 7, total)
    assert ("Filters</strong>: years 2015–…; source: a&lt;b&gt;; tags: design=review or in_vitro, species=human "
            f"— 7 of {total:,} documents.") in line
    problem = active_filters_html(None, 0, 0, "the from year 'x' is not a number")
    assert "exorag-filter-problem" in problem and "the from year &#x27;x&#x27; is not a number" in problem


def test_retry_without_filters_only_when_filters_empty_the_evidence(index: Index) -> None:
    none_left = handlers.panel_filters("2990", "", [], [], *_no_tags())
    answer = handlers.run_question(index, EV_QUESTION, 8, none_left)
    assert answer.abstained and not answer.hits
    assert handlers.evidence_filtered_out(answer, none_left)
    reply = reply_markdown(answer, 1, none_left)
    assert "No passage passed the search and filters." in reply and reply.endswith("*Filters: years 2990–…*")
    unfiltered = handlers.run_question(index, EV_QUESTION, 8, Filters())
    assert not handlers.evidence_filtered_out(unfiltered, Filters())
    recent = Filters(year_from=2010)
    assert not handlers.evidence_filtered_out(handlers.run_question(index, EV_QUESTION, 8, recent), recent)
    assert not handlers.evidence_filtered_out(answer, Filters())  # an abstention without filters: nothing to retry

    claim = "Exosomes are extracellular vesicles of endosomal origin secreted by cells."
    filtered = handlers.check_draft(index, claim, 8, none_left)
    assert handlers.draft_filtered_out(filtered, none_left)
    page = draft_html(filtered, none_left)
    assert "Checked only against documents that pass the filters (years 2990–…)." in page
    assert "no supporting passage within the filters" in page
    free = handlers.check_draft(index, claim, 8, Filters())
    assert free[0].supported and not handlers.draft_filtered_out(free, Filters())
    assert "Checked only against" not in draft_html(free, Filters())

    # The page's handlers: the retry button is shown with that answer / draft, hidden otherwise.
    demo = app.build_app(index)
    fns = {getattr(f.fn, "__name__", ""): f.fn for f in demo.fns.values()}
    *_, last = fns["chat"](EV_QUESTION, [], [], 8, "2990", "", [], [], *_no_tags())
    assert last[10].visible is True and "No passage passed the search and filters" in last[0][-1]["content"]
    *_, last = fns["chat"](EV_QUESTION, [], [], 8, "", "", [], [], *_no_tags())
    assert last[10].visible is False and "**References**" in last[0][-1]["content"]
    html, retry = fns["draft"](claim, 8, "2990", "", [], [], *_no_tags())
    assert retry.visible is True and "Checked only against documents that pass the filters" in html
    html, retry = fns["draft"](claim, 8, "", "", [], [], *_no_tags())
    assert retry.visible is False and "1 of 1 sentences" in html


def _doc(**fields: object) -> Document:
    text = "Exosomes carry CD63 and CD81 on their surface in this test record."
    base = {"id": "x:1", "text": text, "sections": (Section("Abstract", 0, len(text)),), "title": "A title"}
    return Document(**{**base, **fields})  # type: ignore[arg-type]


def test_source_cards_link_identifiers_not_record_files() -> None:
    known = _doc(pmid="123", doi="10.1/x", pmcid="PMC9", journal="J Extracell Vesicles", year=2021,
                 origin="/data/exo_corpus/corpus.jsonl")
    html = links(known)
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/123/"' in html and ">PMID 123</a>" in html
    assert ">DOI 10.1/x</a>" in html and ">PMC9</a>" in html and "corpus.jsonl" not in html
    record = _doc(id="scifact:42", origin="/data/exo_corpus/corpus.jsonl")
    assert links(record) == "<span class='exorag-muted'>record scifact:42</span>"
    assert "corpus.jsonl" not in links(_doc(id="ris:1", origin="/papers/library.ris"))
    assert links(_doc(id="pdf:1", origin="/papers/Smith 2020.pdf")) == "<code>Smith 2020.pdf</code>"
    assert links(_doc(id="txt:1", origin="/notes/ev-notes.md")) == "<code>ev-notes.md</code>"
    chunk = Chunk(doc_id="x:1", ordinal=0, text=known.text, section="Abstract", page=None, char_start=0,
                  char_end=len(known.text), id=1)
    cit = Citation(n=1, document=known, quote=known.text[:20], section="Abstract", page=None, char_start=0,
                   char_end=20, score=0.9)
    card = answer_sources(Answer(question="q", text="x [1]", abstained=False, citations=(cit,),
                                 hits=(Hit(chunk=chunk, document=known, score=1.0),)), 1)
    assert "2021 · J Extracell Vesicles · Abstract" in card and "PMID 123" in card and "corpus.jsonl" not in card


def test_hostile_title_is_text_in_card_list_and_reply() -> None:
    doc = _doc(id="evil:1", title=HOSTILE_TITLE, journal="J <b>x</b>", year=2024, doi="10.1/evil",
               origin="/data/corpus.jsonl")
    chunk = Chunk(doc_id=doc.id, ordinal=0, text=doc.text, section="Abstract", page=None, char_start=0,
                  char_end=len(doc.text), id=1)
    cit = Citation(n=1, document=doc, quote=doc.text[:30], section="Abstract", page=None, char_start=0,
                   char_end=30, score=0.9)
    answer = Answer(question="q", text="x [1]", abstained=False, citations=(cit,),
                    hits=(Hit(chunk=chunk, document=doc, score=1.0),))
    card = answer_sources(answer, 1)
    row = {"id": doc.id, "title": doc.title, "year": 2024, "journal": doc.journal, "source": "s<i>",
           "pmid": "", "doi": doc.doi, "pmcid": ""}
    listing = documents_html(1, [row], "<img")
    for html in (card, listing):
        assert "<img" not in html and "<b>" not in html and "<i>" not in html
        assert esc(HOSTILE_TITLE) in html  # the title is there, as text
    assert "1 document matching “&lt;img”, newest first" in listing
    reply = reply_markdown(answer, 1, Filters())
    assert md_escape(HOSTILE_TITLE) in reply and "(http\\://e/x.png)" in reply  # not even a bare-URL link
    assert "<img" not in reply.replace("\\<img", "") and "![" not in reply.replace("\\!\\[", "")
    assert removal_choices([row])[0][1] == "evil:1"  # the picker's label is text for Gradio, the value the id


def test_document_search(index: Index) -> None:
    total, rows = handlers.find_documents(index, "")
    assert total == index.counts()["documents"] > handlers.DOCUMENTS_SHOWN == len(rows)
    assert f"The newest {len(rows)} of {total:,} documents" in documents_html(total, rows)
    docs = list(index.get_documents(i for i, _ in index.document_origins()).values())
    with_pmid = next(d for d in docs if d.pmid and d.title)
    with_doi = next(d for d in docs if d.doi and d.title)
    by = [(with_pmid, " ".join(with_pmid.title.split()[:3]).upper()), (with_pmid, with_pmid.id),
          (with_pmid, with_pmid.pmid), (with_doi, with_doi.doi), (with_doi, f"https://doi.org/{with_doi.doi}"),
          (with_doi, f"doi:{with_doi.doi.upper()}")]
    for doc, query in by:
        total, rows = handlers.find_documents(index, query)
        assert doc.id in [r["id"] for r in rows], query
    doc = with_pmid
    found = {r["id"]: r for r in handlers.find_documents(index, doc.id)[1]}[doc.id]
    assert (found["title"], found["year"], found["journal"], found["pmid"]) == (doc.title, doc.year, doc.journal,
                                                                                doc.pmid)
    page = documents_html(*handlers.find_documents(index, doc.id), doc.id)
    assert f"<code>{esc(doc.id)}</code>" in page and f"https://pubmed.ncbi.nlm.nih.gov/{doc.pmid}/" in page
    assert handlers.find_documents(index, "%_%") == (0, [])  # LIKE wildcards are literal
    assert handlers.find_documents(index, "30%")[0] == sum("30%" in d.title for d in docs)
    assert handlers.find_documents(index, "zzzz-no-such-words qqqq") == (0, [])


def test_remove_selected_documents_syncs_vectors_and_uploads(writable_index: Index, tmp_path: Path) -> None:
    from exorag.errors import ExoragError, NotFound
    from exorag.index.index import check

    index = writable_index
    settings = handlers.AppSettings(uploads=index.folder / "uploads", downloads=tmp_path)
    note = b"Exosomal CD47 from the exorag removal test protects vesicles from phagocytosis by macrophages.\n"
    rows = list(handlers.ingest_uploads(index, [received("rm", "removal note.txt", note)], settings))[-1]
    assert rows[0][1], rows
    uploaded = next(i for i, origin in index.document_origins() if origin.endswith("removal_note.txt"))
    other = next(i for i, origin in index.document_origins() if origin.endswith(".jsonl"))
    before = index.counts()["documents"]
    message = handlers.remove_selected(index, [uploaded, other, "nope:1"], settings)
    assert message.startswith(f"Removed 2 documents ({uploaded}, {other}) and ")
    assert "No document with id nope:1 (already removed?)." in message
    assert f"Deleted the uploaded file(s) removal_note.txt from {settings.uploads}." in message
    assert index.counts()["documents"] == before - 2
    for doc_id in (uploaded, other):
        with pytest.raises(NotFound):
            index.get_document(doc_id)
    assert check(index)["consistent"]  # the vectors went with the chunks (remove_documents syncs them)
    assert not (settings.uploads / "removal_note.txt").exists()
    assert not search(index, "CD47 exorag removal test phagocytosis", k=5) or \
        all(h.document.id != uploaded for h in search(index, "CD47 exorag removal test phagocytosis", k=5))
    with pytest.raises(ExoragError, match="select the documents to remove first"):
        handlers.remove_selected(index, ["", "  "], settings)
