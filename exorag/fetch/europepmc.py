"""Europe PMC: REST search (resultType=core, cursorMark paging) and, on request, JATS full text of OA articles.

`fetch_europepmc` follows `nextCursorMark` until the results end or `max_records` are in, merging each page into the
JSONL and recording the next cursor in the state file, so an interrupted fetch resumes with the next page. With
`fulltext`, every open-access result with a PMCID also gets `/{PMCID}/fullTextXML`, parsed into `sections` (jats.py);
full texts are cached under raw/. When the JATS is unavailable (404, an error, not XML) but the result lists an
open-access PDF (`fullTextUrlList`, documentStyle "pdf", availability OA), that PDF is downloaded through the same
client (rate limit, retries, timeout; at most 50 MB; must start with %PDF) into `pdf/<PMCID or id>.pdf` (temp file +
rename, reused on later runs), read with exorag.build.sources.pdf, and its indexed sections become `sections`;
`fulltext_source` says "jats" or "pdf". A PDF that cannot be read (and is then not kept) or a paper with neither
leaves the record with its abstract only and a `fulltext_note` saying why.
Records use the exo_corpus schema with `source: "europepmc"` and the id `pmid:N` when PubMed knows the paper (so a
paper fetched from both services is one document), else `pmcid:PMC...`, else `doi:...`.
Deliberately left out: preprint full texts, Europe PMC's own `?pdf=render` URLs (only listed PDF URLs are used),
and citations / references endpoints.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from exorag.errors import FetchError, ParseError, ServiceUnreachable
from exorag.build.sources import pdf as pdf_reader
from exorag.fetch import FetchReport, Progress, markup, say, summarise
from exorag.fetch.files import DEFAULT_OUT, RawCache, cached, merge_records, read_state, stem, write_state
from exorag.files import write_atomic
from exorag.fetch.http import Client, HttpStatus, europepmc
from exorag.fetch.jats import parse_fulltext

SERVICE = "Europe PMC"
PAGE = 100  # the API allows up to 1000 per page
MAX_PDF_BYTES = 50 * 1024 * 1024


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [str(value)] if str(value).strip() else []
    if isinstance(value, list):
        return [str(v).strip() for v in value if isinstance(v, (str, int)) and str(v).strip()]
    return []


_HEADING = re.compile(r"<h[1-6][^>]*>(.*?)</h[1-6]>\s*(?:<p(?:\s[^>]*)?>)?", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"</?p(?:\s[^>]*)?>|<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


def plain_abstract(text: str) -> str:
    """Europe PMC's abstract HTML as plain text: "<h4>Background</h4>..." -> "Background: ...", one line each;
    sub/superscripts as `markup.tags_to_text` gives them ("10<sup>3</sup>" -> "10³"), other tags dropped."""
    text = _HEADING.sub(lambda m: "\n" + _TAG.sub("", m.group(1)).strip().rstrip(":") + ": ", text or "")
    text = _TAG.sub("", markup.tags_to_text(_BREAK.sub("\n", text), entities=True))
    lines = (" ".join(line.split()) for line in html.unescape(text).split("\n"))
    return "\n".join(line for line in lines if line)


def _author(author: dict[str, Any]) -> str:
    if author.get("collectiveName"):
        return str(author["collectiveName"]).strip()
    last, initials = str(author.get("lastName") or "").strip(), str(author.get("initials") or "").strip()
    if last:
        return f"{last} {initials or str(author.get('firstName') or '').strip()}".strip()
    return str(author.get("fullName") or "").strip()


def result_record(result: dict[str, Any]) -> dict[str, Any]:
    """One `resultType=core` result as an exo_corpus record."""
    pmid = str(result.get("pmid") or "").strip()
    pmcid = str(result.get("pmcid") or "").strip().upper()
    doi = str(result.get("doi") or "").strip()
    record_id = (f"pmid:{pmid}" if pmid else f"pmcid:{pmcid}" if pmcid else f"doi:{doi.lower()}" if doi
                 else f"europepmc:{result.get('source', '')}:{result.get('id', '')}")
    info = result.get("journalInfo") or {}
    journal = info.get("journal") or {}
    authors = [a for a in (_author(x) for x in (result.get("authorList") or {}).get("author") or []
                           if isinstance(x, dict)) if a]
    if not authors and result.get("authorString"):
        authors = [a.strip() for a in str(result["authorString"]).rstrip(".").split(",") if a.strip()]
    year_text = str(result.get("pubYear") or info.get("yearOfPublication") or "")
    abstract = plain_abstract(str(result.get("abstractText") or ""))
    record: dict[str, Any] = {
        "id": record_id, "pmid": pmid, "doi": doi, "pmcid": pmcid,
        "title": plain_abstract(str(result.get("title") or "")).replace("\n", " "),
        "abstract": abstract,
        "year": int(year_text) if year_text.isdigit() else None,
        "journal": str(journal.get("isoabbreviation") or journal.get("medlineAbbreviation") or journal.get("title")
                       or result.get("journalTitle") or (result.get("bookOrReportDetails") or {}).get("publisher")
                       or ""),
        "authors": authors,
        "mesh": [str(m["descriptorName"]) for m in (result.get("meshHeadingList") or {}).get("meshHeading") or []
                 if isinstance(m, dict) and m.get("descriptorName")],
        "keywords": _str_list((result.get("keywordList") or {}).get("keyword")),
        "publication_types": _str_list((result.get("pubTypeList") or {}).get("pubType")),
        "source": "europepmc",
        "open_access": result.get("isOpenAccess") == "Y",
    }
    if not abstract:
        record["no_abstract"] = True
    if any(t.lower() in ("published erratum", "erratum") for t in record["publication_types"]):
        record["erratum"] = True
    return record


def search_page(
    client: Client, query: str, cursor: str, page_size: int, cache: RawCache | None = None
) -> dict[str, Any]:
    """One page of `/search` (core results); the parsed JSON. With `cache`, a repeated page is read from disk."""
    params = {"query": query, "format": "json", "resultType": "core", "cursorMark": cursor, "pageSize": page_size}
    what = f"Europe PMC search page (cursor {cursor[:24]})"

    def parse(data: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise FetchError(f"{what}: the answer is not JSON (truncated?): {data[:80]!r}") from None
        if not isinstance(payload, dict) or "resultList" not in payload:
            message = payload.get("errMsg") if isinstance(payload, dict) else None
            raise FetchError(f"{what}: unexpected answer{': ' + str(message) if message else ''}")
        return payload

    if cache is None:
        return parse(client.get("search", params))
    return cached(cache, SERVICE, "search", params, "json", client.get, parse)[0]


def search(client: Client, query: str, max_records: int, cursor: str = "*", page_size: int = PAGE,
           cache: RawCache | None = None) -> Iterator[tuple[list[dict[str, Any]], str, int]]:
    """Pages of (raw results, next cursor, hitCount) until the results end or `max_records` results are given."""
    given = 0
    while given < max_records:
        payload = search_page(client, query, cursor, min(page_size, max_records - given), cache)
        results = [r for r in (payload.get("resultList") or {}).get("result") or [] if isinstance(r, dict)]
        results = results[: max_records - given]
        following = str(payload.get("nextCursorMark") or "")
        given += len(results)
        exhausted = not results or not following or following == cursor
        yield results, ("" if exhausted else following), int(payload.get("hitCount") or 0)
        if exhausted:
            return
        cursor = following


def pdf_urls(result: dict[str, Any]) -> list[str]:
    """The open-access PDF URLs a `resultType=core` result lists in `fullTextUrlList` (in the listed order)."""
    urls = []
    for entry in (result.get("fullTextUrlList") or {}).get("fullTextUrl") or []:
        if not isinstance(entry, dict) or str(entry.get("documentStyle") or "").lower() != "pdf":
            continue
        open_access = (str(entry.get("availabilityCode") or "").upper() == "OA"
                       or str(entry.get("availability") or "").lower() == "open access")
        url = str(entry.get("url") or "").strip()
        if open_access and url.lower().startswith(("http://", "https://")) and url not in urls:
            urls.append(url)
    return urls


def _pdf_sections(path: Path) -> list[dict[str, str]]:
    """The indexed sections of a PDF as {heading, text}, consecutive spans of one heading joined; ParseError."""
    document = pdf_reader.read_document(path)
    out: list[dict[str, str]] = []
    for section in document.sections:
        text = document.text[section.start : section.end].strip()
        if not section.indexed or not text:
            continue
        if out and out[-1]["heading"] == section.heading:
            out[-1]["text"] += "\n\n" + text
        else:
            out.append({"heading": section.heading, "text": text})
    return out


def _download_pdf(client: Client, url: str) -> bytes:
    """The body of `url` through a copy of `client` (same service limiter, timeout, retries).

    FetchError when the download fails; ParseError when what came is no PDF or too large. The size is checked once
    the body is in (the client reads whole answers).
    """
    head, _, tail = url.partition("?")
    base, _, last = head.rpartition("/")
    one = dataclasses.replace(client, base_url=base, requests=0)
    try:
        data = one.get(last + ("?" + tail if tail else ""))
    finally:
        client.requests += one.requests
    if len(data) > MAX_PDF_BYTES:
        raise ParseError(url, f"larger than {MAX_PDF_BYTES // (1024 * 1024)} MB")
    if not data.startswith(b"%PDF"):
        raise ParseError(url, f"not a PDF (starts {data[:24]!r})")
    return data


def _starts_pdf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"%PDF"
    except OSError:
        return False


def add_pdf(client: Client, pdf_dir: Path, record: dict[str, Any], urls: Sequence[str]) -> tuple[str, bool]:
    """Put the sections of the record's OA PDF into `record["sections"]`.

    Returns ("" when it worked, else why not; whether a later run may do better). A PDF already in `pdf_dir` is
    read without downloading; a download that fails or a PDF that does not read leaves the record alone (an
    unreadable PDF is not kept, so a later run asks again). Never raises for one paper (an unreachable PDF host
    included).
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", record.get("pmcid") or record["id"]).strip("_") or "paper"
    path = pdf_dir / f"{name}.pdf"
    reasons: list[str] = []
    retry = False
    for url in [""] + list(urls):  # "": the copy from an earlier run
        try:
            if url:
                write_atomic(path, _download_pdf(client, url))
            elif not _starts_pdf(path):
                continue
            sections = _pdf_sections(path)
        except ParseError as exc:
            path.unlink(missing_ok=True)
            reasons.append(f"PDF not usable ({exc.reason})")
            continue
        except (FetchError, OSError) as exc:  # ServiceUnreachable is a FetchError: another host, not the API
            reasons.append(f"PDF download failed ({exc})")
            retry = retry or not (isinstance(exc, HttpStatus) and exc.status in (403, 404, 410))
            continue
        if not sections:
            reasons.append("the PDF has no indexable sections")
            continue
        record["sections"] = sections
        record["fulltext_source"] = "pdf"
        return "", False
    return "; ".join(reasons) or "no PDF", retry


