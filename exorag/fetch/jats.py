"""JATS full text (Europe PMC `fullTextXML`) -> a list of {heading, text} sections.

Walks the article `body`: every `sec` becomes a heading made of its `title` and those of the sections around it
("Results / Exosomal PD-L1 suppresses T cells"), with its own paragraphs (`p`, also inside lists, boxed text and
quotes) joined by blank lines; paragraphs before the first `sec` go under "Body". Inline markup goes through
`markup.element_text`: sub/superscripts keep their meaning ("10<sup>3</sup>" -> "10³", "C<sub>3</sub>N<sub>4</sub>"
-> "C₃N₄"), italics, xrefs and the like give their text. Left out on purpose: the back matter (`ref-list`,
acknowledgements, footnotes, appendices), formulas, supplementary material and, unless asked for, figure and
table captions (tables themselves always). The abstract is read separately (`abstract`), for records whose search
result lacks one.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from exorag.fetch.xmlsafe import local, parse, text_of

SKIP = frozenset({"fig", "table-wrap", "table-wrap-group", "fig-group", "disp-formula", "inline-formula",
                  "supplementary-material", "fn", "fn-group", "ref-list", "media", "graphic", "alternatives",
                  "tex-math", "math"})
_CAPTIONED = frozenset({"fig", "table-wrap"})
_INLINE_SKIP = SKIP - {"inline-formula"}  # keep what a formula inline in a sentence says, drop display blocks


def _children(node: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in node if local(child.tag) == name]


def _first(node: ET.Element | None, path: tuple[str, ...]) -> ET.Element | None:
    for name in path:
        if node is None:
            return None
        found = _children(node, name)
        node = found[0] if found else None
    return node


def sections(root: ET.Element, captions: bool = False) -> list[dict[str, str]]:
    """The body's sections in document order, each {heading, text}; [] when there is no body."""
    body = next((n for n in root.iter() if local(n.tag) == "body"), None)
    if body is None:
        return []
    out: list[dict[str, str]] = []

    def add(heading: str, paragraphs: list[str]) -> None:
        text = "\n\n".join(p for p in paragraphs if p)
        if text:
            out.append({"heading": heading, "text": text})

    def walk(node: ET.Element, trail: list[str]) -> None:
        paragraphs: list[str] = []
        heading = " / ".join(trail) or "Body"
        for child in node:
            name = local(child.tag)
            if name == "sec":
                add(heading, paragraphs)  # what came before a subsection stays before it
                paragraphs = []
                title = text_of(_first(child, ("title",))) or child.get("sec-type", "").replace("|", " / ").title()
                walk(child, trail + [title] if title else trail)
            elif name == "p":
                paragraphs.append(text_of(child, _INLINE_SKIP))
                if captions:
                    paragraphs.extend(_captions(child))
            elif name in _CAPTIONED and captions:
                paragraphs.extend(_captions(node=child, direct=True))
            elif name in ("list", "list-item", "boxed-text", "disp-quote", "def-list", "def-item", "def"):
                paragraphs.extend(_nested_paragraphs(child))
        add(heading, paragraphs)

    walk(body, [])
    return out


def _nested_paragraphs(node: ET.Element) -> list[str]:
    return [text_of(p, _INLINE_SKIP) for p in node.iter() if local(p.tag) == "p"]


def _captions(node: ET.Element, direct: bool = False) -> list[str]:
    """"Figure 2. caption text" for figures and tables in (or, with `direct`, being) `node`."""
    found = [node] if direct else [n for n in node.iter() if local(n.tag) in _CAPTIONED]
    texts = []
    for item in found:
        label = text_of(_first(item, ("label",)))
        caption = text_of(_first(item, ("caption",)))
        if caption:
            texts.append(f"{label}. {caption}" if label and not caption.startswith(label) else caption)
    return texts


def abstract(root: ET.Element) -> str:
    """The article's main abstract (not a graphical or teaser one), section titles kept as "Title: text"."""
    meta = _first(root, ("front", "article-meta"))
    if meta is None:
        return ""
    candidates = [a for a in _children(meta, "abstract") if a.get("abstract-type") in (None, "", "structured")]
    if not candidates:
        return ""
    node = candidates[0]
    secs = _children(node, "sec")
    if not secs:
        return "\n".join(text_of(p, _INLINE_SKIP) for p in node.iter() if local(p.tag) == "p")
    lines = []
    for sec in secs:
        title = text_of(_first(sec, ("title",)))
        body = " ".join(text_of(p, _INLINE_SKIP) for p in sec.iter() if local(p.tag) == "p")
        if body:
            lines.append(f"{title}: {body}" if title else body)
    return "\n".join(lines)


def parse_fulltext(data: bytes, what: str, captions: bool = False) -> tuple[str, list[dict[str, str]]]:
    """(abstract, sections) of a JATS document; FetchError naming `what` when it is not well-formed XML."""
    root = parse(data, what)
    return abstract(root), sections(root, captions)
