"""PubMed through NCBI E-utilities: esearch on the history server, efetch XML in batches, records in exo_corpus form.

`fetch_pubmed` runs esearch (usehistory=y, sorted by relevance) once, records WebEnv/query_key/count in the state
file, then fetches `efetch rettype=abstract retmode=xml` batch by batch from the history server. Each batch is
parsed, merged into the JSONL and marked done before the next, and its raw answer is cached, so an interrupted
fetch resumes with the batches it lacks. A batch that fails (truncated XML, an HTTP error after retries) is named
in the report and the others go on. A history server that forgot the WebEnv is searched again once.

Records keep: title, the abstract with structured sections as "LABEL: text" lines (inline markup as
`markup.element_text` gives it: "10<sup>3</sup>" -> "10³", "CD8<sup>+</sup>" -> "CD8⁺"), authors ("LastName Initials",
collective names as they are), journal (ISO abbreviation, else title), year (PubDate Year, else the MedlineDate's
year, else the electronic date), DOI, PMCID, MeSH descriptors, keywords and publication types. A record without
an abstract is kept with `"abstract": ""` and `"no_abstract": true`; a published erratum is kept and flagged
`"erratum": true` with the PMIDs it corrects. Deliberately left out: MeSH qualifiers, affiliations, grants,
reference lists, and citation details (volume, pages).
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from exorag.errors import FetchError, ServiceUnreachable
from exorag.settings import current
from exorag.fetch import FetchReport, Progress, say, summarise, xmlsafe
from exorag.fetch.files import DEFAULT_OUT, RawCache, cached, merge_records, read_state, stem, write_state
from exorag.fetch.http import Client, eutils

BATCH = 200
SERVICE = "NCBI E-utilities"


class HistoryExpired(FetchError):
    """The history server no longer knows the WebEnv / query_key (they expire after some hours)."""


def api_key(explicit: str | None = None) -> str | None:
    """--api-key, else $NCBI_API_KEY, else None."""
    return explicit or current().fetch.ncbi_api_key or None


def _common(key: str | None) -> dict[str, object]:
    return {"tool": "exorag", "email": current().fetch.ncbi_email, "api_key": key}


def esearch(client: Client, query: str, since: int | None = None, key: str | None = None) -> dict[str, Any]:
    """Search PubMed onto the history server: {"count", "webenv", "query_key", "translation"}."""
    params: dict[str, object] = {"db": "pubmed", "term": query, "usehistory": "y", "retmax": 0, "retmode": "json",
                                 "sort": "relevance", **_common(key)}
    if since:
        params.update(datetype="pdat", mindate=since, maxdate=3000)
    body = client.get("esearch.fcgi", params)
    try:
        result = json.loads(body.decode("utf-8"))["esearchresult"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise FetchError(f"{SERVICE} esearch: the answer is not esearch JSON: {body[:120]!r}") from None
    error = result.get("ERROR") or result.get("error")
    if error:
        raise FetchError(f"PubMed search for {query!r} failed: {error}")
    try:
        count = int(result.get("count", 0))
    except (TypeError, ValueError):
        raise FetchError(f"{SERVICE} esearch: unreadable count {result.get('count')!r}") from None
    webenv, query_key = result.get("webenv") or "", str(result.get("querykey") or "")
    if count and not (webenv and query_key):
        raise FetchError(f"{SERVICE} esearch: {count} hits but no WebEnv/query_key to fetch them with")
    return {"count": count, "webenv": webenv, "query_key": query_key,
            "translation": result.get("querytranslation", "")}


def efetch_params(search: dict[str, Any], retstart: int, retmax: int, key: str | None) -> dict[str, object]:
    return {"db": "pubmed", "query_key": search["query_key"], "WebEnv": search["webenv"], "retstart": retstart,
            "retmax": retmax, "rettype": "abstract", "retmode": "xml", **_common(key)}


# ---------------------------------------------------------------------------------------------- XML -> records


def _text(element: ET.Element | None) -> str:
    return xmlsafe.text_of(element)


def _abstract(node: ET.Element | None) -> str:
    """AbstractText paragraphs, each "LABEL: text" when labelled, one per line."""
    if node is None:
        return ""
    lines = []
    for part in node.findall("AbstractText"):
        body = _text(part)
        label = (part.get("Label") or "").strip()
        if body:
            lines.append(f"{label}: {body}" if label else body)
    return "\n".join(lines)


def author_name(author: ET.Element) -> str:
    """'Müller A' (LastName + Initials, else ForeName), or the CollectiveName as it is."""
    collective = _text(author.find("CollectiveName"))
    if collective:
        return collective
    last = _text(author.find("LastName"))
    given = _text(author.find("Initials")) or _text(author.find("ForeName"))
    return " ".join(p for p in (last, given) if p)


def _year(*dates: ET.Element | None) -> int | None:
    """The first year found: <Year>, else a 4-digit year inside <MedlineDate> ("2019 Nov-Dec")."""
    for date in dates:
        if date is None:
            continue
        for candidate in (_text(date.find("Year")), _text(date.find("MedlineDate"))):
            match = re.search(r"\b(1[89]\d\d|20\d\d)\b", candidate)
            if match:
                return int(match.group(1))
    return None


def _ids(node: ET.Element | None) -> dict[str, str]:
    """IdType -> value of an ArticleIdList (its direct children only; reference lists have their own)."""
    found: dict[str, str] = {}
    if node is not None:
        for item in node.findall("ArticleId"):
            kind, value = item.get("IdType", ""), _text(item)
            if kind and value and kind not in found:
                found[kind] = value
    return found


def _doi(article: ET.Element, ids: dict[str, str]) -> str:
    if ids.get("doi"):
        return ids["doi"]
    for loc in article.findall("ELocationID"):
        if loc.get("EIdType") == "doi" and loc.get("ValidYN", "Y") != "N" and _text(loc):
            return _text(loc)
    return ""


def _pmcid(ids: dict[str, str]) -> str:
    value = ids.get("pmc", "")
    return value if not value or value.upper().startswith("PMC") else f"PMC{value}"


def _record(pmid: str, title: str, abstract: str, year: int | None, journal: str, authors: list[str],
            ids: dict[str, str], doi: str, mesh: list[str], keywords: list[str], pub_types: list[str],
            corrections: dict[str, list[str]]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": f"pmid:{pmid}", "pmid": pmid, "doi": doi, "pmcid": _pmcid(ids), "title": title, "abstract": abstract,
        "year": year, "journal": journal, "authors": authors, "mesh": mesh, "keywords": keywords,
        "publication_types": pub_types, "source": "pubmed",
    }
    if not abstract:
        record["no_abstract"] = True
    if "Published Erratum" in pub_types:
        record["erratum"] = True
    for ref_type, field in (("ErratumFor", "erratum_for"), ("ErratumIn", "erratum_in"),
                            ("RetractionIn", "retraction_in"), ("RetractionOf", "retraction_of")):
        if corrections.get(ref_type):
            record[field] = corrections[ref_type]
    if "Retracted Publication" in pub_types:
        record["retracted"] = True
    return record


def _corrections(citation: ET.Element) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in citation.findall("CommentsCorrectionsList/CommentsCorrections"):
        pmid = _text(item.find("PMID"))
        if pmid:
            found.setdefault(item.get("RefType", ""), []).append(pmid)
    return found


def article_record(node: ET.Element) -> dict[str, Any] | None:
    """One <PubmedArticle> (or <PubmedBookArticle>) as an exo_corpus record; None when it has no PMID."""
    if node.tag == "PubmedBookArticle":
        return _book_record(node)
    citation = node.find("MedlineCitation")
    article = citation.find("Article") if citation is not None else None
    if citation is None or article is None:
        return None
    pmid = _text(citation.find("PMID"))
    if not pmid:
        return None
    journal = article.find("Journal")
    journal_name = ""
    if journal is not None:
        journal_name = _text(journal.find("ISOAbbreviation")) or _text(journal.find("Title"))
    ids = _ids(node.find("PubmedData/ArticleIdList"))
    abstract = _abstract(article.find("Abstract"))
    if not abstract:
        other = [o for o in citation.findall("OtherAbstract") if o.get("Language", "eng") == "eng"]
        abstract = _abstract(other[0]) if other else ""
    return _record(
        pmid=pmid,
        title=_text(article.find("ArticleTitle")) or _text(article.find("VernacularTitle")),
        abstract=abstract,
        year=_year(article.find("Journal/JournalIssue/PubDate"), article.find("ArticleDate"),
                   node.find("PubmedData/History/PubMedPubDate[@PubStatus='pubmed']")),
        journal=journal_name or _text(citation.find("MedlineJournalInfo/MedlineTA")),
        authors=[n for n in (author_name(a) for a in article.findall("AuthorList/Author")) if n],
        ids=ids,
        doi=_doi(article, ids),
        mesh=[_text(d) for d in citation.findall("MeshHeadingList/MeshHeading/DescriptorName") if _text(d)],
        keywords=[_text(k) for k in citation.findall("KeywordList/Keyword") if _text(k)],
        pub_types=[_text(t) for t in article.findall("PublicationTypeList/PublicationType") if _text(t)],
        corrections=_corrections(citation),
    )


def _book_record(node: ET.Element) -> dict[str, Any] | None:
    book_doc = node.find("BookDocument")
    if book_doc is None or not _text(book_doc.find("PMID")):
        return None
    ids = _ids(book_doc.find("ArticleIdList"))
    ids.update({k: v for k, v in _ids(node.find("PubmedBookData/ArticleIdList")).items() if k not in ids})
    book = book_doc.find("Book")
    return _record(
        pmid=_text(book_doc.find("PMID")),
        title=_text(book_doc.find("ArticleTitle")) or _text(book_doc.find("Book/BookTitle")),
        abstract=_abstract(book_doc.find("Abstract")),
        year=_year(book.find("PubDate") if book is not None else None),
        journal=_text(book_doc.find("Book/BookTitle")),
        authors=[n for n in (author_name(a) for a in book_doc.findall("AuthorList/Author")) if n],
        ids=ids,
        doi=ids.get("doi", ""),
        mesh=[],
        keywords=[_text(k) for k in book_doc.findall("KeywordList/Keyword") if _text(k)],
        pub_types=[_text(t) for t in book_doc.findall("PublicationType") if _text(t)],
        corrections={},
    )


def parse_articles(data: bytes, what: str) -> list[dict[str, Any]]:
    """Records from an efetch PubmedArticleSet answer; FetchError naming `what` for anything else."""
    root = xmlsafe.parse(data, what)
    if root.tag != "PubmedArticleSet":
        error = _text(root.find(".//ERROR")) or _text(root)
        if root.tag == "eFetchResult" and re.search(r"query|webenv|history", error, re.IGNORECASE):
            raise HistoryExpired(f"{what}: the history server answered {error!r}")
        raise FetchError(f"{what}: expected a PubmedArticleSet, got <{root.tag}>{': ' + error[:200] if error else ''}")
    records = []
    for node in root:
        if node.tag in ("PubmedArticle", "PubmedBookArticle"):
            record = article_record(node)
            if record is not None:
                records.append(record)
    return records


# ---------------------------------------------------------------------------------------------- fetching


def fetch_pubmed(
    query: str,
    max_records: int = 200,
    since: int | None = None,
    out: Path = DEFAULT_OUT,
    key: str | None = None,
    client: Client | None = None,
    batch_size: int = BATCH,
    refresh: bool = False,
    progress: Progress | None = None,
) -> FetchReport:
    """Fetch up to `max_records` PubMed records for `query` into `out/<pubmed-...>.jsonl`, resuming where it stopped.

    Raises ServiceUnreachable when E-utilities cannot be reached and FetchError when the search itself fails; a
    failing batch is recorded in the report's `failures` and the other batches go on.
    """
    if not query.strip():
        raise FetchError("the PubMed query is empty")
    key = api_key(key)
    client = client or eutils(key)
    out = Path(out)
    name = stem("pubmed", query, since)
    jsonl, state_path = out / f"{name}.jsonl", out / f"{name}.state.json"
    cache = RawCache(out / "raw")
    report = FetchReport()

    state = {} if refresh else read_state(state_path)
    if state.get("query") != query or state.get("since") != since or not state.get("webenv"):
        say(progress, f"searching PubMed for {query!r}" + (f" since {since}" if since else ""))
        search = esearch(client, query, since, key)
        state = {"kind": "pubmed", "query": query, "since": since, "batch_size": batch_size, "done": [], **search}
        if search["count"]:
            write_state(state_path, state)
    report.found = int(state["count"])
    if not report.found:
        report.note = "no results"
        return report
    state["max"] = max_records
    size = int(state.get("batch_size") or batch_size)  # batches keep the size they were numbered with
    wanted = min(report.found, max_records)
    batches = math.ceil(wanted / size)
    pending = [b for b in range(1, batches + 1) if b not in set(state["done"])]
    say(progress, f"{report.found} PubMed records match; fetching {wanted} in {batches} batches"
                   + (f" ({batches - len(pending)} already done)" if len(pending) < batches else ""))
    if not pending:
        report.note = "already complete; --refresh searches again"

    for number in pending:
        retstart = (number - 1) * size
        retmax = min(size, wanted - retstart)
        what = f"PubMed efetch batch {number}/{batches} (records {retstart + 1}-{retstart + retmax})"
        try:
            try:
                params = efetch_params(state, retstart, retmax, key)
                records, _ = cached(cache, SERVICE, "efetch.fcgi", params, "xml", client.get,
                                    lambda data: parse_articles(data, what))
            except HistoryExpired:
                say(progress, "the search history expired on the server; searching again")
                state.update(esearch(client, query, since, key))
                write_state(state_path, state)
                params = efetch_params(state, retstart, retmax, key)
                records, _ = cached(cache, SERVICE, "efetch.fcgi", params, "xml", client.get,
                                    lambda data: parse_articles(data, what))
        except ServiceUnreachable:
            raise
        except FetchError as exc:
            report.failures.append(str(exc))
            say(progress, f"failed: {exc}")
            continue
        _, new = merge_records(jsonl, records)
        report.new += new
        state["done"] = sorted(set(state["done"]) | {number})
        write_state(state_path, state)
        say(progress, f"batch {number}/{batches}: {len(records)} records")
    report.path = jsonl if jsonl.exists() else None
    return summarise(report)


def fetch_pmids(
    pmids: Iterable[str], client: Client, cache: RawCache, key: str | None = None, batch_size: int = BATCH,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Records for the given PMIDs by efetch `id=` lists: (records, failure messages)."""
    ids = list(dict.fromkeys(pmids))
    records: list[dict[str, Any]] = []
    failures: list[str] = []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        what = f"PubMed efetch of PMIDs {chunk[0]}..{chunk[-1]} ({len(chunk)})"
        params = {"db": "pubmed", "id": ",".join(chunk), "rettype": "abstract", "retmode": "xml", **_common(key)}
        try:
            got, _ = cached(cache, SERVICE, "efetch.fcgi", params, "xml", client.get,
                            lambda data: parse_articles(data, what))
        except ServiceUnreachable:
            raise
        except FetchError as exc:
            failures.append(str(exc))
            continue
        records.extend(got)
        say(progress, f"PubMed: {len(got)} of {len(chunk)} PMIDs found")
    return records, failures
