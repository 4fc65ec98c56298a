"""Parse XML from the network with xml.etree, never resolving entities or fetching DTDs.

PubMed efetch and JATS answers start with a DOCTYPE that names an external DTD. The standard library parser does
not fetch it, but a DOCTYPE with an internal subset can declare entities: external ones (`SYSTEM "file:///..."`)
and nested expanding ones ("billion laughs"). So any document that declares an entity is refused outright, and
the DOCTYPE is cut off before parsing; without a DOCTYPE no entity can exist beyond the five predefined ones
and numeric character references, and a reference to any other is a parse error.
Deliberately left out: DTD validation and namespace handling (callers match local names).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from exorag.errors import FetchError
from exorag.fetch import markup

_DOCTYPE = re.compile(rb"<!DOCTYPE\s[^\[>]*(?:\[.*?\]\s*)?>", re.DOTALL)


def parse(data: bytes, what: str) -> ET.Element:
    """The root element of `data`; FetchError naming `what` when it is not well-formed or declares entities."""
    if b"<!ENTITY" in data:
        raise FetchError(f"{what}: the XML declares entities; refused (entities are never expanded)")
    head, sep, _ = data.partition(b"<!DOCTYPE")
    if sep:
        match = _DOCTYPE.search(data, len(head))
        if match is None:
            raise FetchError(f"{what}: the XML has an unterminated DOCTYPE (truncated answer?)")
        data = data[: match.start()] + data[match.end() :]
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":")[0]
        hint = " (truncated answer?)" if "no element found" in str(exc) or "unclosed token" in str(exc) else ""
        raise FetchError(f"{what}: not well-formed XML ({reason} at line {line}, column {column}){hint}") from None


def local(tag: str) -> str:
    """The tag without a namespace: '{http://...}title' -> 'title'."""
    return tag.rsplit("}", 1)[-1]


def text_of(element: ET.Element | None, skip: frozenset[str] = frozenset()) -> str:
    """All text under `element`, leaving out subtrees whose tag is in `skip`; inline markup as `markup.element_text`
    gives it (10<sup>3</sup> -> "10³", C<sub>3</sub>N<sub>4</sub> -> "C₃N₄", italics as their text)."""
    return markup.element_text(element, skip)