def add_fulltext(client: Client, cache: RawCache, record: dict[str, Any], captions: bool = False,
                 pdfs: Sequence[str] = (), pdf_dir: Path | None = None) -> str | None:
    """Put the JATS sections of an OA record into `record["sections"]`, else those of its OA PDF (`pdfs`, saved
    under `pdf_dir`); a failure message worth retrying, or None."""
    pmcid = record.get("pmcid") or ""
    if not record.get("open_access") or not (pmcid or (pdfs and pdf_dir is not None)):
        return None
    what = f"Europe PMC full text of {pmcid}"
    problem: str | None = None
    note = "no full text at Europe PMC"
    try:
        if not pmcid:
            raise HttpStatus(404, "no PMCID")
        (abstract, sections), _ = cached(cache, SERVICE, f"{pmcid}/fullTextXML", {}, "xml", client.get,
                                         lambda data: parse_fulltext(data, what, captions))
    except HttpStatus as exc:
        if exc.status != 404:
            problem = note = str(exc)
    except ServiceUnreachable:
        raise
    except FetchError as exc:
        problem = note = str(exc)
    else:
        if sections:
            record["sections"] = sections
            record["fulltext_source"] = "jats"
        if abstract and not record.get("abstract"):
            record["abstract"] = abstract
            record.pop("no_abstract", None)
        return None
    if not pdfs or pdf_dir is None:
        if problem is None:
            record["fulltext_note"] = note
        return problem
    why, retry = add_pdf(client, pdf_dir, record, pdfs)
    if not why:
        return None
    record["fulltext_note"] = f"{note}; {why}"
    if problem is None and retry:  # a failed download is worth another run; an unreadable PDF is not
        problem = f"{pmcid or record['id']}: {why}"
    return problem


