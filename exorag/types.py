"""The shared vocabulary: Document, Section, Chunk, Hit, Citation, Answer.

Frozen dataclasses only; no behaviour beyond small derived properties. Every other module speaks in these nouns.
A Document owns one `text`; Sections and Chunks are spans of that text given by character offsets, so that a
citation's quote can always be checked against `document.text[char_start:char_end]`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Section:
    """A span of a document's text with one heading and (for PDFs) one page."""

    heading: str
    start: int
    end: int
    page: int | None = None
    indexed: bool = True  # False for spans kept in the store but never retrieved (e.g. References)


def identifier_links(pmid: str = "", doi: str = "", pmcid: str = "") -> list[tuple[str, str]]:
    """(identifier kind, public URL) for each identifier given: "pmid" (PubMed), "doi", "pmcid" (PMC), in that
    order. The one place those URLs are built."""
    found = []
    if pmid:
        found.append(("pmid", f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"))
    if doi:
        found.append(("doi", f"https://doi.org/{doi}"))
    if pmcid:
        found.append(("pmcid", f"https://www.ncbi.nlm.nih.gov/pmc/articles/{pmcid}/"))
    return found


@dataclass(frozen=True)
class Document:
    """One paper (abstract or full text) with its bibliographic metadata."""

    id: str
    text: str
    sections: tuple[Section, ...]
    title: str = ""
    authors: tuple[str, ...] = ()
    journal: str = ""
    year: int | None = None
    pmid: str = ""
    doi: str = ""
    pmcid: str = ""
    publication_types: tuple[str, ...] = ()
    mesh: tuple[str, ...] = ()
    source: str = ""
    origin: str = ""  # the file it was read from

    @property
    def content_hash(self) -> str:
        """Hash over everything stored for the document except where it was read from."""
        payload = asdict(self)
        payload.pop("origin")
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=list)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    @property
    def links(self) -> list[tuple[str, str]]:
        """(identifier kind, public URL) for each identifier known: "pmid" (PubMed), "doi", "pmcid" (PMC), in that
        order (identifier_links)."""
        return identifier_links(self.pmid, self.doi, self.pmcid)

    @property
    def url(self) -> str:
        """The best public link: PubMed, else DOI, else PMC; empty when none is known."""
        links = self.links
        return links[0][1] if links else ""


@dataclass(frozen=True)
class Chunk:
    """A retrievable passage: consecutive sentences of one section, `text == document.text[char_start:char_end]`."""

    doc_id: str
    ordinal: int
    text: str
    section: str
    page: int | None
    char_start: int
    char_end: int
    id: int | None = None  # assigned by the store; also the FAISS id


@dataclass(frozen=True)
class Derived:
    """What the build stage derives from a Document for the index: study tags {key: [values]} and the
    (short form, long form) abbreviations the document defines."""

    tags: dict[str, list[str]]
    abbreviations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Filters:
    """Metadata restrictions applied on every retrieval path; an unset field restricts nothing.

    Matching of source, journal and publication type is exact but case-insensitive; any listed value passes.
    `tags` are (key, value) pairs, checked and normalised once, here: a "key=value" string given instead is parsed
    by exorag.build.tags.parse_tag (TagError for an unknown key or value). Values of one key are alternatives,
    different keys must all hold.
    """

    year_from: int | None = None
    year_to: int | None = None
    sources: tuple[str, ...] = ()
    journals: tuple[str, ...] = ()
    pub_types: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if any(isinstance(spec, str) for spec in self.tags):
            from exorag.build.tags import parse_tag

            pairs = (parse_tag(spec) if isinstance(spec, str) else tuple(spec) for spec in self.tags)
            object.__setattr__(self, "tags", tuple(dict.fromkeys(pairs)))

    @property
    def empty(self) -> bool:
        return self == Filters()


@dataclass(frozen=True)
class Hit:
    """A chunk returned by retrieval, with its document and scores."""

    chunk: Chunk
    document: Document
    score: float
    dense_score: float | None = None
    lexical_score: float | None = None


@dataclass(frozen=True)
class Citation:
    """One quoted sentence: `quote == document.text[char_start:char_end]`."""

    n: int
    document: Document
    quote: str
    section: str
    page: int | None
    char_start: int
    char_end: int
    score: float
    stance: str | None = None  # for yes/no questions and claims: the judge's "supports" / "contradicts" / "neither"


@dataclass(frozen=True)
class Answer:
    """An extractive answer: sentences quoted from retrieved passages, each followed by its `[n]`."""

    question: str
    text: str
    abstained: bool
    citations: tuple[Citation, ...] = ()
    hits: tuple[Hit, ...] = field(default=())
    support: float = 0.0  # the judge's P(answers) of the best sentence (what abstention is decided on)
    consensus: dict[str, int] | None = None  # yes/no questions: papers that support / contradict / neither
    missing: tuple[str, ...] = ()  # the question's specific terms that no cited sentence (or its title) mentions
    note: str = ""  # why it abstained, or what the answer leaves out
