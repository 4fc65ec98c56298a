"""Inline markup of abstracts and full texts as plain text that keeps what the markup meant.

One conversion for PubMed efetch XML, JATS (Europe PMC full text), Europe PMC's abstract HTML and tag-shaped
text in JSONL records, so that `10<sup>3</sup>` is stored as "10³", not "103":

- `<sup>x</sup>`: Unicode superscripts when every character of x has one (digits, + - − = ( ) n i): "10³",
  "CD8⁺", "Fe²⁺", "10⁻⁴"; else "^x" when x is a single alphanumeric token not followed by a letter or digit
  ("^a", "^TM"), else "^(x)" ("HUBC-Exo^(si-MFG-E8)").
- `<sub>x</sub>`: Unicode subscripts when every character has one (digits, + - − = ( ) and the letters
  a e h i j k l m n o p r s t u v x): "C₃N₄", "IC₅₀", "Vₘₐₓ"; else "_x" / "_(x)" on the same rule ("K_d",
  "t_(1/2)").
- every other element (i, b, u, sc, italic, bold, xref, ...) gives its text, tags dropped.

Whitespace stays where it was: none is added around the markup, and spaces just inside a script move outside it
("CD8<sup>+</sup> T cells" -> "CD8⁺ T cells"); runs of whitespace fold to one space as before.
`element_text` reads an ElementTree element (with an explicit stack, so a hostile answer nested 10,000 deep does
not raise RecursionError); `tags_to_text` reads a string with literal tags and touches nothing but the tags it
knows (`<sup>`, `<sub>`, `<i>`, `<b>`, `<u>`, `<em>`, `<strong>`, `<sc>`; attributes only as name="value").
Deliberately left out: MathML and other formulas (callers skip or flatten them), Greek and capital letters in
scripts (Unicode has no complete set, so they take the ^ / _ form), and scripts inside scripts beyond taking the
inner one's converted text as the outer one's content.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

SUPERSCRIPT = dict(zip("0123456789+-−=()ni", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁼⁽⁾ⁿⁱ"))
SUBSCRIPT = dict(zip("0123456789+-−=()aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ"))
SCRIPTS = {"sup": ("^", SUPERSCRIPT), "sub": ("_", SUBSCRIPT)}


@dataclass
class _Script:
    """A converted-later script: its form depends on the character that follows it."""

    kind: str  # "sup" or "sub"
    content: str


def script(kind: str, content: str, following: str = "") -> str:
    """`content` of a <sup> (kind "sup") or <sub> ("sub") as text; `following`: the text right after it."""
    mark, table = SCRIPTS[kind]
    core = " ".join(content.split())
    lead = " " if content[:1].isspace() else ""
    trail = " " if content[-1:].isspace() and core else ""
    if not core:
        return lead
    if all(ch in table for ch in core):
        body = "".join(table[ch] for ch in core)
    elif core.isalnum() and not following[:1].isalnum():
        body = mark + core
    else:
        body = f"{mark}({core})"
    return lead + body + trail


class _Escaped(_Script):
    """A script whose converted text is HTML-escaped again (for text the caller unescapes afterwards)."""


def _convert(part: _Script, following: str) -> str:
    converted = script(part.kind, part.content, following)
    return html.escape(converted, quote=False) if isinstance(part, _Escaped) else converted


def _join(parts: list[str | _Script]) -> str:
    """The parts as one string, each script converted with the text that follows it."""
    out = []
    for i, part in enumerate(parts):
        if isinstance(part, str):
            out.append(part)
            continue
        following = next((p for p in parts[i + 1 :] if not isinstance(p, str) or p), "")
        out.append(_convert(part, following if isinstance(following, str) else "^"))
    return "".join(out)


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def element_text(element: ET.Element | None, skip: frozenset[str] = frozenset()) -> str:
    """All text under `element` with its inline markup converted, whitespace folded, leaving out subtrees whose
    (namespace-free) tag is in `skip`."""
    if element is None:
        return ""
    root: list[str | _Script] = [element.text or ""]
    # (children, tail, kind of script or None, the parts this element's text goes into)
    stack: list[tuple[Iterator[ET.Element], str | None, str | None, list[str | _Script]]] = [
        (iter(element), None, None, root)]
    while stack:
        children, tail, kind, parts = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            if kind is not None:
                parent = stack[-1][3]
                parent.append(_Script(kind, _join(parts)))
                parent.append(tail or "")
            elif stack:
                parts.append(tail or "")
            continue
        name = _local(child.tag)
        if name in skip or not isinstance(child.tag, str):
            parts.append(child.tail or "")
        elif name in SCRIPTS:
            stack.append((iter(child), child.tail, name, [child.text or ""]))
        else:
            parts.append(child.text or "")
            stack.append((iter(child), child.tail, None, parts))
    return " ".join(_join(root).split())


_TAG = re.compile(r"""<(/?)\s*(sup|sub|i|b|u|em|strong|sc)(?:\s+[\w:-]+\s*=\s*(?:"[^"<>]*"|'[^'<>]*'))*\s*>""",
                  re.IGNORECASE)  # attributes only as name="value", so "a <b and c> d" is no tag
_ANY_TAG = re.compile(r"<[^<>]*>")


def tags_to_text(text: str, entities: bool = False) -> str:
    """`text` with its literal inline tags converted as `element_text` does; all other text as it was.

    With `entities` (HTML that the caller unescapes afterwards), a script's content is unescaped and stripped of
    other tags before it is converted, and the result escaped again. An unclosed tag is dropped and its text kept
    as it is; a closing tag without an opening one is dropped.
    """
    if "<" not in text:
        return text
    # frames: (tag name, parts); the bottom one is the text itself
    frames: list[tuple[str, list[str | _Script]]] = [("", [])]
    at = 0
    for match in _TAG.finditer(text):
        frames[-1][1].append(text[at : match.start()])
        at = match.end()
        closing, name = match.group(1), match.group(2).lower()
        if not closing:
            frames.append((name, []))
            continue
        if not any(f[0] == name for f in frames[1:]):
            continue  # a stray closing tag
        while True:
            open_name, parts = frames.pop()
            inner = _join(parts)
            if open_name == name and name in SCRIPTS:
                if entities:
                    inner = html.unescape(_ANY_TAG.sub("", inner))
                frames[-1][1].append(_Escaped(name, inner) if entities else _Script(name, inner))
            else:
                frames[-1][1].append(inner)
            if open_name == name:
                break
    frames[-1][1].append(text[at:])
    while len(frames) > 1:  # unclosed: their text as it is
        _, parts = frames.pop()
        frames[-1][1].append(_join(parts))
    return _join(frames[0][1])


