"""Reference export: BibTeX, RIS, CSL-JSON and Markdown of a real answer, parsed back where a parser exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from exorag.ask.answer import ask
from exorag.cli import main
from exorag.output.export import export, to_bibtex
from exorag.types import Document, Section


def test_exports_of_a_real_answer(index) -> None:  # type: ignore[no-untyped-def]
    answer = ask(index, "How are extracellular vesicles used for drug delivery?")
    assert not answer.abstained
    docs = list(dict.fromkeys(c.document.id for c in answer.citations))
    bib = export(answer, "bibtex")
    assert len(re.findall(r"^@article\{", bib, re.MULTILINE)) == len(docs)
    assert bib.count("{") == bib.count("}")
    ris = export(answer, "ris")
    assert ris.count("TY  - JOUR") == ris.count("ER  - ") == len(docs)
    csl = json.loads(export(answer, "csljson"))
    assert [item["id"] for item in csl] == docs and all(item["type"] == "article-journal" for item in csl)
    md = export(answer, "markdown")
    assert md.startswith("**Q:** ") and "**References**" in md and "[1]" in md


def test_bibtex_escapes_and_unique_keys() -> None:
    doc = Document(id="x", text="t", sections=(Section("Body", 0, 1),), title="50% of EVs & {CD63}_high",
                   authors=("Théry C", "Witwer KW"), year=2018, journal="J Extracell Vesicles")
    out = to_bibtex([doc, doc])
    keys = re.findall(r"@article\{([^,]+),", out)
    assert keys == ["thery2018high", "thery2018higha"]
    assert r"50\% of EVs \& \{CD63\}\_high" in out


def test_cli_ask_format(built_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "Which methods characterise single extracellular vesicles?", "--index", str(built_index),
                 "--format", "ris"]) == 0
    assert capsys.readouterr().out.startswith("TY  - JOUR")