def fetch_europepmc(
    query: str,
    max_records: int = 200,
    fulltext: bool = False,
    out: Path = DEFAULT_OUT,
    client: Client | None = None,
    page_size: int = PAGE,
    refresh: bool = False,
    captions: bool = False,
    progress: Progress | None = None,
) -> FetchReport:
    """Fetch up to `max_records` Europe PMC records for `query` into `out/<europepmc-...>.jsonl`, resuming by cursor."""
    if not query.strip():
        raise FetchError("the Europe PMC query is empty")
    client = client or europepmc()
    out = Path(out)
    name = stem("europepmc", query, fulltext)
    jsonl, state_path = out / f"{name}.jsonl", out / f"{name}.state.json"
    cache = RawCache(out / "raw")
    report = FetchReport()
    state = {} if refresh else read_state(state_path)
    if state.get("query") != query:
        state = {"kind": "europepmc", "query": query, "fulltext": fulltext, "cursor": "*", "fetched": 0,
                 "exhausted": False, "count": None}
    remaining = max_records - int(state["fetched"])
    if state["exhausted"] or remaining <= 0:
        report.note = "already complete; --refresh searches again"
    else:
        note = f"searching Europe PMC for {query!r}"
        say(progress, note + (f" (resuming after {state['fetched']} records)" if state["fetched"] else ""))
        try:
            for results, following, hits in search(client, query, remaining, state["cursor"], page_size):
                records = [result_record(r) for r in results]
                if fulltext:
                    for record, result in zip(records, results):
                        problem = add_fulltext(client, cache, record, captions, pdf_urls(result), out / "pdf")
                        if problem:
                            report.failures.append(problem)
                            say(progress, f"failed: {problem}")
                if records:
                    _, new = merge_records(jsonl, records)
                    report.new += new
                state.update(count=hits, fetched=int(state["fetched"]) + len(results),
                             cursor=following or state["cursor"], exhausted=not following)
                if hits:
                    write_state(state_path, state)
                say(progress, f"Europe PMC: {state['fetched']} of {min(hits, max_records)} records")
        except ServiceUnreachable:
            raise
        except FetchError as exc:  # a page that fails ends the walk; the pages before it are written
            report.failures.append(str(exc))
    report.found = int(state.get("count") or 0)
    if not report.found and not report.failures:
        report.note = "no results"
    report.path = jsonl if jsonl.exists() else None
    return summarise(report)
