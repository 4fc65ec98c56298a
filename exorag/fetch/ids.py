"""PMIDs, PMCIDs and DOIs found in a file (one per line, or a pasted reference list), and fetching them.

`extract` finds DOIs first (`10.NNNN/...`, also inside doi.org links, with trailing punctuation and unbalanced
closing brackets trimmed) and blanks them out, so digits inside a DOI are never taken for a PMID; then PMIDs
(`PMID: 12345678`, `PMID 123`, or a bare 7-8 digit number alone on its line) and PMCIDs (`PMC1234567`).
`fetch_ids` gets PMIDs through PubMed efetch and DOIs / PMCIDs through Europe PMC search (`DOI:"..."`,
`PMCID:PMC...`), merges everything into one JSONL and reports the identifiers no service knew.
Deliberately left out: arXiv / bioRxiv ids, ISBNs, and matching references by title when they carry no identifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exorag.text import normalise_doi
from exorag.errors import FetchError, ServiceUnreachable
from exorag.fetch import FetchReport, Progress, say, summarise
from exorag.fetch.europepmc import result_record, search
from exorag.fetch.files import DEFAULT_OUT, RawCache, merge_records, stem
from exorag.fetch.http import Client, europepmc, eutils
from exorag.fetch.pubmed import api_key, fetch_pmids

_DOI = re.compile(r"\b10\.\d{4,9}/[^\s\"<>]+")
_PMID = re.compile(r"\bPMID\s*:?\s*(\d{1,8})\b", re.IGNORECASE)
_BARE = re.compile(r"^[ \t]*(\d{7,8})[ \t]*$", re.MULTILINE)
_PMCID = re.compile(r"\bPMC\s?(\d{4,9})\b", re.IGNORECASE)
EUROPEPMC_BATCH = 20


@dataclass
class Identifiers:
    pmids: list[str] = field(default_factory=list)
    pmcids: list[str] = field(default_factory=list)
    dois: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pmids) + len(self.pmcids) + len(self.dois)




def extract(text: str) -> Identifiers:
    """The identifiers in `text`, each once, in order of appearance."""
    found = Identifiers()
    seen: set[str] = set()

    def add(bucket: list[str], value: str, key: str) -> None:
        if key not in seen:
            seen.add(key)
            bucket.append(value)

    def blank(match: re.Match[str]) -> str:
        doi = normalise_doi(match.group(0))
        add(found.dois, doi, "doi:" + doi.lower())
        return " " * len(match.group(0))

    rest = _DOI.sub(blank, text)
    for match in sorted([*_PMID.finditer(rest), *_BARE.finditer(rest)], key=lambda m: m.start()):
        add(found.pmids, str(int(match.group(1))), "pmid:" + str(int(match.group(1))))
    for match in _PMCID.finditer(rest):
        add(found.pmcids, "PMC" + match.group(1), "pmcid:" + match.group(1))
    return found


def _europepmc_records(
    client: Client, cache: RawCache, field_name: str, values: list[str], report: FetchReport
) -> list[dict[str, Any]]:
    """Europe PMC records for DOIs or PMCIDs, asked 20 at a time with OR."""
    records = []
    for start in range(0, len(values), EUROPEPMC_BATCH):
        chunk = values[start : start + EUROPEPMC_BATCH]
        if field_name == "DOI":
            query = " OR ".join(f'DOI:"{v.replace(chr(34), "")}"' for v in chunk)
        else:
            query = " OR ".join(f"PMCID:{v}" for v in chunk)
        try:
            for results, _, _ in search(client, query, max_records=len(chunk) * 2, cache=cache):
                records.extend(result_record(r) for r in results)
        except ServiceUnreachable:
            raise
        except FetchError as exc:
            report.failures.append(str(exc))
    return records


def fetch_ids(
    path: Path,
    out: Path = DEFAULT_OUT,
    key: str | None = None,
    pubmed_client: Client | None = None,
    europepmc_client: Client | None = None,
    progress: Progress | None = None,
) -> FetchReport:
    """Fetch every identifier found in the file at `path` into `out/ids-<name>-<hash>.jsonl`."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None
    ids = extract(text)
    if not ids:
        raise FetchError(f"no PMIDs, PMCIDs or DOIs found in {path}")
    say(progress, f"found {len(ids.pmids)} PMIDs, {len(ids.pmcids)} PMCIDs and {len(ids.dois)} DOIs in {path}")
    out = Path(out)
    cache = RawCache(out / "raw")
    jsonl = out / f"{stem('ids', Path(path).stem, ids.pmids, ids.pmcids, ids.dois)}.jsonl"
    report = FetchReport(found=len(ids))
    records: dict[str, dict[str, Any]] = {}

    if ids.pmids:
        key = api_key(key)
        got, failures = fetch_pmids(ids.pmids, pubmed_client or eutils(key), cache, key, progress=progress)
        report.failures.extend(failures)
        records.update((r["id"], r) for r in got)
    if ids.dois or ids.pmcids:
        client = europepmc_client or europepmc()
        by_doi = _europepmc_records(client, cache, "DOI", ids.dois, report)
        by_pmcid = _europepmc_records(client, cache, "PMCID", ids.pmcids, report)
        wanted_dois = {d.lower() for d in ids.dois}
        wanted_pmcids = {p.upper() for p in ids.pmcids}
        for record in by_doi + by_pmcid:  # keep only what was asked for; PubMed's version of a paper wins
            if record["doi"].lower() in wanted_dois or record["pmcid"] in wanted_pmcids:
                records.setdefault(record["id"], record)
        say(progress, f"Europe PMC: {len(by_doi) + len(by_pmcid)} records for {len(ids.dois) + len(ids.pmcids)} ids")

    have_pmids = {r["pmid"] for r in records.values()}
    have_dois = {r["doi"].lower() for r in records.values() if r.get("doi")}
    have_pmcids = {r["pmcid"].upper() for r in records.values() if r.get("pmcid")}
    failed = bool(report.failures)
    report.not_found = (
        [f"PMID {p}" for p in ids.pmids if p not in have_pmids and not failed]
        + [f"DOI {d}" for d in ids.dois if d.lower() not in have_dois and not failed]
        + [f"PMCID {p}" for p in ids.pmcids if p.upper() not in have_pmcids and not failed]
    )
    if records:
        _, report.new = merge_records(jsonl, records.values())
        report.path = jsonl
    return summarise(report)
