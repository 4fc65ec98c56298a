"""Inline markup (sub/superscripts, emphasis) as text: the one conversion of exorag.fetch.markup, from XML elements
(PubMed, JATS) and from literal tags (Europe PMC's HTML, JSONL records)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from exorag.fetch import markup, xmlsafe
from exorag.build.sources import jsonl


def xml_text(fragment: str) -> str:
    return xmlsafe.text_of(ET.fromstring(f"<p>{fragment}</p>"))


@pytest.mark.parametrize("fragment, expected", [
    ("2.36 × 10<sup>3</sup> particles", "2.36 × 10³ particles"),
    ("10<sup>-4</sup> and 10<sup>−4</sup> M", "10⁻⁴ and 10⁻⁴ M"),
    ("CD8<sup>+</sup> T cells", "CD8⁺ T cells"),
    ("Fe<sup>2+</sup>, Ca<sup>(2+)</sup>, x<sup>n</sup>, y<sup>i=1</sup>", "Fe²⁺, Ca⁽²⁺⁾, xⁿ, yⁱ⁼¹"),
    ("g-C<sub>3</sub>N<sub>4</sub>", "g-C₃N₄"),
    ("IC<sub>50</sub>, V<sub>max</sub>, H<sub>2</sub>O", "IC₅₀, Vₘₐₓ, H₂O"),
    ("K<sub>d</sub> and K<sub>D</sub>; t<sub>1/2</sub>", "K_d and K_D; t_(1/2)"),
    ("HUBC-Exo<sup>si-MFG-E8</sup> on", "HUBC-Exo^(si-MFG-E8) on"),
    ("Smith<sup>a</sup>, 10<sup>th</sup>", "Smith^a, 10^th"),
    ("x<sup>a</sup>b", "x^(a)b"),  # a bare ^a followed by a letter would read as ^ab
    ("IL-1<sub>β</sub> level", "IL-1_β level"),
    ("x<sup><i>n</i></sup>", "xⁿ"),
    ("<i>in vivo</i>, <b>PD-L1</b>, <u>and</u>, <sc>Treg</sc>", "in vivo, PD-L1, and, Treg"),
    ("y<sup> 2 </sup>z", "y ² z"),  # spaces inside a script move outside it
    ("a<sup></sup>b", "ab"),
])
def test_xml_inline_markup(fragment: str, expected: str) -> None:
    assert xml_text(fragment) == expected


def test_xml_skips_and_deep_nesting() -> None:
    root = ET.fromstring("<p>A<fig>dropped</fig> 10<sup>3<fn>x</fn></sup> B</p>")
    assert xmlsafe.text_of(root, frozenset({"fig", "fn"})) == "A 10³ B"
    deep = "<p>" + "<i>" * 20_000 + "10<sup>3</sup>" + "</i>" * 20_000 + "</p>"
    assert xmlsafe.text_of(ET.fromstring(deep)) == "10³"  # no RecursionError
    assert xmlsafe.text_of(None) == ""


def test_literal_tags_convert_and_other_text_is_untouched() -> None:
    assert markup.tags_to_text("10<sup>3</sup> and C<sub>3</sub>N<sub>4</sub>") == "10³ and C₃N₄"
    assert markup.tags_to_text("<i>in vivo</i> CD8<SUP>+</SUP> T") == "in vivo CD8⁺ T"
    for untouched in ("a < b and c > d", "x <b and c> y", "<supper>", "no tags at all", "<sub-type>"):
        assert markup.tags_to_text(untouched) == untouched
    assert markup.tags_to_text("x<sup class='c'>2</sup>") == "x²"
    assert markup.tags_to_text("</sup>x<sup>3") == "x3"  # stray and unclosed tags dropped, their text kept
    # HTML that the caller unescapes afterwards: a script's entities count, and its result is escaped again
    assert markup.tags_to_text("10<sup>&#8722;3</sup> &amp; <sup>a&amp;b</sup>", entities=True) == \
        "10⁻³ &amp; ^(a&amp;b)"


def test_jsonl_title_and_abstract_tags_become_scripts(tmp_path: Path) -> None:
    record = {"id": "x:1", "title": "CD8<sup>+</sup> T cells and g-C<sub>3</sub>N<sub>4</sub>",
              "abstract": "Plasma held 2.36 × 10<sup>3</sup> EVs <i>in vivo</i>; a < b, 3 > 2.",
              "sections": [{"heading": "Results", "text": "Fe<sup>2+</sup> rose."}], "journal": "J <i>EV</i>"}
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    [doc] = list(jsonl.read(path))
    assert doc.title == "CD8⁺ T cells and g-C₃N₄"
    assert doc.text == "Plasma held 2.36 × 10³ EVs in vivo; a < b, 3 > 2.\n\nFe²⁺ rose."
    assert doc.journal == "J EV"
    beir = jsonl.record_to_document({"_id": "1", "title": "t", "text": "10<sup>-2</sup> M"}, path, 1)
    assert beir.text == "10⁻² M"
