#!/usr/bin/env python3
"""Build exorag's two committed, licence-clean corpora from the real data in ../shared/data.

    python scripts/make_demo_corpus.py              # exorag/data/demo/ev_demo.jsonl.gz + SOURCES.md
    python scripts/make_demo_corpus.py --fixtures   # tests/fixtures/corpus/ev_small.jsonl + SOURCES.md, tests/fixtures/pdfs/
    python scripts/make_demo_corpus.py --shared /elsewhere/shared/data --fixtures --demo

Sources (each folder's SOURCE.md gives origin and licence; the script checks that the commit it names is still there):
- ev_negative_space_screening  PubMed records of an EV evidence-gap-mapping study (repository MIT)
- ev_literature_notes_aquiles  EV paper records from a researcher's notes site (CC BY-SA 4.0)
- pap2pat_ev_fulltext          6 open-access EV papers with body sections (CC BY 4.0)
- scifact (fixtures only)      SciFact corpus abstracts (ODC-By 1.0): non-EV neighbours and a few EV papers
Never used: exosome_blog_pubmed_2025 (no licence stated), miretrieve_cancer_mirna (GPL-3), PubMedQA and BioASQ.

Output records are the JSONL schema that exorag.build.sources.jsonl reads (id, pmid, doi, title, abstract, year,
journal, authors, publication_types, sections [{heading, text}], source) plus a few extras the reader ignores
(license, ev_focus, abstract_cut, also_as, also_in, upstream_ev_focus, source_file, authors_unordered). Deterministic: records are sorted, the
gzip header carries no name or time, SOURCES.md carries no date, so a rerun on the same data gives identical bytes.
The script uses only the standard library; `--check` (on by default) reads the output back with exorag's own reader
when exorag is importable.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import json
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared" / "data"
DEMO_DIR = REPO / "exorag" / "data" / "demo"
DEMO_FILE = "ev_demo.jsonl.gz"
FIXTURE_DIR = REPO / "tests" / "fixtures" / "corpus"
FIXTURE_FILE = "ev_small.jsonl"
FIXTURE_PDF_DIR = REPO / "tests" / "fixtures" / "pdfs"
DEMO_LIMIT = 10 * 1024 * 1024

SOURCES: dict[str, dict[str, str]] = {
    "ev_negative_space_screening": {
        "repository": "https://github.com/MichaLie/ev-negative-space-framework",
        "path": "supplement/screening_table_pathway_context_top40.csv",
        "commit": "d826654b5da6d40e75a62ab7abab7fa397128756",
        "license": "MIT",
        "licence_text": "MIT (repository LICENSE, \"Copyright (c) 2026 Michaela Liegertova, Jan Maly\"); the titles and "
                        "abstracts are the authors'/publishers' text as served by PubMed",
    },
    "ev_literature_notes_aquiles": {
        "repository": "https://github.com/aquilesC/aquiles.me",
        "path": "content/literature/*.md",
        "commit": "975465eef24b19400e9a7e543faea7ff0be3a93a",
        "license": "CC-BY-SA-4.0",
        "licence_text": "CC BY-SA 4.0 (content/LICENSE.md), attribution: Aquiles Carattino, https://aquiles.me; these "
                        "records (selected and converted) are shared under the same licence; the abstracts are the "
                        "publishers'/authors' text",
    },
    "pap2pat_ev_fulltext": {
        "repository": "https://github.com/boschresearch/Pap2Pat",
        "path": "Pap2Pat/data/<OpenAlexID>-<PatentNo>/paper.json",
        "commit": "3bc8bd9838084ff3793eb36a2d100937fa29673d",
        "license": "CC-BY-4.0",
        "licence_text": "CC BY 4.0 (Pap2Pat README: data released under CC-BY 4.0); the papers are open-access (PMC) "
                        "articles",
    },
    "scifact": {
        "repository": "https://github.com/sumithra-p-v/claimverifier (export of https://github.com/allenai/scifact)",
        "path": "data/scifact.zip -> corpus_sentences.jsonl",
        "commit": "b42f1c3444b28884ddcfadffafbfe223646c6c37",
        "license": "ODC-By-1.0",
        "licence_text": "ODC-By 1.0 for the corpus abstracts (allenai/scifact LICENSE.md, commit "
                        "7e07702341da0c3d274baa104abb9585b30d3af7; the claims are CC BY 4.0 and are not used here)",
    },
    "pdfs_open_access": {
        "repository": "https://github.com/CeON/CERMINE",
        "path": "cermine-impl/src/test/resources/pl/edu/icm/cermine/test1.pdf, "
                "cermine-web/src/main/resources/examples/example2.pdf",
        "commit": "6a253f28fec8ddc5f6eb98d514951c55954f5878",
        "license": "CC-BY",
        "licence_text": "each PDF carries its own CC BY licence statement (BioMed Central open access); the CERMINE "
                        "repository's AGPL-3.0 covers its code, not these articles",
    },
}
DEMO_SOURCES = ("pap2pat_ev_fulltext", "ev_literature_notes_aquiles", "ev_negative_space_screening")
EXCLUDED = {
    "exosome_blog_pubmed_2025": "no licence stated (internal testing only)",
    "miretrieve_cancer_mirna": "GPL-3 (not a data licence compatible with shipping in an MIT package)",
    "pubmedqa": "a non-EV benchmark (titles blanked upstream); not an EV source",
    "scifact": "non-EV benchmark abstracts (demo only; the test fixtures use some, ODC-By 1.0)",
    "bioasq_golden": "BioASQ terms: research use, no redistribution",
    "exo_corpus": "a derived mix of the folders above, incl. the unlicensed and GPL ones (consulted, not copied)",
}

# ----------------------------------------------------------------------------------------------- the EV rule
# An EV paper (the rule behind `ev_focus`, the same as ev_negative_space_screening's): an EV term in the title, or at
# least 3 EV-term mentions in the abstract. EV terms: exosome*/exosomal, extracellular vesicle, microvesicle,
# ectosome, exosome-like, and the abbreviations EV/EVs/sEV(s) (case-sensitive, so that "eV" (electron volt) and
# "EV71" (enterovirus) are not counted). Mentions of the RNA-degrading *exosome complex* are not EV terms.
EV_WORD = re.compile(r"\bexosom\w*|extracellular[- ]vesicle|\bmicro-?vesic\w*|\bectosom\w*", re.IGNORECASE)
EV_ABBR = re.compile(r"\b[sl]?EVs?\b(?![-‐]?\s?[A-Z]?\d)")
RNA_COMPLEX = re.compile(r"exosome complex|\bRNA exosome|nuclear exosome|cytoplasmic exosome|\bexosc\d+|"
                         r"\bRrp(?:6|40|41|44|4)p?\b|\bDis3\b|exosome[- ]sensitive|exosome[- ](?:mediated|dependent) (?:m?RNA |rRNA )?"
                         r"(?:decay|degradation|processing)|\bTRAMP complex", re.IGNORECASE)


def ev_mentions(text: str) -> int:
    if RNA_COMPLEX.search(text) and not re.search(r"extracellular[- ]vesicle|\bvesicle", text, re.IGNORECASE):
        return 0  # the RNA exosome complex, not vesicles
    return len(EV_WORD.findall(text)) + len(EV_ABBR.findall(text))


def is_ev_focus(title: str, abstract: str) -> bool:
    return ev_mentions(title) > 0 or ev_mentions(abstract) >= 3


def mentions_ev(record: dict[str, Any]) -> bool:
    return ev_mentions(record.get("title", "") + " " + record.get("abstract", "") + " " + " ".join(
        s["text"] for s in record.get("sections", []))) > 0


# ----------------------------------------------------------------------------------------------- helpers
def norm_title(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", re.sub(r"<[^>]+>", "", title or "").lower()).strip()


SENTENCE_END = re.compile(r"[.!?][)\]\"'’”]?(?=\s+[A-Z0-9(\[])")


def cut_to_last_sentence(text: str) -> str:
    """`text` up to its last complete sentence ('' when it has none): for abstracts the upstream parser cut short."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    return text[:ends[-1]].rstrip() if ends else ""


