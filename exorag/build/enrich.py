"""Enrichment: what the build stage derives from a document besides its chunks, before the index stores it.

`derive(doc)` gives the document's study tags (tags.tag_document) and the abbreviations it defines
(thesaurus.mine_abbreviations); `ingest` calls it outside the index's lock and hands the result to
`Index.put_document`. `VERSIONS` names the rules that made them: an index built under older rules has them
recomputed when it is opened (store.migrate, given `derive`). Deliberately left out: the rules themselves (tags.py,
thesaurus.py) and storage (exorag.index.store).
"""

from __future__ import annotations

from exorag.build import tags, thesaurus
from exorag.types import Derived, Document

VERSIONS = {"tags_version": tags.RULES_VERSION, "abbreviations_version": thesaurus.MINER_VERSION}


def derive(doc: Document) -> Derived:
    return Derived(tags=tags.tag_document(doc),
                   abbreviations=tuple(thesaurus.mine_abbreviations(f"{doc.title}. {doc.text}")))
