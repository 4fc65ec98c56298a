"""Character spacing (`Tc`) folded into TJ offsets, so pypdf finds the spaces of tightly justified lines.

Some publishers justify a line by setting a large character spacing (`Tc`, extra room after every glyph) and then
pulling each glyph back with a positive TJ offset, except after the glyphs that end a word. pypdf's plain text
extraction decides on spaces from TJ offsets alone, so such a line comes out as "reactionsto,youknewwhatyou".
`normalise_spacing(page)` rewrites the page's content stream in memory (the file is never written): for a TJ array
shown with `Tc` of at least MIN_TC_EM of the font size whose glyph gaps are mostly pulled back (PULLED_BACK: the
trick, not letter-spacing), each glyph gets an explicit offset worth the `Tc` displacement, merged with the TJ
offset that follows it, and the array is shown with `Tc` 0. The glyphs and their positions stay the same; only the
way the gap is expressed changes, so pypdf sees a word gap where the page shows one.
Deliberately left out: plain letter-spacing (a heading set with tracking is left as pypdf reads it), `Tj` strings
(one string cannot pull glyphs back), word spacing (`Tw`, which pypdf already honours for byte 32), vertical
writing, and text in Type0 fonts whose CMap is not Identity (codes of mixed length: left as pypdf reads them).
"""

from __future__ import annotations

import re
from typing import Any

from pypdf import PageObject
from pypdf.generic import ArrayObject, ByteStringObject, ContentStream, FloatObject, NameObject, TextStringObject

MIN_TC_EM = 0.05  # character spacing below this share of the font size is kerning, not a justification trick
_TC = re.compile(rb"(-?\d*\.?\d+)\s+Tc\b")


def _needs_work(data: bytes) -> bool:
    """A cheap look at the raw stream: any `Tc` large enough to matter at a font size of 1 to 12?"""
    return any(abs(float(m.group(1))) >= MIN_TC_EM for m in _TC.finditer(data))


def _code_widths(page: PageObject) -> dict[str, int]:
    """Bytes per character code of each font of the page: 2 for Type0 fonts with an Identity CMap, 0 (unknown: leave
    its text alone) for other Type0 fonts, whose CMaps may mix 1- to 4-byte codes; fonts not listed are 1."""
    fonts = ((page.get("/Resources") or {}).get("/Font") or {})
    out = {}
    for name, ref in fonts.items():
        try:
            font = ref.get_object()
            if font.get("/Subtype") == "/Type0":
                out[str(name)] = 2 if str(font.get("/Encoding")) in ("/Identity-H", "/Identity-V") else 0
        except Exception:  # a broken font entry: treat as one-byte
            continue
    return out


def _glyphs(raw: bytes, width: int) -> list[bytes]:
    return [raw[i : i + width] for i in range(0, len(raw), width)]


def _as_bytes(item: Any) -> bytes | None:
    if isinstance(item, ByteStringObject):
        return bytes(item)
    if isinstance(item, TextStringObject):
        return item.get_original_bytes()
    return None


PULLED_BACK = 0.5  # share of a TJ's glyph gaps that must cancel Tc for it to count as the justification trick


def _rewrite(array: list[Any], shift: float, width: int) -> ArrayObject | None:
    """TJ operands with a `shift` (thousandths of text space) after every glyph, merged with following offsets;
    None when the array is plain letter-spacing (its glyph gaps are not pulled back), which is left as it is."""
    out: list[Any] = []
    for item in array:
        raw = _as_bytes(item)
        if raw is None:
            try:
                number = float(item)
            except (TypeError, ValueError):
                continue
            if out and isinstance(out[-1], FloatObject):
                out[-1] = FloatObject(float(out[-1]) + number)
            else:
                out.append(FloatObject(number))
            continue
        for glyph in _glyphs(raw, width):
            out.append(ByteStringObject(glyph))
            out.append(FloatObject(shift))
    gaps = [float(x) for before, x, nxt in zip(out, out[1:], out[2:])  # offsets between two glyphs only
            if isinstance(x, FloatObject) and not isinstance(before, FloatObject) and not isinstance(nxt, FloatObject)]
    cancelled = sum(1 for g in gaps if abs(g) < 0.3 * abs(shift))
    if not gaps or cancelled < PULLED_BACK * len(gaps):
        return None
    return ArrayObject(out)


def normalise_spacing(page: PageObject) -> bool:
    """Rewrite `page`'s content in memory so that pulled-back `Tc` gaps become TJ offsets; True when it changed."""
    contents = page.get_contents()
    if contents is None:
        return False
    data = contents.get_data()
    if not _needs_work(data):
        return False
    stream = ContentStream(contents, page.pdf, "bytes")  # strings as bytes, as pypdf's own text extraction reads them
    widths = _code_widths(page)
    tc, size, width = 0.0, 1.0, 1
    saved: list[tuple[float, float, int]] = []
    changed = False
    operations: list[tuple[list[Any], bytes]] = []
    for operands, operator in stream.operations:
        if operator == b"q":
            saved.append((tc, size, width))
        elif operator == b"Q" and saved:
            tc, size, width = saved.pop()
        elif operator == b"Tf" and len(operands) == 2:
            size = abs(float(operands[1])) or 1.0
            width = widths.get(str(operands[0]), 1)
        elif operator == b"Tc" and operands:
            tc = float(operands[0])
        elif operator == b'"' and len(operands) == 3:
            tc = float(operands[1])
        elif operator == b"TJ" and operands and width and abs(tc) >= MIN_TC_EM * size:
            rewritten = _rewrite(list(operands[0]), -tc * 1000.0 / size, width)
            if rewritten is not None:  # shown with Tc 0, then Tc as it was for what follows
                operations += [([FloatObject(0)], b"Tc"), ([rewritten], b"TJ"), ([FloatObject(tc)], b"Tc")]
                changed = True
                continue
        operations.append((operands, operator))
    if not changed:
        return False
    stream.operations = operations
    page[NameObject("/Contents")] = stream  # in memory only: pypdf 7 refuses replace_contents() without a writer
    return True