def check_source_md(shared: Path, folder: str) -> None:
    text = (shared / folder / "SOURCE.md").read_text(encoding="utf-8")
    if SOURCES[folder]["commit"] not in text:
        raise SystemExit(f"{shared / folder / 'SOURCE.md'} no longer names commit {SOURCES[folder]['commit']}: "
                         "check the source and its licence, then update SOURCES in this script")


def record(rid: str, title: str, abstract: str, source: str, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rid}
    for key in ("pmid", "doi"):
        if fields.get(key):
            out[key] = fields.pop(key)
        fields.pop(key, None)
    out["title"] = title
    if abstract:
        out["abstract"] = abstract
    for key in ("year", "journal", "authors", "publication_types", "sections"):
        if fields.get(key):
            out[key] = fields.pop(key)
        fields.pop(key, None)
    out["source"] = source
    out["license"] = SOURCES[source]["license"]
    out.update({k: v for k, v in fields.items() if v not in (None, "", [], False)})
    return out


# ----------------------------------------------------------------------------------------------- loaders
MIN_ABSTRACT = 200  # characters; shorter (or cut back to shorter) abstracts are dropped


def load_negative(shared: Path, log: Counter) -> list[dict[str, Any]]:
    """All records with a usable abstract. Abstracts the upstream parser cut at an inline tag
    (`abstract_truncated_suspect`) are cut back to their last complete sentence (`abstract_cut`: true), so that
    every sentence quoted from them is a whole one; those left under MIN_ABSTRACT characters are dropped."""
    folder = "ev_negative_space_screening"
    check_source_md(shared, folder)
    out = []
    with (shared / folder / f"{folder}.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            raw = json.loads(line)
            log["read"] += 1
            abstract = raw.get("abstract", "").strip()
            cut = bool(raw.get("abstract_truncated_suspect"))
            if cut:
                abstract = cut_to_last_sentence(abstract)
            if len(abstract) < MIN_ABSTRACT:
                log["dropped: abstract cut short upstream, < 200 characters left" if cut else
                    "dropped: abstract < 200 characters"] += 1
                continue
            log["abstract cut back to its last full sentence"] += cut
            log["upstream ev_focus"] += bool(raw.get("ev_focus"))
            out.append(record(
                f"pmid:{raw['pmid']}", raw["title"].strip(), abstract, folder, pmid=raw["pmid"], doi=raw.get("doi"),
                year=raw.get("year"), journal=raw.get("journal"), publication_types=raw.get("publication_types"),
                abstract_cut=cut, upstream_ev_focus=bool(raw.get("ev_focus"))))
    return out


def load_aquiles(shared: Path, log: Counter) -> list[dict[str, Any]]:
    """Records with a real abstract (not just the title again, >= MIN_ABSTRACT characters... except standfirsts of
    >= 150) that name an EV term (the upstream selection also matched "eV", electron volt: materials papers)."""
    folder = "ev_literature_notes_aquiles"
    check_source_md(shared, folder)
    out = []
    with (shared / folder / "ev_abstracts.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            raw = json.loads(line)
            log["read"] += 1
            title, abstract = raw["title"].strip(), raw.get("abstract", "").strip()
            if norm_title(abstract) == norm_title(title) or len(abstract) < 150:
                log["dropped: abstract is only the title or < 150 characters"] += 1
                continue
            if not ev_mentions(title + " " + abstract):
                log["dropped: no EV term (matched 'eV', electron volt, upstream)"] += 1
                log[f"  dropped non-EV: {title}"] += 1
                continue
            doi = (raw.get("doi") or "").strip()
            year = int(raw["year"]) if str(raw.get("year") or "").strip().isdigit() else None
            stem = Path(raw["source_file"]).stem.lstrip("@")
            out.append(record(f"doi:{doi.lower()}" if doi else f"evnotes:{stem}", title, abstract, folder, doi=doi,
                              year=year, journal=(raw.get("journal") or "").strip(), authors=raw.get("authors"),
                              source_file=raw["source_file"]))
    return out


def _flatten(sections: list[dict[str, Any]], path: tuple[str, ...] = ()) -> list[dict[str, str]]:
    out = []
    for section in sections:
        here = path + ((section.get("title") or "").strip(),)
        text = "\n\n".join(p.strip() for p in section.get("paragraphs") or [] if p and p.strip())
        if text:
            out.append({"heading": " / ".join(h for h in here if h) or "Body", "text": text})
        out.extend(_flatten(section.get("subsections") or [], here))
    return out


def load_pap2pat(shared: Path, log: Counter) -> list[dict[str, Any]]:
    """The 6 papers with abstract and every body section (subsections flattened, heading "Results / <subsection>").
    Pap2Pat's author lists are in no particular order (OpenAlex authorships, not the byline), so they are kept as
    `authors_unordered`, not as `authors` (which a citation would read as first author et al.)."""
    folder = "pap2pat_ev_fulltext"
    check_source_md(shared, folder)
    out = []
    for path in sorted((shared / folder).glob("*_paper.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        log["read"] += 1
        sections = raw["sections"]
        if isinstance(sections, str):
            sections = ast.literal_eval(sections)
        openalex = raw["id"].rstrip("/").rsplit("/", 1)[-1]
        year = int(raw["date"][:4]) if re.match(r"\d{4}", raw.get("date") or "") else None
        out.append(record(f"openalex:{openalex}", raw["title"].strip(), raw["abstract"].strip(), folder, year=year,
                          sections=_flatten(sections), authors_unordered=raw.get("authors")))
    return out


def load_scifact(shared: Path, ids: list[str]) -> list[dict[str, Any]]:
    check_source_md(shared, "scifact")
    wanted = set(ids)
    found = {}
    with (shared / "scifact" / "corpus_sentences.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            raw = json.loads(line)
            if str(raw["doc_id"]) in wanted:
                abstract = " ".join(s.strip() for s in raw["abstract"])
                found[str(raw["doc_id"])] = record(f"scifact:{raw['doc_id']}", raw["title"].strip(), abstract,
                                                   "scifact")
    missing = wanted - set(found)
    if missing:
        raise SystemExit(f"SciFact doc ids not found: {sorted(missing)}")
    return [found[i] for i in ids]


# ----------------------------------------------------------------------------------------------- merging
RICH = ("pmid", "doi", "year", "journal", "authors", "publication_types", "sections")
SOURCE_RANK = {s: i for i, s in enumerate(("pap2pat_ev_fulltext", "ev_negative_space_screening",
                                           "ev_literature_notes_aquiles", "scifact"))}


def _keys(r: dict[str, Any]) -> list[tuple[str, str]]:
    keys = []
    if r.get("pmid"):
        keys.append(("pmid", r["pmid"]))
    if r.get("doi"):
        keys.append(("doi", r["doi"].lower()))
    title = norm_title(r["title"])
    if len(title) >= 25:  # short generic titles ("Exosomes") are not evidence of one paper
        keys.append(("title", title))
    return keys


def deduplicate(records: list[dict[str, Any]], log: list[str]) -> list[dict[str, Any]]:
    """One record per paper (same PMID, DOI or normalised title): the one with most metadata (then: not a preprint,
    source rank), its missing year/journal/doi/pmid/authors/publication types filled in from the others; the other
    ids go to `also_as`. A cut-short abstract is replaced by a longer, uncut one of the same paper."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[tuple[str, str], int] = {}
    for i, r in enumerate(records):
        for key in _keys(r):
            if key in owner:
                parent[find(i)] = find(owner[key])
            else:
                owner[key] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(records)):
        groups.setdefault(find(i), []).append(i)
    out = []
    for members in groups.values():
        if len(members) == 1:
            out.append(records[members[0]])
            continue
        rs = [records[i] for i in members]
        best = max(rs, key=lambda r: (sum(bool(r.get(k)) for k in RICH),
                                      "Preprint" not in r.get("publication_types", []),
                                      -SOURCE_RANK[r["source"]], r["id"]))
        merged = dict(best)
        others = [r for r in rs if r is not best]
        filled = []
        for key in ("pmid", "doi", "year", "journal", "authors", "publication_types"):
            if not merged.get(key):
                for other in others:
                    if other.get(key):
                        merged[key] = other[key]
                        filled.append(f"{key} from {other['source']}")
                        break
        if merged.get("abstract_cut"):
            for other in others:
                if not other.get("abstract_cut") and len(other.get("abstract", "")) > len(merged["abstract"]):
                    merged["abstract"], merged["license"] = other["abstract"], other["license"]
                    merged.pop("abstract_cut")
                    filled.append(f"abstract from {other['source']}")
                    break
        merged["also_as"] = sorted({r["id"] for r in others if r["id"] != merged["id"]})
        if any(r["source"] != merged["source"] for r in others):
            merged["also_in"] = sorted({r["source"] for r in others if r["source"] != merged["source"]})
        order = ["id", "pmid", "doi", "title", "abstract", "year", "journal", "authors", "publication_types",
                 "sections", "source", "license"]
        merged = {k: merged[k] for k in order if k in merged} | {k: v for k, v in merged.items() if k not in order}
        log.append(f"{merged['id']} ({merged['source']}) kept; merged {', '.join(r['id'] + ' (' + r['source'] + ')' for r in others)}"
                   + (f"; filled {', '.join(filled)}" if filled else ""))
        out.append(merged)
    return out


def unify_journals(records: list[dict[str, Any]]) -> int:
    """PubMed's full journal titles are lower-case after the first word ("Journal of extracellular vesicles"); where
    the notes give the same journal (case-insensitively) in title case, that spelling is used everywhere."""
    spelled = {r["journal"].lower(): r["journal"] for r in records
               if r.get("journal") and r["source"] == "ev_literature_notes_aquiles"}
    changed = 0
    for r in records:
        journal = r.get("journal")
        if journal and journal.lower() in spelled and spelled[journal.lower()] != journal:
            r["journal"] = spelled[journal.lower()]
            changed += 1
    return changed


def finish(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in records:
        r["ev_focus"] = is_ev_focus(r["title"], r.get("abstract", ""))
    return records


def build_pool(shared: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    logs = {s: Counter() for s in DEMO_SOURCES}
    records = (load_pap2pat(shared, logs["pap2pat_ev_fulltext"]) + load_aquiles(shared, logs["ev_literature_notes_aquiles"])
               + load_negative(shared, logs["ev_negative_space_screening"]))
    merges: list[str] = []
    pool = deduplicate(records, merges)
    journals = unify_journals(pool)
    finish(pool)
    pool.sort(key=lambda r: (SOURCE_RANK[r["source"]], r["id"]))
    return pool, {"logs": logs, "merges": merges, "journals_unified": journals, "before_dedup": len(records)}


# ----------------------------------------------------------------------------------------------- writing
def jsonl_bytes(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def write_gzip(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        gz.write(data)


def makeup(records: list[dict[str, Any]]) -> dict[str, Any]:
    years = [r["year"] for r in records if r.get("year")]
    return {
        "records": len(records),
        "per_source": Counter(r["source"] for r in records),
        "ev_focus": sum(r["ev_focus"] for r in records),
        "mentions_ev": sum(mentions_ev(r) for r in records),
        "years": (min(years), max(years)) if years else None,
        "median_year": sorted(years)[len(years) // 2] if years else None,
        "undated": sum(1 for r in records if not r.get("year")),
        "with_pmid": sum(bool(r.get("pmid")) for r in records),
        "with_doi": sum(bool(r.get("doi")) for r in records),
        "with_journal": sum(bool(r.get("journal")) for r in records),
        "with_authors": sum(bool(r.get("authors")) for r in records),
        "full_texts": sum(bool(r.get("sections")) for r in records),
        "abstract_cut": sum(bool(r.get("abstract_cut")) for r in records),
        "per_decade": Counter(f"{r['year'] // 5 * 5}-{r['year'] // 5 * 5 + 4}" for r in records if r.get("year")),
    }


def pct(n: int, total: int) -> str:
    return f"{n} ({100 * n / total:.1f} %)" if total else "0"


def makeup_md(m: dict[str, Any], sources: tuple[str, ...]) -> list[str]:
    total = m["records"]
    lines = ["| source | records | licence |", "|---|---|---|"]
    lines += [f"| {s} | {m['per_source'].get(s, 0)} | {SOURCES[s]['license']} |" for s in sources]
    lines += [f"| **total** | **{total}** | |", ""]
    lines += [
        f"- EV papers by the `ev_focus` rule (EV term in the title, or >= 3 EV-term mentions in the abstract): "
        f"**{pct(m['ev_focus'], total)}**",
        f"- Records naming an EV term anywhere (title, abstract or sections): {pct(m['mentions_ev'], total)}",
        f"- Years: {m['years'][0]}-{m['years'][1]} (median {m['median_year']}); undated: **{m['undated']}**" if m["years"]
        else f"- Years: none; undated: {m['undated']}",
        "- By period: " + ", ".join(f"{k}: {v}" for k, v in sorted(m["per_decade"].items())),
        f"- With PMID {m['with_pmid']}, DOI {m['with_doi']}, journal {m['with_journal']}, authors {m['with_authors']}; "
        f"full texts with sections {m['full_texts']}; abstracts cut back to their last full sentence {m['abstract_cut']}",
    ]
    return lines


EV_RULE_MD = (
    "EV terms: `exosom*`, `extracellular vesicle`, `microvesic*`, `ectosom*` (any case) and `EV`, `EVs`, `sEV(s)` "
    "(case-sensitive, not followed by a digit, so neither \"eV\" nor \"EV71\" counts); a text about the RNA-degrading "
    "exosome complex (exosome complex, RNA exosome, Rrp6/Dis3, ...) that never says vesicle counts zero. `ev_focus` "
    "(a field of every record) = an EV term in the title, or at least 3 in the abstract: the rule "
    "ev_negative_space_screening's SOURCE.md uses, where a 30-record sample of it was 30/30 EV papers."
)


def source_block(shared: Path, folder: str, n: int, kept: str) -> list[str]:
    s = SOURCES[folder]
    return [f"### `{folder}` ({n} records)", "",
            f"- Folder: `shared/data/{folder}/` (see its SOURCE.md)",
            f"- Upstream: {s['repository']}, `{s['path']}`, commit `{s['commit']}`",
            f"- Licence: {s['licence_text']}. Per-record field `license`: `{s['license']}`.",
            f"- Kept/dropped: {kept}", ""]


def demo_sources_md(shared: Path, pool: list[dict[str, Any]], info: dict[str, Any], data: bytes, gz_size: int) -> str:
    m = makeup(pool)
    neg, aq, pp = (info["logs"][s] for s in ("ev_negative_space_screening", "ev_literature_notes_aquiles",
                                             "pap2pat_ev_fulltext"))
    neg_recs = [r for r in pool if r["source"] == "ev_negative_space_screening"]
    agree = sum(r["ev_focus"] == bool(r.get("upstream_ev_focus")) for r in neg_recs)
    nonev = [k.strip()[len("dropped non-EV: "):] for k in aq if k.startswith("  dropped non-EV")]
    aq_short = aq["dropped: abstract is only the title or < 150 characters"]
    aq_nonev = aq["dropped: no EV term (matched 'eV', electron volt, upstream)"]
    lines = [
        "# EV demo corpus: sources, licences and make-up", "",
        f"`{DEMO_FILE}`: {m['records']} real paper records (gzip JSONL, {gz_size:,} bytes; {len(data):,} bytes "
        f"uncompressed, sha256 `{hashlib.sha256(data).hexdigest()}`), written by `scripts/make_demo_corpus.py` from "
        "`../shared/data` (rerun it to rebuild; the same input gives the same bytes). One JSON object per line in the "
        "schema `exorag.build.sources.jsonl` reads. Nothing here is synthetic; texts are as the sources give them "
        "(one exception: abstracts cut short upstream end at their last full sentence, see below).", "",
        "**Licences differ per record**: each record's `source` and `license` fields say which of the licences below "
        "covers its text. The file is a collection; the package's MIT licence covers the code, not these texts.", "",
        "## Make-up", "", *makeup_md(m, DEMO_SOURCES), "",
        "How EV share is measured: " + EV_RULE_MD, "",
        "## Sources", "",
        *source_block(shared, "pap2pat_ev_fulltext", m["per_source"]["pap2pat_ev_fulltext"],
                      f"all {pp['read']} papers; abstract plus every body section with text (subsections flattened "
                      "to headings like \"Results / Exosomal Pd-L1 Promotes Tumor Progression\", Pap2Pat's "
                      "capitalisation). No DOI, PMID or journal in the source (ids `openalex:W...`). Pap2Pat's author "
                      "lists are not in byline order, so they are kept as `authors_unordered` (ignored by the reader) "
                      "instead of `authors`."),
        *source_block(shared, "ev_literature_notes_aquiles", m["per_source"]["ev_literature_notes_aquiles"],
                      f"read {aq['read']}; dropped "
                      f"{aq_short} whose abstract is only the title "
                      f"again or under 150 characters and {aq_nonev} "
                      f"without any EV term (the upstream selection matched \"eV\", electron volt: "
                      f"{'; '.join(nonev)}); kept title, authors, year (empty -> absent), journal, DOI and the note's "
                      "path (`source_file`). No PMIDs in the source; ids `doi:...`, else `evnotes:<note name>`."),
        *source_block(shared, "ev_negative_space_screening", m["per_source"]["ev_negative_space_screening"],
                      f"read {neg['read']} (all have an abstract; the 19 PMIDs without one were already left out "
                      f"upstream). {neg['abstract cut back to its last full sentence'] + neg['dropped: abstract cut short upstream, < 200 characters left']} "
                      "abstracts flagged `abstract_truncated_suspect` (the upstream parser stopped at the first inline "
                      "tag such as <sup>) are cut back to their last complete sentence and flagged `abstract_cut`; "
                      f"{neg['dropped: abstract cut short upstream, < 200 characters left']} of them with under 200 "
                      f"characters left (e.g. \"Both hydrogen sulfide (H\") are dropped"
                      + (f", and {neg['dropped: abstract < 200 characters']} other abstracts under 200 characters" if
                         neg['dropped: abstract < 200 characters'] else "")
                      + ". Kept PMID, DOI, title (PubMed's trailing period kept), abstract, year, journal, publication "
                      "types; dropped the screening details (pathway x context cells, screen decisions). Non-EV "
                      "records are kept as realistic near-domain distractors: "
                      f"{sum(r['ev_focus'] for r in neg_recs)} of {len(neg_recs)} are `ev_focus`. The upstream flag is "
                      f"kept as `upstream_ev_focus` ({sum(bool(r.get('upstream_ev_focus')) for r in neg_recs)} true); "
                      f"it agrees with this corpus's `ev_focus` on {agree} of {len(neg_recs)} records."),
        "## Deduplication", "",
        f"{info['before_dedup']} records before, {m['records']} after: records of one paper (same PMID, DOI, or "
        "normalised title of >= 25 characters) are merged into the one with most metadata (ties: not a preprint), "
        "with missing fields filled from the others and their ids listed in `also_as`:", "",
        *[f"- {line}" for line in info["merges"]], "",
        f"Journal names: {info['journals_unified']} PubMed lower-case journal titles were given the notes' title-case "
        "spelling of the same journal (e.g. \"Journal of extracellular vesicles\" -> \"Journal of Extracellular "
        "Vesicles\"), so that one journal has one name.", "",
        "## Not used", "",
        *[f"- `{k}`: {v}" for k, v in EXCLUDED.items()],
        "- No other EV set has appeared in shared/data (checked README.md and every folder).", "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- fixtures
# Chosen by hand (and checked with `exorag ask`/`search` on the fixture index) so that the engine tests have content:
# EV papers on PD-L1 / immunotherapy, exosomal miRNA biomarkers, isolation (ultracentrifugation, size exclusion),
# dendritic-cell exosome vaccines, markers, size measurement, urine, drug delivery, metastasis, reviews; then non-EV
# SciFact neighbours (two about the RNA exosome complex) at the end of the file, so that "head = EV papers,
# tail = neighbours" holds as it does for exo_corpus.
FIXTURE_FULLTEXTS = ["openalex:W2934922729", "openalex:W2026230250"]
FIXTURE_EV_IDS = [  # ev_negative_space_screening records, by topic; then every ev_literature_notes_aquiles record
    # tumour-derived exosomes, metastasis, pre-metastatic niche (abbreviations TDE/TEX, TME, PMN in the abstracts)
    "pmid:38387275", "pmid:29634426", "pmid:32210954", "pmid:27157716", "pmid:31063754", "pmid:37371709",
    "pmid:36233088", "pmid:27760843", "pmid:31141251",
    # PD-L1, immune checkpoints, T-cell exhaustion, immunotherapy
    "pmid:36932387", "pmid:35811497", "pmid:35289120", "pmid:40534853", "pmid:38040340", "pmid:39528907",
    "pmid:34753486", "pmid:35915084", "pmid:34559989", "pmid:36671802",
    # exosomal miRNA / ncRNA biomarkers
    "pmid:40837802", "pmid:41028808", "pmid:27035745", "pmid:39979806", "pmid:40134019", "pmid:41201675",
    "pmid:38940326", "pmid:29107112",
    # colorectal and pancreatic cancer (cancer tags)
    "pmid:40991395", "pmid:36395405", "pmid:33741423", "pmid:34638330", "pmid:37086961", "pmid:33213490",
    "pmid:32713345", "pmid:33827783", "pmid:31064356", "pmid:34110633",
    # isolation, markers, characterisation
    "pmid:30193584", "pmid:39396003",  # British "characterise": with fewer chunks than RARE_SHARE it is a "specific term"
    "pmid:27863537", "pmid:32770502", "pmid:28934733", "pmid:33345458", "pmid:38667317", "pmid:29518183",
    "pmid:32424968",
    # urine and kidney
    "pmid:36614115", "pmid:33933600", "pmid:32180768", "pmid:38590132",
    # drug delivery, engineered vesicles
    "pmid:34863822", "pmid:34927169", "pmid:35452820", "pmid:31045328", "pmid:37157144", "pmid:38606373",
    # leukaemia
    "pmid:26384870", "pmid:36142562",
    # stem-cell exosomes, repair (cartilage / osteoarthritis)
    "pmid:35753534", "pmid:31960418", "pmid:28582278", "pmid:34428952", "pmid:36152993", "pmid:37437748",
    # neurodegeneration
    "pmid:25425650", "pmid:30965555", "pmid:32635578", "pmid:27535912", "pmid:27392863",
    # reviews
    "pmid:36593913", "pmid:41190394", "pmid:40344389",
]
FIXTURE_SCIFACT_EV = [  # SciFact abstracts about EVs (exosomal miRNA biomarkers, isolation, delivery, immunity)
    "19800147", "38745690", "654735", "53211308", "9095943", "3588621", "14692646", "18207615", "6913227",
]
FIXTURE_SCIFACT_NEIGHBOURS = [  # non-EV SciFact abstracts, near the EV topics (last lines of the file)
    # the RNA-degrading exosome complex (not vesicles): the 5 that bench/data/tag_labels.json labels rna_exosome_complex
    "16120395", "26112624", "8496132", "4465608", "11784947",
    "7343711", "8963413", "52180874", "24726600",  # PD-1 / PD-L1, immunotherapy without vesicles
    "3790895", "23471400", "663464",  # microRNA biomarkers without vesicles
    "33397197", "17327939",  # dendritic cells, vaccines
    "4429388", "9680193", "25832301", "33955641",  # ESCRT, tetraspanin, lipoprotein precipitation
    "22190276", "14853989", "40987633",  # phagosomes, neutrophil extracellular traps, autophagy
]
FIXTURE_PDFS = ["datta2010_dvt_prophylaxis_trauma_bmc_10.1186_1752-2897-4-1.pdf",
                "agyemanduah2014_qi_malawi_bmchsr_10.1186_1472-6963-14-1.pdf"]
PDF_NOTES = {
    FIXTURE_PDFS[0]: "Datta et al. 2010, Complications related to deep venous thrombosis prophylaxis in trauma: a "
                     "systematic review of the literature, J Trauma Manag Outcomes 4:1, doi:10.1186/1752-2897-4-1; "
                     "CC BY (Creative Commons Attribution, stated in the PDF)",
    FIXTURE_PDFS[1]: "Agyeman-Duah et al. 2014, Understanding the barriers to setting up a healthcare quality "
                     "improvement process in resource-limited settings (Malawi), BMC Health Serv Res 14:1, "
                     "doi:10.1186/1472-6963-14-1; CC BY (stated in the PDF)",
}


def fixture_records(shared: Path, pool: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {r["id"]: r for r in pool}
    for r in pool:
        for other in r.get("also_as", []):
            by_id.setdefault(other, r)
    missing = [i for i in FIXTURE_EV_IDS + FIXTURE_FULLTEXTS if i not in by_id]
    if missing:
        raise SystemExit(f"fixture ids not in the pool: {missing}")
    head = [by_id[i] for i in FIXTURE_EV_IDS]
    head += [r for r in pool if "ev_literature_notes_aquiles" in [r["source"], *r.get("also_in", [])]
             and r not in head]
    for n, rid in zip((45, 95), FIXTURE_FULLTEXTS):  # full texts inside the head, not among its first records
        head.insert(min(n, len(head)), by_id[rid])
    scifact = finish(load_scifact(shared, FIXTURE_SCIFACT_EV + FIXTURE_SCIFACT_NEIGHBOURS))
    ev_sci, neighbours = scifact[:len(FIXTURE_SCIFACT_EV)], scifact[len(FIXTURE_SCIFACT_EV):]
    records = head + ev_sci + neighbours
    ids = [r["id"] for r in records]
    if len(ids) != len(set(ids)):
        raise SystemExit(f"duplicate fixture ids: {[i for i, n in Counter(ids).items() if n > 1]}")
    return records


def fixture_sources_md(shared: Path, records: list[dict[str, Any]], data: bytes) -> str:
    m = makeup(records)
    n_neigh = len(FIXTURE_SCIFACT_NEIGHBOURS)
    sources = ("pap2pat_ev_fulltext", "ev_literature_notes_aquiles", "ev_negative_space_screening", "scifact")
    pdf_rows = [f"| `tests/fixtures/pdfs/{name}` | {(FIXTURE_PDF_DIR / name).stat().st_size:,} | {PDF_NOTES[name]} |"
                for name in FIXTURE_PDFS]
    lines = [
        "# Test fixture corpus: origin and licence of each file", "",
        "Real records for engine tests that run without `../shared/data`, written by "
        "`python scripts/make_demo_corpus.py --fixtures` (rerunnable; same input, same bytes). Not synthetic.", "",
        "| file | bytes | what, origin, licence |", "|---|---|---|",
        f"| `tests/fixtures/corpus/{FIXTURE_FILE}` | {len(data):,} | {m['records']} records in exorag's JSONL schema "
        "(below); each record's `source` and `license` fields name its origin and licence |",
        *pdf_rows, "",
        "## ev_small.jsonl", "",
        f"Order: {len(records) - n_neigh} EV-related records first (the first "
        f"{len(records) - n_neigh - len(FIXTURE_SCIFACT_EV)} from the EV sources, the 2 full texts at positions "
        f"{', '.join(str(i + 1) for i, r in enumerate(records) if r.get('sections'))}; then "
        f"{len(FIXTURE_SCIFACT_EV)} SciFact EV abstracts), then {n_neigh} non-EV SciFact neighbours (the last lines; "
        "five are about the RNA-degrading exosome complex) - as exo_corpus puts EV papers at its head and neighbours "
        "at its tail. The EV-source records are byte-for-byte the demo corpus's records "
        "(`exorag/data/demo/ev_demo.jsonl.gz`, see its SOURCES.md for cleaning and deduplication).", "",
        *makeup_md(m, sources), "",
        "EV rule: " + EV_RULE_MD, "",
        "Topics chosen so that tests have content: exosomal PD-L1 and immunotherapy, dendritic cells and EVs (no "
        "dendritic-cell exosome (Dex) vaccine paper exists in the licence-clean sources), "
        "exosomal miRNA biomarkers, isolation (ultracentrifugation, size-exclusion chromatography, "
        "filtration, affinity), EV markers (CD63/CD81/CD9/TSG101/Alix), size measurement (NTA, TRPS, flow cytometry), "
        "urinary EVs, EV drug delivery, tumour-derived exosomes in metastasis, EVs and viruses, single-EV methods, "
        "reviews.", "",
        "## Sources and licences", "",
    ]
    for s in sources:
        info = SOURCES[s]
        lines.append(f"- `{s}` ({m['per_source'].get(s, 0)} records): {info['repository']}, commit `{info['commit']}`; "
                     f"{info['licence_text']}.")
    lines.append(f"- PDFs (`shared/data/pdfs_open_access/`, copied byte-for-byte): {SOURCES['pdfs_open_access']['repository']}, "
                 f"commit `{SOURCES['pdfs_open_access']['commit']}`; {SOURCES['pdfs_open_access']['licence_text']}. "
                 "The CC BY-NC-SA PDF of that folder is not used.")
    lines += ["", "Not used: exosome_blog_pubmed_2025 (no licence), miretrieve_cancer_mirna (GPL-3), PubMedQA, BioASQ.", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- checks
def check_with_reader(path: Path, expected: int) -> None:
    """Read `path` (a gzip is read from a plain copy: the JSONL reader takes .jsonl/.ndjson only) with exorag's own
    reader; exit when a record fails to parse, has no real title or loses its year/PMID/DOI."""
    try:
        sys.path.insert(0, str(REPO))
        from exorag.build.sources import read_path
        from exorag.errors import ParseError
    except Exception as exc:  # noqa: BLE001 - the check is optional outside the repository's environment
        print(f"  (not checked with exorag's reader: {exc})")
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        plain = path
        if path.suffix == ".gz":
            plain = Path(tmp) / path.stem
            plain.write_bytes(gzip.decompress(path.read_bytes()))
        raws = [json.loads(line) for line in plain.read_text(encoding="utf-8").splitlines()]
        items = list(read_path(plain))
    problems = [i for i in items if isinstance(i, ParseError)]
    docs = [i for i in items if not isinstance(i, ParseError)]
    bad = [d.id for d, r in zip(docs, raws) if not d.title or d.title.startswith("pmid:") or d.id != r["id"]
           or (r.get("year") and d.year != r["year"]) or d.pmid != r.get("pmid", "") or d.doi != r.get("doi", "")
           or len(d.sections) != 1 + len(r.get("sections", []))]
    print(f"  exorag reader: {len(docs)} documents, {len(problems)} problems, {len(bad)} with lost fields")
    if problems or bad or len(docs) != expected:
        raise SystemExit(f"reader check failed: {problems[:3]} {bad[:3]} ({len(docs)} of {expected})")


# ----------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help=f"the shared data folder ({DEFAULT_SHARED})")
    parser.add_argument("--fixtures", action="store_true", help="write the test fixture corpus (tests/fixtures/)")
    parser.add_argument("--demo", action="store_true", help="write the demo corpus (the default without --fixtures)")
    parser.add_argument("--no-check", action="store_true", help="do not read the output back with exorag's reader")
    args = parser.parse_args(argv)
    shared = args.shared.resolve()
    if not (shared / "README.md").exists():
        parser.error(f"no shared data at {shared}")
    pool, info = build_pool(shared)
    if args.demo or not args.fixtures:
        data = jsonl_bytes(pool)
        path = DEMO_DIR / DEMO_FILE
        write_gzip(path, data)
        size = path.stat().st_size
        if size > DEMO_LIMIT:
            raise SystemExit(f"{path} is {size:,} bytes, over the {DEMO_LIMIT:,} limit")
        (DEMO_DIR / "SOURCES.md").write_text(demo_sources_md(shared, pool, info, data, size), encoding="utf-8")
        print(f"{path.relative_to(REPO)}: {len(pool)} records, {size:,} bytes ({len(data):,} uncompressed)")
        if not args.no_check:
            check_with_reader(path, len(pool))
    if args.fixtures:
        records = fixture_records(shared, pool)
        data = jsonl_bytes(records)
        FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
        (FIXTURE_DIR / FIXTURE_FILE).write_bytes(data)
        FIXTURE_PDF_DIR.mkdir(parents=True, exist_ok=True)
        for name in FIXTURE_PDFS:
            shutil.copyfile(shared / "pdfs_open_access" / name, FIXTURE_PDF_DIR / name)
        (FIXTURE_DIR / "SOURCES.md").write_text(fixture_sources_md(shared, records, data), encoding="utf-8")
        pdf_bytes = sum((FIXTURE_PDF_DIR / n).stat().st_size for n in FIXTURE_PDFS)
        print(f"{(FIXTURE_DIR / FIXTURE_FILE).relative_to(REPO)}: {len(records)} records, {len(data):,} bytes; "
              f"{len(FIXTURE_PDFS)} PDFs, {pdf_bytes:,} bytes")
        if not args.no_check:
            check_with_reader(FIXTURE_DIR / FIXTURE_FILE, len(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
