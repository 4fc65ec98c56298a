"""`exorag fetch` against a loopback server that answers like NCBI E-utilities and Europe PMC.

The server (http.server in a thread on 127.0.0.1, a free port) serves the hand-written answers in tests/fixtures
in the documented formats; faults (429 with Retry-After, 503, truncated XML, hard 400s, entity bombs) are injected
per request. No test contacts the live services. The end-to-end test ingests into a real index with the real model.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from exorag.index import store
from exorag.cli import main
from exorag.errors import FetchError
from exorag.fetch import defaults, files, jats, xmlsafe
from exorag.fetch.europepmc import plain_abstract
from exorag.fetch.http import Client, public_url, retry_after
from exorag.fetch.ids import extract
from exorag.fetch.pubmed import api_key, fetch_pubmed, parse_articles
from exorag.index.index import open_index
from exorag.build.sources import jsonl as jsonl_reader

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
WEBENV = "MCID_6650d2f1a4c5b80b1e2c7d39"
CURSORS = {"*": "search_1.json", "AoIIQJxGsy0yOTcxMjQwNQ==": "search_2.json",
           "AoIIQJ0D4S0yOTcxNTU1OQ==": "search_3.json"}
PDF_QUERY = "pdf fallback"  # answered from search_pdf.json: OA papers without JATS whose listed PDFs the server has
OA_PDF = REPO / "tests" / "fixtures" / "pdfs" / "datta2010_dvt_prophylaxis_trauma_bmc_10.1186_1752-2897-4-1.pdf"

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    at: float
    path: str
    params: dict[str, str]


class FakeServices:
    """E-utilities under /eutils and Europe PMC under /epmc, from the fixtures; `fault` may override any answer."""

    def __init__(self) -> None:
        self.log: list[Seen] = []
        self.esearch = (FIXTURES / "pubmed" / "esearch.json").read_bytes()
        self.webenv = WEBENV
        text = (FIXTURES / "pubmed" / "efetch.xml").read_text(encoding="utf-8")
        self.articles = re.findall(r"<PubmedArticle>.*?</PubmedArticle>", text, re.DOTALL)
        self.head = text[: text.index("<PubmedArticle>")]
        self.results = [r for name in CURSORS.values()
                        for r in json.loads((FIXTURES / "europepmc" / name).read_text())["resultList"]["result"]]
        # fault(path, params, n) -> an answer, or None for the normal one; n counts earlier identical requests
        self.fault: Callable[[str, dict[str, str], int], Answer | None] | None = None
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(parts.query))
                n = sum(1 for s in fake.log if s.path == parts.path and s.params == params)
                fake.log.append(Seen(time.monotonic(), parts.path, params))
                status, headers, body = (fake.fault and fake.fault(parts.path, params, n)) or fake.answer(
                    parts.path, params)
                self.send_response(status)
                for name, value in {"Content-Type": "text/plain", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def efetch_xml(self, articles: list[str]) -> bytes:
        return (self.head + "\n".join(articles) + "\n</PubmedArticleSet>\n").encode("utf-8")

    def answer(self, path: str, params: dict[str, str]) -> Answer:
        if path == "/eutils/esearch.fcgi":
            return 200, {"Content-Type": "application/json"}, self.esearch
        if path == "/eutils/efetch.fcgi":
            if "id" in params:
                wanted = params["id"].split(",")
                chosen = [a for a in self.articles if re.search(r"<PMID[^>]*>(\d+)<", a).group(1) in wanted]
                return 200, {"Content-Type": "text/xml"}, self.efetch_xml(chosen)
            if params.get("WebEnv") != self.webenv:
                error = b'<?xml version="1.0"?>\n<eFetchResult><ERROR>Unable to obtain query #1</ERROR></eFetchResult>'
                return 200, {"Content-Type": "text/xml"}, error
            start, count = int(params["retstart"]), int(params["retmax"])
            return 200, {"Content-Type": "text/xml"}, self.efetch_xml(self.articles[start : start + count])
        if path == "/epmc/search":
            query, cursor = params["query"], params["cursorMark"]
            if query == PDF_QUERY:
                page = (FIXTURES / "europepmc" / "search_pdf.json").read_text().replace("{base}", self.url)
                return 200, {"Content-Type": "application/json"}, page.encode()
            if query.startswith(("DOI:", "PMCID:")):
                dois = {d.lower() for d in re.findall(r'DOI:"([^"]+)"', query)}
                pmcids = set(re.findall(r"PMCID:(PMC\d+)", query))
                hits = [] if cursor != "*" else [
                    r for r in self.results if r.get("doi", "").lower() in dois or r.get("pmcid") in pmcids]
                page = {"hitCount": len(hits), "nextCursorMark": "AoEnd", "resultList": {"result": hits}}
                return 200, {"Content-Type": "application/json"}, json.dumps(page).encode()
            return 200, {"Content-Type": "application/json"}, (FIXTURES / "europepmc" / CURSORS[cursor]).read_bytes()
        if path == "/pdf/PMC10000101.pdf" and params == {"download": "1"}:
            return 200, {"Content-Type": "application/pdf"}, OA_PDF.read_bytes()
        if path == "/pdf/PMC10000102.pdf":  # a PDF header, then garbage: pypdf cannot read it
            return 200, {"Content-Type": "application/pdf"}, b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
        match = re.fullmatch(r"/epmc/(PMC\d+)/fullTextXML", path)
        full_text = FIXTURES / "europepmc" / f"{match.group(1)}.xml" if match else None
        if full_text is not None and full_text.exists():
            return 200, {"Content-Type": "application/xml"}, full_text.read_bytes()
        return 404, {}, b'{"errCode":404,"errMsg":"not found"}'

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.log if s.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServices]:
    services = FakeServices()
    monkeypatch.setenv("EXORAG_EUTILS_URL", services.url + "/eutils")
    monkeypatch.setenv("EXORAG_EUROPEPMC_URL", services.url + "/epmc")
    monkeypatch.delenv("NCBI_API_KEY", raising=False)
    yield services
    services.close()


def jsonl(folder: Path, kind: str = "pubmed") -> Path:
    found = sorted(folder.glob(f"{kind}-*.jsonl"))
    assert len(found) == 1, found
    return found[0]


def pmids(path: Path) -> list[str]:
    return [r["pmid"] for r in files.read_records(path)]


def fetch(out: Path, *extra: str) -> int:
    return main(["fetch", "pubmed", "exosomes", "--out", str(out), "--no-ingest", *extra])


# ------------------------------------------------------------------------------------------- PubMed XML


def test_efetch_xml_becomes_exo_corpus_records() -> None:
    records = {r["pmid"]: r for r in parse_articles((FIXTURES / "pubmed" / "efetch.xml").read_bytes(), "fixture")}
    first = records["39000001"]
    assert first["id"] == "pmid:39000001" and first["source"] == "pubmed"
    assert first["title"] == "Tumour-derived exosomal PD-L1 suppresses CD8⁺ T cells in vivo."
    assert first["abstract"].startswith("BACKGROUND: Tumour cells release exosomes that carry PD-L1 on their surface")
    assert [line.split(":")[0] for line in first["abstract"].split("\n")] == ["BACKGROUND", "METHODS", "RESULTS",
                                                                              "CONCLUSIONS"]
    assert first["authors"] == ["Müller A", "Ødegaard KM", "EV-TRACK Consortium"]
    assert first["journal"] == "J Extracell Vesicles" and first["year"] == 2024
    assert first["doi"] == "10.1002/jev2.12401"  # the article's, not the reference list's
    assert first["pmcid"] == "PMC10000001"
    assert first["mesh"] == ["Exosomes", "B7-H1 Antigen", "CD8-Positive T-Lymphocytes"]
    assert "Journal Article" in first["publication_types"] and first["erratum_in"] == ["39000003"]
    assert "no_abstract" not in first

    comment = records["39000002"]
    assert comment["year"] == 2019  # MedlineDate "2019 Nov-Dec"
    assert comment["journal"] == "Nordic journal of vesicle research"  # no ISOAbbreviation: the Title
    assert comment["doi"] == "10.1234/njvr.2019.0601"  # from ELocationID
    assert comment["abstract"] == "" and comment["no_abstract"] is True
    assert comment["authors"] == ["Ødegaard K", "Nakamura Sōta"]  # no Initials: the ForeName

    erratum = records["39000003"]
    assert erratum["erratum"] is True and erratum["erratum_for"] == ["39000001"] and erratum["no_abstract"] is True
    assert records["39000005"]["doi"] == "" and records["39000005"]["authors"] == ["O'Brien S"]


XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE PubmedArticleSet [\n  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
       b"<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article><ArticleTitle>&xxe;"
       b"</ArticleTitle></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>")
LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
          + b"".join(b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                     for i in range(1, 10))
          + b"]>\n<lolz>&lol9;</lolz>")


@pytest.mark.parametrize("payload", [XXE, LAUGHS], ids=["external-entity", "billion-laughs"])
def test_xml_entities_are_never_expanded(payload: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="entities"):
        xmlsafe.parse(payload, "efetch batch 1")
    assert time.monotonic() - started < 1


def test_undeclared_entity_and_truncation_are_parse_errors_not_expansions() -> None:
    with pytest.raises(FetchError, match="not well-formed"):
        xmlsafe.parse(b"<a>&xxe;</a>", "answer")
    with pytest.raises(FetchError, match="truncated"):
        xmlsafe.parse((FIXTURES / "pubmed" / "efetch.xml").read_bytes()[:3000], "answer")
    root = xmlsafe.parse(b'<!DOCTYPE a PUBLIC "-//X//EN" "http://example.invalid/a.dtd"><a>&#246;&amp;</a>', "ok")
    assert root.text == "ö&"  # an external DTD is named, never fetched; character references still work


def test_entity_bomb_served_as_a_batch_fails_that_batch(fake: FakeServices, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    fake.fault = lambda path, params, n: (200, {}, LAUGHS) if params.get("retstart") == "0" else None
    assert fetch(tmp_path, "--max", "4", "--batch", "2") == 1
    err = capsys.readouterr().err
    assert "batch 1/2" in err and "entities" in err and "Traceback" not in err
    assert pmids(jsonl(tmp_path)) == ["39000003", "39000004"]


# ------------------------------------------------------------------------------------------- PubMed fetch


def test_pubmed_batches_retry_429_and_503_and_keep_flags(fake: FakeServices, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    def fault(path: str, params: dict[str, str], n: int) -> Answer | None:
        if params.get("retstart") == "0" and n == 0:
            return 429, {"Retry-After": "1"}, b'{"error":"API rate limit exceeded"}'
        if params.get("retstart") == "2" and n == 0:
            return 503, {}, b"Service Unavailable"
        return None

    fake.fault = fault
    assert fetch(tmp_path, "--max", "5", "--batch", "2") == 0
    out = capsys.readouterr().out
    assert "5 found; 5 records" in out and "2 without abstract (metadata only)" in out and "1 errata" in out

    search = fake.requests("/eutils/esearch.fcgi")[0].params
    assert search["usehistory"] == "y" and search["term"] == "exosomes" and search["db"] == "pubmed"
    efetches = fake.requests("/eutils/efetch.fcgi")
    assert [(s.params["retstart"], s.params["retmax"]) for s in efetches] == [
        ("0", "2"), ("0", "2"), ("2", "2"), ("2", "2"), ("4", "1")]
    assert all(s.params["WebEnv"] == WEBENV and s.params["query_key"] == "1" and s.params["rettype"] == "abstract"
               and s.params["retmode"] == "xml" for s in efetches)
    assert efetches[1].at - efetches[0].at >= 0.95  # Retry-After: 1 honoured
    assert efetches[3].at - efetches[2].at >= 0.95  # backoff after 503

    path = jsonl(tmp_path)
    assert pmids(path) == ["39000001", "39000002", "39000003", "39000004", "39000005"]
    state = json.loads(path.with_name(path.name.replace(".jsonl", ".state.json")).read_text())
    assert state["done"] == [1, 2, 3] and state["webenv"] == WEBENV and state["count"] == 5


def test_requests_are_at_least_a_third_of_a_second_apart_without_key(fake: FakeServices, tmp_path: Path) -> None:
    assert fetch(tmp_path, "--max", "5", "--batch", "2", "--since", "2020", "-q") == 0
    search = fake.requests("/eutils/esearch.fcgi")[0].params
    assert (search["mindate"], search["datetype"]) == ("2020", "pdat")
    times = [s.at for s in fake.log]
    assert len(times) == 4  # esearch + 3 batches
    assert min(b - a for a, b in zip(times, times[1:])) >= 1 / 3 - 0.005


def test_api_key_is_sent_but_never_stored(fake: FakeServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert fetch(tmp_path, "--max", "2", "--batch", "2", "--api-key", "sekret123", "-q") == 0
    assert all(s.params.get("api_key") == "sekret123" for s in fake.log)
    monkeypatch.setenv("NCBI_API_KEY", "from-env")
    assert api_key() == "from-env" and api_key("flag") == "flag"
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or b"sekret123" not in path.read_bytes()
    assert "sekret123" not in public_url(fake.url + "/eutils/efetch.fcgi?api_key=sekret123&db=pubmed")


def test_truncated_batch_is_named_and_the_others_are_written(fake: FakeServices, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    def truncated(path: str, params: dict[str, str], n: int) -> Answer | None:
        if params.get("retstart") == "2":
            return 200, {"Content-Type": "text/xml"}, fake.efetch_xml(fake.articles[2:4])[:-400]
        return None

    fake.fault = truncated
    assert fetch(tmp_path, "--max", "5", "--batch", "2") == 1
    err = capsys.readouterr().err
    assert "PubMed efetch batch 2/3 (records 3-4)" in err and "not well-formed XML" in err
    assert "Traceback" not in err and "run the same command again" in err
    assert pmids(jsonl(tmp_path)) == ["39000001", "39000002", "39000005"]
    assert len(list((tmp_path / "raw").rglob("*.xml"))) == 2  # the truncated answer is not cached


def test_resume_fetches_only_the_missing_batch(fake: FakeServices, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    fake.fault = lambda path, params, n: (400, {}, b"Bad Request") if params.get("retstart") == "2" else None
    assert fetch(tmp_path, "--max", "4", "--batch", "2") == 1
    assert pmids(jsonl(tmp_path)) == ["39000001", "39000002"]
    assert "HTTP 400" in capsys.readouterr().err

    fake.fault, fake.log = None, []
    assert fetch(tmp_path, "--max", "4", "--batch", "2") == 0
    assert [(s.path, s.params.get("retstart")) for s in fake.log] == [("/eutils/efetch.fcgi", "2")]
    assert pmids(jsonl(tmp_path)) == ["39000001", "39000002", "39000003", "39000004"]  # no duplicates

    fake.log = []
    assert fetch(tmp_path, "--max", "4", "--batch", "2") == 0
    assert fake.log == [] and "already complete" in capsys.readouterr().out

    # without the state and the JSONL, a re-run searches again but reads every batch from the raw cache
    for path in tmp_path.glob("pubmed-*"):
        path.unlink()
    assert fetch(tmp_path, "--max", "4", "--batch", "2") == 0
    assert [s.path for s in fake.log] == ["/eutils/esearch.fcgi"]
    assert len(pmids(jsonl(tmp_path))) == 4


def test_expired_history_is_searched_again(fake: FakeServices, tmp_path: Path) -> None:
    assert fetch(tmp_path, "--max", "4", "--batch", "2", "-q") == 0
    fake.webenv, fake.log = "MCID_new", []
    fake.esearch = fake.esearch.replace(WEBENV.encode(), b"MCID_new")
    report = fetch_pubmed("exosomes", max_records=5, out=tmp_path, batch_size=2)  # one more batch is wanted
    assert not report.failures and report.written == 5
    assert [s.path for s in fake.log] == ["/eutils/efetch.fcgi", "/eutils/esearch.fcgi", "/eutils/efetch.fcgi"]


def test_empty_search_says_so_and_exits_0(fake: FakeServices, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    fake.esearch = (FIXTURES / "pubmed" / "esearch_empty.json").read_bytes()
    index = tmp_path / "idx"
    assert main(["fetch", "pubmed", "xyzzyexosomeplugh", "--out", str(tmp_path), "--index", str(index)]) == 0
    assert "no results" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.jsonl")) and not index.exists()
    assert fake.requests("/eutils/efetch.fcgi") == []


def test_search_error_is_a_clear_message(fake: FakeServices, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    fake.esearch = b'{"header":{"type":"esearch","version":"0.3"},"esearchresult":{"ERROR":"Invalid query"}}'
    assert fetch(tmp_path) == 1
    assert "error: PubMed search for 'exosomes' failed: Invalid query" in capsys.readouterr().err


@pytest.mark.parametrize(("source", "service"), [("pubmed", "NCBI E-utilities"), ("europepmc", "Europe PMC")])
def test_offline_is_a_clear_error_without_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], source: str,
                                                    service: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("EXORAG_EUTILS_URL", f"http://127.0.0.1:{port}/eutils")
    monkeypatch.setenv("EXORAG_EUROPEPMC_URL", f"http://127.0.0.1:{port}/epmc")
    started = time.monotonic()
    assert main(["fetch", source, "exosomes", "--out", str(tmp_path), "--no-ingest", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"error: cannot reach {service}" in err and "exorag ingest" in err and "Traceback" not in err
    assert time.monotonic() - started < 5  # no retries when there is no connection at all


def test_retry_after_and_client_timeout() -> None:
    assert retry_after("7") == 7.0 and retry_after(None) is None and retry_after("soon") is None
    assert 0 <= retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.001  # a date in the past: go now
    assert Client("x", "http://127.0.0.1:9", 0.0).timeout > 0


# ------------------------------------------------------------------------------------------- Europe PMC


def test_europepmc_follows_cursor_and_adds_jats_sections(fake: FakeServices, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fetch", "europepmc", "exosomal PD-L1", "--fulltext", "--out", str(tmp_path), "--no-ingest"]
    assert main([*argv, "--max", "2"]) == 0  # the first page only
    searches = fake.requests("/epmc/search")
    assert [(s.params["cursorMark"], s.params["pageSize"]) for s in searches] == [("*", "2")]
    assert searches[0].params["resultType"] == "core" and searches[0].params["format"] == "json"
    assert [s.path for s in fake.log if "fullTextXML" in s.path] == ["/epmc/PMC10000001/fullTextXML"]  # OA only

    fake.log = []
    assert main([*argv, "--max", "10"]) == 0  # resumes from the recorded cursor
    assert [s.params["cursorMark"] for s in fake.requests("/epmc/search")] == [
        "AoIIQJxGsy0yOTcxMjQwNQ==", "AoIIQJ0D4S0yOTcxNTU1OQ=="]
    assert "3 found; 3 records" in capsys.readouterr().out

    records = {r["id"]: r for r in files.read_records(jsonl(tmp_path, "europepmc"))}
    assert list(records) == ["pmid:39000001", "pmid:39000006", "pmcid:PMC10000002"]
    paper = records["pmid:39000001"]
    assert paper["source"] == "europepmc" and paper["authors"] == ["Müller A", "Ødegaard KM", "EV-TRACK Consortium"]
    assert paper["abstract"].startswith("Background: Tumour cells release") and "& suppressed" in paper["abstract"]
    headings = [s["heading"] for s in paper["sections"]]
    assert headings == ["Body", "Introduction", "Results", "Results / Exosomal PD-L1 suppresses T cells",
                        "Results / Exosomal PD-L1 suppresses T cells / Blocking antibodies", "Conclusions"]
    body = json.dumps(paper["sections"])
    assert "Chen G" not in body and "flow cytometry core" not in body and "Proliferation of T cells exposed" not in body
    assert "sections" not in records["pmid:39000006"]  # not open access: no full-text request
    assert records["pmcid:PMC10000002"]["fulltext_note"] == "no full text at Europe PMC"  # 404

    fake.log = []
    assert main([*argv, "--max", "10"]) == 0 and fake.log == []  # complete: nothing asked again


def test_europepmc_falls_back_to_the_oa_pdf_without_jats(fake: FakeServices, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fetch", "europepmc", PDF_QUERY, "--fulltext", "--out", str(tmp_path), "--no-ingest"]
    assert main(argv) == 0  # an unreadable PDF is a note, not a failure
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert sorted(s.path for s in fake.log if "fullTextXML" in s.path) == [
        "/epmc/PMC10000101/fullTextXML", "/epmc/PMC10000102/fullTextXML"]  # JATS first; both 404
    assert [s.path for s in fake.requests("/pdf/paywalled.pdf")] == []  # only OA PDFs are fetched
    assert len(fake.requests("/pdf/PMC10000101.pdf")) == 1 and len(fake.requests("/pdf/PMC10000102.pdf")) == 1

    records = {r["id"]: r for r in files.read_records(jsonl(tmp_path, "europepmc"))}
    paper = records["pmid:39000101"]
    assert paper["fulltext_source"] == "pdf" and "fulltext_note" not in paper
    headings = [s["heading"] for s in paper["sections"]]
    assert "Introduction" in headings and "Methods" in headings and len(headings) == len(set(headings))
    assert "References" not in headings and "Competing interests" not in headings  # indexed=False spans left out
    assert "thrombo" in json.dumps(paper["sections"]).lower()
    assert paper["abstract"].startswith("Background: Trauma patients")
    assert (tmp_path / "pdf" / "PMC10000101.pdf").read_bytes() == OA_PDF.read_bytes()

    broken = records["pmid:39000102"]
    assert "sections" not in broken and "fulltext_source" not in broken
    assert broken["abstract"] == "Exosomes were isolated by ultracentrifugation."
    assert broken["fulltext_note"].startswith("no full text at Europe PMC; PDF not usable (not a readable PDF")
    assert not (tmp_path / "pdf" / "PMC10000102.pdf").exists()  # an unreadable PDF is not kept
    assert list((tmp_path / "pdf").iterdir()) == [tmp_path / "pdf" / "PMC10000101.pdf"]  # no temp files left

    fake.log = []
    assert main([*argv, "--refresh"]) == 0  # searches again; the saved PDF is read, not downloaded
    assert fake.requests("/pdf/PMC10000101.pdf") == []
    again = {r["id"]: r for r in files.read_records(jsonl(tmp_path, "europepmc"))}
    assert again["pmid:39000101"]["sections"] == paper["sections"]
    assert again["pmid:39000101"]["fulltext_source"] == "pdf"


def test_jats_full_text_is_marked_as_such(fake: FakeServices, tmp_path: Path) -> None:
    assert main(["fetch", "europepmc", "exosomal PD-L1", "--fulltext", "--out", str(tmp_path), "--no-ingest",
                 "--max", "2"]) == 0
    records = {r["id"]: r for r in files.read_records(jsonl(tmp_path, "europepmc"))}
    assert records["pmid:39000001"]["fulltext_source"] == "jats"
    assert not (tmp_path / "pdf").exists()  # no PDF listed, none fetched

def test_jats_captions_on_request_and_abstract_html() -> None:
    data = (FIXTURES / "europepmc" / "PMC10000001.xml").read_bytes()
    abstract, sections = jats.parse_fulltext(data, "PMC10000001", captions=True)
    assert abstract == ("Background: Tumour cells release exosomes that carry PD-L1 on their surface.\n"
                        "Results: Exosomal PD-L1 suppressed CD8⁺ T cells.")
    assert "Figure 1. Proliferation of T cells exposed to exosomes." in sections[3]["text"]
    assert plain_abstract("<h4>Methods</h4><p>A &lt; B</p><p>C<sub>2</sub></p>") == "Methods: A < B\nC₂"


# ------------------------------------------------------------------------------------------- inline markup

MARKUP_ABSTRACT = ("METHODS: Each mL of plasma held 2.36 × 10³ to 1.2 × 10⁻⁴ particles; Fe²⁺ and H₂O₂ were measured, "
                   "and the IC₅₀ was read at t_(1/2).\n"
                   "RESULTS: HUBC-Exo^(si-MFG-E8) lowered the K_d of PD-L1 on CD8⁺ T cells and Treg cells (10^a).")


def test_pubmed_sub_and_superscripts_are_kept_through_fetch_and_jsonl(fake: FakeServices, tmp_path: Path) -> None:
    markup_xml = (FIXTURES / "pubmed" / "efetch_markup.xml").read_bytes()
    fake.fault = lambda path, params, n: (200, {"Content-Type": "text/xml"}, markup_xml) \
        if path == "/eutils/efetch.fcgi" else None
    assert fetch(tmp_path, "--max", "1") == 0
    [record] = files.read_records(jsonl(tmp_path))
    assert record["title"] == "g-C₃N₄ nanosheets load CD8⁺ T cell-derived exosomes in vitro."
    assert record["abstract"] == MARKUP_ABSTRACT
    [document] = list(jsonl_reader.read(jsonl(tmp_path)))  # what ingest stores
    assert document.title == record["title"] and document.text == MARKUP_ABSTRACT


def test_europepmc_abstract_html_and_jats_keep_sub_and_superscripts(fake: FakeServices, tmp_path: Path) -> None:
    result = {"id": "39000011", "source": "MED", "pmid": "39000011", "pmcid": "PMC10000011", "isOpenAccess": "Y",
              "title": "g-C<sub>3</sub>N<sub>4</sub> nanosheets and CD8<sup>+</sup> T cells",
              "abstractText": "<h4>Results</h4>Plasma held 10<sup>3</sup> EVs per <i>&#956;</i>L; "
                              "10<sup>&#8722;2</sup>-fold &amp; C<sub>3</sub>N<sub>4</sub> (10<sup>th</sup>)."}
    page = json.dumps({"hitCount": 1, "nextCursorMark": "AoEnd", "resultList": {"result": [result]}}).encode()
    fake.fault = lambda path, params, n: (200, {"Content-Type": "application/json"}, page) \
        if path == "/epmc/search" else None
    assert main(["fetch", "europepmc", "markup", "--fulltext", "--out", str(tmp_path), "--no-ingest",
                 "--max", "1"]) == 0
    [record] = files.read_records(jsonl(tmp_path, "europepmc"))
    assert record["title"] == "g-C₃N₄ nanosheets and CD8⁺ T cells"
    assert record["abstract"] == "Results: Plasma held 10³ EVs per μL; 10⁻²-fold & C₃N₄ (10^th)."
    assert record["fulltext_source"] == "jats"
    assert record["sections"] == [{
        "heading": "Results of the C₃N₄ assay",
        "text": "Exosomes (10⁹ per mL) carried PD-L1 to CD8⁺ T cells [1], and the Vₘₐₓ of cd63 uptake rose "
                "10⁻²-fold.\n\nThe IL-1_β level and the K_d of xⁿ were unchanged."}]
    abstract, _ = jats.parse_fulltext((FIXTURES / "europepmc" / "PMC10000011.xml").read_bytes(), "PMC10000011")
    assert abstract == "Plasma held 10³ EVs per μL and Ca²⁺ rose."


# ------------------------------------------------------------------------------------------- identifiers


def test_identifiers_are_extracted_from_a_reference_list() -> None:
    found = extract((FIXTURES / "references.txt").read_text(encoding="utf-8"))
    assert found.pmids == ["39000001", "39000004", "39000005", "39999999"]
    assert found.pmcids == ["PMC10000001", "PMC10000002"]
    assert found.dois == ["10.1002/jev2.12401", "10.3390/cancers16010002", "10.1016/S0140-6736(20)30183-5"]
    assert extract("10.1038/nature12345\n12345678\n2024;13(4):e12401").pmids == ["12345678"]  # not DOI digits


def test_fetch_ids_uses_efetch_for_pmids_and_europepmc_for_dois(fake: FakeServices, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fetch", "ids", str(FIXTURES / "references.txt"), "--out", str(tmp_path), "--no-ingest"]) == 0
    captured = capsys.readouterr()
    assert fake.requests("/eutils/efetch.fcgi")[0].params["id"] == "39000001,39000004,39000005,39999999"
    queries = [s.params["query"] for s in fake.requests("/epmc/search") if s.params["cursorMark"] == "*"]
    assert queries == ['DOI:"10.1002/jev2.12401" OR DOI:"10.3390/cancers16010002" OR '
                       'DOI:"10.1016/S0140-6736(20)30183-5"', "PMCID:PMC10000001 OR PMCID:PMC10000002"]
    records = {r["id"]: r for r in files.read_records(jsonl(tmp_path, "ids"))}
    assert set(records) == {"pmid:39000001", "pmid:39000004", "pmid:39000005", "pmcid:PMC10000002"}
    assert records["pmid:39000001"]["source"] == "pubmed"  # PubMed's record wins over Europe PMC's
    assert "not found: PMID 39999999, DOI 10.1016/S0140-6736(20)30183-5" in captured.err


# ------------------------------------------------------------------------------------------- default list


def test_default_source_list_is_versioned_and_covers_the_field() -> None:
    version, sources = defaults.load(REPO / "corpus" / "default_sources.json")
    assert version >= 1 and len(sources) >= 7
    names = " ".join(s.name for s in sources)
    for topic in ("immunotherapy", "tumour-derived", "dendritic", "pd-l1", "liquid-biopsy", "drug-delivery",
                  "isolation"):
        assert topic in names
    assert all(s.max > 0 and "[tiab]" in s.query for s in sources)
    assert "/corpus/fetched/" in (REPO / ".gitignore").read_text().split()  # fetched files stay out of git


def test_fetch_default_runs_every_query_in_the_list(fake: FakeServices, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps({"version": 3, "sources": [
        {"name": "pd-l1", "query": "exosomal PD-L1", "max": 2}, {"name": "dex", "query": "dexosomes", "max": 1}]}))
    out = tmp_path / "out"
    assert main(["fetch", "default", "--sources", str(sources), "--out", str(out), "--no-ingest", "-q"]) == 0
    assert [s.params["term"] for s in fake.requests("/eutils/esearch.fcgi")] == ["exosomal PD-L1", "dexosomes"]
    assert sorted(len(files.read_records(p)) for p in out.glob("pubmed-*.jsonl")) == [1, 2]
    assert "v3" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- end to end


def test_fetch_pubmed_ingests_into_a_real_index(fake: FakeServices, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "idx"
    assert main(["fetch", "pubmed", "exosomes", "--max", "5", "--out", str(tmp_path / "out"),
                 "--index", str(index), "-q"]) == 0
    out = capsys.readouterr().out
    assert "ingested 3 documents (added 3" in out and "skipped 2 without abstract (metadata only), failed 0" in out

    opened = open_index(index)
    try:
        doc = opened.get_document("pmid:39000001")
        assert doc.authors == ("Müller A", "Ødegaard KM", "EV-TRACK Consortium") and doc.year == 2024
        assert doc.pmcid == "PMC10000001" and doc.source == "pubmed" and doc.text.startswith("BACKGROUND: ")
        assert opened.counts()["documents"] == 3
    finally:
        opened.close()
    assert main(["search", "exosomal PD-L1 suppresses CD8 T cells in the lymph node", "--index", str(index),
                 "-k", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["doc_id"] == "pmid:39000001"
