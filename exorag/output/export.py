"""Reference export of the works an answer cites: BibTeX, RIS, CSL-JSON and Markdown.

One entry per cited document (not per quote), in order of first citation, so the numbers in the answer map onto
the list. BibTeX keys are `FirstAuthorYearFirstTitleWord` made unique; text is escaped for each format.
Markdown gives the answer itself with its numbered reference list, ready to paste into a manuscript.
Deliberately left out: citation styles beyond one compact style (use CSL-JSON with a CSL processor for those).
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Literal

from exorag.output.render import answer_markdown, display_title, grouped_references
from exorag.types import Answer, Document

Format = Literal["bibtex", "ris", "csljson", "markdown"]
FORMATS: tuple[str, ...] = ("bibtex", "ris", "csljson", "markdown")


def cited_documents(answer: Answer) -> list[Document]:
    return [doc for _, doc in grouped_references(answer.citations)]


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _family(author: str) -> str:
    """Family name of 'Family AB', 'Family, Given' or 'Given Family'."""
    if "," in author:
        return author.split(",", 1)[0].strip()
    parts = author.split()
    if len(parts) >= 2 and (parts[-1].isupper() and len(parts[-1]) <= 3):  # PubMed style: "Thery C"
        return " ".join(parts[:-1])
    return parts[-1] if parts else author


def _given(author: str) -> str:
    if "," in author:
        return author.split(",", 1)[1].strip()
    parts = author.split()
    if len(parts) >= 2 and (parts[-1].isupper() and len(parts[-1]) <= 3):
        return parts[-1]
    return " ".join(parts[:-1])


def bibtex_key(doc: Document, taken: set[str]) -> str:
    family = re.sub(r"[^A-Za-z]", "", _ascii(_family(doc.authors[0]))) if doc.authors else "anon"
    word = next((w for w in re.findall(r"[A-Za-z]+", _ascii(doc.title)) if len(w) > 3), "untitled")
    base = f"{family.lower() or 'anon'}{doc.year or ''}{word.lower()}"
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}{chr(ord('a') + n - 2)}" if n <= 27 else f"{base}{n}"
    taken.add(key)
    return key


def _bib_escape(text: str) -> str:
    return re.sub(r"([&%$#_{}])", r"\\\1", text).replace("~", r"\textasciitilde{}")


def to_bibtex(docs: list[Document]) -> str:
    taken: set[str] = set()
    entries = []
    for doc in docs:
        fields = [("title", display_title(doc)), ("author", " and ".join(doc.authors)), ("journal", doc.journal),
                  ("year", str(doc.year or "")), ("doi", doc.doi), ("pmid", doc.pmid), ("pmcid", doc.pmcid),
                  ("url", doc.url)]
        body = ",\n".join(f"  {name} = {{{_bib_escape(value)}}}" for name, value in fields if value)
        entries.append(f"@article{{{bibtex_key(doc, taken)},\n{body}\n}}")
    return "\n\n".join(entries) + ("\n" if entries else "")


def to_ris(docs: list[Document]) -> str:
    records = []
    for doc in docs:
        lines = ["TY  - JOUR", f"TI  - {display_title(doc)}"]
        lines += [f"AU  - {a}" for a in doc.authors]
        if doc.year:
            lines.append(f"PY  - {doc.year}")
        if doc.journal:
            lines.append(f"JO  - {doc.journal}")
        if doc.doi:
            lines.append(f"DO  - {doc.doi}")
        if doc.pmid:
            lines.append(f"AN  - PMID:{doc.pmid}")
        if doc.url:
            lines.append(f"UR  - {doc.url}")
        lines.append("ER  - ")
        records.append("\n".join(line.replace("\n", " ") for line in lines))
    return "\n\n".join(records) + ("\n" if records else "")


def to_csljson(docs: list[Document]) -> str:
    items = []
    for i, doc in enumerate(docs, start=1):
        item: dict[str, object] = {"id": doc.id, "type": "article-journal", "title": display_title(doc),
                                   "citation-number": i}
        if doc.authors:
            item["author"] = [{"family": _family(a), "given": _given(a)} for a in doc.authors]
        if doc.year:
            item["issued"] = {"date-parts": [[doc.year]]}
        for key, value in (("container-title", doc.journal), ("DOI", doc.doi), ("PMID", doc.pmid),
                           ("PMCID", doc.pmcid), ("URL", doc.url)):
            if value:
                item[key] = value
        items.append(item)
    return json.dumps(items, ensure_ascii=False, indent=2) + "\n"


def export(answer: Answer, fmt: Format) -> str:
    """The answer's cited works in `fmt`; for markdown, the answer with its reference list."""
    if fmt == "markdown":
        return f"**Q:** {answer.question}\n\n" + answer_markdown(answer) + "\n"
    docs = cited_documents(answer)
    if fmt == "bibtex":
        return to_bibtex(docs)
    if fmt == "ris":
        return to_ris(docs)
    if fmt == "csljson":
        return to_csljson(docs)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
