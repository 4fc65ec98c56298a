"""Fuzzing the readers and the PubMed XML parser with hypothesis: truncated, bit-flipped, huge and deeply nested
inputs and random bytes. The only allowed outcomes are Documents, ParseError values or a raised ParseError (a
FetchError for the XML parser): never another exception, never a hang (each example runs under an alarm).

Seeds are real files, all committed under tests/fixtures: records of the fixture corpus (corpus/ev_small.jsonl), its two
CC BY PDFs (pdfs/) and the RIS, BibTeX and efetch fixtures.
"""

from __future__ import annotations

import json
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exorag.errors import FetchError, ParseError
from exorag.fetch.pubmed import parse_articles
from exorag.build.sources import bibtex, jsonl, pdf, ris, text
from exorag.types import Document

from .conftest import FIXTURE_CORPUS, FIXTURE_PDFS

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HANG_S = 10  # one example taking longer than this is a hang
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.data_too_large])
WORKDIR = Path(tempfile.mkdtemp(prefix="exorag-fuzz-"))


class Hang(Exception):
    pass


@contextmanager
def no_hang() -> Iterator[None]:
    def fire(signum: int, frame: object) -> None:
        raise Hang(f"no outcome after {HANG_S} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_all(module, data: bytes, suffix: str) -> list[Document | ParseError]:  # type: ignore[no-untyped-def]
    """Every item the reader yields for a file holding `data`; a raised ParseError is returned as one item."""
    path = WORKDIR / f"fuzz{suffix}"
    path.write_bytes(data)
    with no_hang():
        try:
            items = list(module.read(path))
        except ParseError as exc:
            items = [exc]
    for item in items:
        assert isinstance(item, (Document, ParseError)), type(item)
        if isinstance(item, Document):
            for section in item.sections:
                assert 0 <= section.start <= section.end <= len(item.text)
    return items


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` truncated, with bytes flipped, with a run of bytes inserted, or spliced with random bytes."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["truncate", "flip", "insert", "splice"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if how == "truncate":
            del data[at:]
        elif how == "flip":
            for _ in range(draw(st.integers(1, 16))):
                i = draw(st.integers(0, len(data) - 1))
                data[i] ^= 1 << draw(st.integers(0, 7))
        elif how == "insert":
            data[at:at] = draw(st.sampled_from([b"\x00", b"\xff", b"{", b"[", b"\n", b" ", b"#", b"@", b"<", b"("])) \
                * draw(st.integers(1, 5000))
        else:
            data[at:at + draw(st.integers(0, 64))] = draw(st.binary(max_size=64))
    return bytes(data)


def seed(path: Path) -> bytes:
    if not path.exists():
        pytest.skip(f"seed not found at {path}")
    return path.read_bytes()


def corpus_head(n: int = 5) -> bytes:
    with FIXTURE_CORPUS.open("rb") as handle:
        return b"".join(next(handle) for _ in range(n))


# --------------------------------------------------------------------------------------------------- JSONL

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
FIELDS = ["id", "_id", "pmid", "doi", "title", "abstract", "text", "sections", "authors", "journal", "year",
          "mesh", "publication_types", "source", "pmcid"]


@given(st.data())
@FUZZ
def test_jsonl_reader(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["mutated", "fields", "nested", "huge", "random"]))
    if kind == "mutated":
        blob = data.draw(mutated(corpus_head()))
    elif kind == "fields":  # well-formed JSON whose known fields hold values of any type
        record = data.draw(st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=8))
        blob = json.dumps(record).encode() + b"\n"
    elif kind == "nested":
        depth = data.draw(st.integers(10, 200_000))
        opener = data.draw(st.sampled_from(['[', '{"a":', '{"abstract":', '{"sections":[']))
        blob = (opener * depth).encode() + b"\n"
    elif kind == "huge":
        blob = json.dumps({"id": "h:1", "abstract": "exosome " * data.draw(st.integers(1, 300_000))}).encode()
    else:
        blob = data.draw(st.binary(max_size=2000))
    read_all(jsonl, blob, ".jsonl")


# --------------------------------------------------------------------------------------------------- text

@given(st.data())
@FUZZ
def test_text_and_markdown_reader(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["text", "headings", "bytes"]))
    if kind == "text":
        blob = data.draw(st.text(max_size=3000)).encode("utf-8", "surrogatepass")
    elif kind == "headings":  # long runs of spaces and hashes around headings
        parts = data.draw(st.lists(st.sampled_from(["#", "# ", " " * 3000, "#" * 7, "a", "\n", "\t" * 2000, "\r"]),
                                   max_size=12))
        blob = "".join(parts).encode()
    else:
        blob = data.draw(st.binary(max_size=3000))
    read_all(text, blob, data.draw(st.sampled_from([".md", ".txt"])))


# --------------------------------------------------------------------------------------------------- RIS / BibTeX

@given(st.data())
@FUZZ
def test_ris_reader(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["mutated", "text", "huge"]))
    if kind == "mutated":
        blob = data.draw(mutated(seed(FIXTURES / "refs.ris")))
    elif kind == "huge":
        blob = b"TY  - JOUR\nAB  - " + b"exosome " * data.draw(st.integers(1, 200_000)) + b"\nER  - \n"
    else:
        blob = data.draw(st.text(max_size=2000)).encode("utf-8", "surrogatepass")
    read_all(ris, blob, ".ris")


@given(st.data())
@FUZZ
def test_bibtex_reader(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["mutated", "text", "nested"]))
    if kind == "mutated":
        blob = data.draw(mutated(seed(FIXTURES / "refs.bib")))
    elif kind == "nested":
        depth = data.draw(st.integers(1, 100_000))
        blob = b"@article{k, abstract = " + b"{" * depth + b"exosome" + b"}" * data.draw(st.integers(0, depth)) + b"}"
    else:
        blob = data.draw(st.text(max_size=2000)).encode("utf-8", "surrogatepass")
    read_all(bibtex, blob, ".bib")


# --------------------------------------------------------------------------------------------------- PDF

SEED_PDFS = sorted(FIXTURE_PDFS.glob("*.pdf"), key=lambda p: p.stat().st_size)


@given(st.data())
@settings(FUZZ, max_examples=25)
def test_pdf_reader(data: st.DataObject) -> None:
    original = data.draw(st.sampled_from(SEED_PDFS)).read_bytes()
    blob = data.draw(mutated(original))
    if data.draw(st.booleans()):
        blob += b"\n%%EOF\n"  # so that truncated files get past the cheap checks and into pypdf
    read_all(pdf, blob, ".pdf")


# --------------------------------------------------------------------------------------------------- PubMed XML

@given(st.data())
@FUZZ
def test_pubmed_xml_parser(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["mutated", "nested", "random"]))
    if kind == "mutated":
        blob = data.draw(mutated(seed(FIXTURES / "pubmed" / "efetch.xml")))
    elif kind == "nested":
        depth = data.draw(st.integers(1, 100_000))
        tag = data.draw(st.sampled_from([b"a", b"PubmedArticleSet", b"AbstractText"]))
        blob = b"<PubmedArticleSet><PubmedArticle><MedlineCitation><Article><Abstract><AbstractText>" \
            if tag == b"AbstractText" else b""
        blob += b"<" + tag + b">" * 1 + (b"<" + tag + b">") * depth + b"x"
        blob += (b"</" + tag + b">") * (depth + 1) if data.draw(st.booleans()) else b""
    else:
        blob = data.draw(st.binary(max_size=2000))
    with no_hang():
        try:
            records = parse_articles(blob, "fuzz")
        except FetchError:
            return
    assert isinstance(records, list) and all(isinstance(r, dict) for r in records)


# --------------------------------------------------------------------------------------------------- found so far

@pytest.mark.parametrize("module, suffix, blob", [
    (jsonl, ".jsonl", b"[" * 5000 + b"\n"),  # RecursionError escaped json.loads
    (jsonl, ".jsonl", b'{"abstract": "Exosomes carry PD-L1.", "sections": 5}\n'),  # TypeError: int not iterable
    (text, ".md", b"# a" + b" " * 3000 + b"b\n\nExosomes.\n"),  # cubic backtracking in the heading pattern
], ids=["jsonl-nested", "jsonl-sections-int", "markdown-heading-spaces"])
def test_inputs_the_fuzzer_found(module, suffix: str, blob: bytes) -> None:  # type: ignore[no-untyped-def]
    assert read_all(module, blob, suffix)


def test_deeply_nested_pubmed_xml_is_not_a_recursion_error() -> None:
    blob = b"<PubmedArticleSet>" + b"<a>" * 20_000 + b"x" + b"</a>" * 20_000 + b"</PubmedArticleSet>"
    with no_hang():
        assert parse_articles(blob, "fuzz") == []
    with no_hang(), pytest.raises(FetchError, match="expected a PubmedArticleSet"):
        parse_articles(b"<a>" * 20_000 + b"x" + b"</a>" * 20_000, "fuzz")
