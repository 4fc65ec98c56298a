"""What the browser chat's events do, as plain functions over an Index: ask, filter, export, upload, check a draft.

Questions go through `exorag.ask.answer.ask`; several are answered at once (the Index takes its own lock for each
store call; the embedder and the judge are safe to share between threads). Handlers raise the library's errors
(EmptyQuery, EmptyIndex, FilterError, any ExoragError); app.py turns them into messages in one place. Uploads are trusted only
when they are files Gradio itself received (inside its upload folder); each is checked for type and size, copied
into the index's `uploads/` folder and ingested on its own, so every file gets its own result line.
Exports are written into a private temporary folder, from which Gradio serves them.
Study-tag filters are "key=value" strings (the `/ask` API, make_filters) checked like `--tag`; the page has one
multiselect per tag key whose values panel_filters turns into those strings, and every choice carries its number of
documents (panel_choices). The Corpus tab's document search and removal (remove_selected, through
build/sync.py's remove_documents) are here too.
Deliberately left out: the page layout (app.py) and HTML (page.py).
"""

from __future__ import annotations

import filecmp
import math
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradio.utils import get_upload_folder

from exorag.output import table
from exorag.build import tags
from exorag.ask.answer import ask
from exorag.ask.cite import cite_paragraph
from exorag.errors import EmptyIndex, EmptyQuery, ExoragError
from exorag.output.export import export
from exorag.ask.generate import Generated, LLMConfig, generate
from exorag.index.index import Index, sync_vectors, writes
from exorag.build.ingest import ingest_paths
from exorag.build.sync import remove_documents
from exorag.build.sources import READERS, kind_suffix
from exorag.settings import AskSettings, ServeSettings
from exorag.text import normalise_doi
from exorag.types import Answer, Filters

DEFAULT_K = AskSettings.k
MAX_K = AskSettings.max_k
MAX_TURNS = 30  # answers whose sources the panel keeps per conversation
UPLOAD_TYPES = tuple(READERS)  # every kind a reader exists for (exorag.build.sources)
DEFAULT_MAX_UPLOAD_MB = ServeSettings.max_upload_mb
EXAMPLE = "Which markers are used to characterise exosomes?"
EMPTY_QUESTION = f"Please type a question about exosomes or extracellular vesicles, for example: *{EXAMPLE}*"
SEARCHING = "*Searching the index…*"


@dataclass(frozen=True)
class ChoiceFilter:
    """One multi-choice filter of the panel: the Filters field it fills, its label, and where its choices come from.

    Adding a filter (e.g. tags) is one more entry in CHOICE_FILTERS plus its field on Filters.
    """

    field: str
    label: str
    choices: Callable[[Any], list[str]]
    normalise: Callable[[tuple[str, ...]], tuple[str, ...]] = tuple


def tag_choices(index: Index) -> list[str]:
    """'key=value' for every study tag present in the index, grouped by key, most common first."""
    return [f"{key}={value}" for key, values in index.tag_values().items() for value, _ in values]


CHOICE_FILTERS: tuple[ChoiceFilter, ...] = (
    ChoiceFilter("sources", "Source", lambda index: index.distinct_sources()),
    ChoiceFilter("pub_types", "Publication type", lambda index: index.distinct_pub_types()),
    ChoiceFilter("tags", "Study tags (all keys must hold)", tag_choices, tags.parse_tags),
)


@dataclass
class AppSettings:
    """Where uploads and exports go and how large an upload may be."""

    uploads: Path
    downloads: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="exorag-downloads-")))
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    llm: LLMConfig | None = None  # the chat writes its answers through this model (verified); None: extractive

    @classmethod
    def for_index(cls, index: Index, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
                  llm: LLMConfig | None = None) -> AppSettings:
        return cls(uploads=index.folder / "uploads", max_upload_mb=max_upload_mb, llm=llm)


def empty_index_message(index: Index) -> str:
    return (
        f"The index in `{index.folder}` has no literature yet. Add some in the *Add papers* tab, or from a terminal:"
        "\n\n- `exorag ingest PATH...` with PDFs, JSONL of abstracts (one record per line), .txt/.md files or folders"
        "\n- `exorag demo` to build the demo index from the bundled exosome corpus\n\n"
        "using the same `--index` folder, then ask again."
    )


class FilterError(ExoragError):
    """A filter value the panel cannot use (e.g. a year range that ends before it starts)."""


def _year(value: float | int | str | None, label: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        year = int(float(value))
    except (TypeError, ValueError, OverflowError):
        raise FilterError(f"the {label} year {value!r} is not a number") from None
    if not 1000 <= year <= 2999:
        raise FilterError(f"the {label} year {year} is not a plausible publication year")
    return year


def make_filters(year_from: float | int | str | None = None, year_to: float | int | str | None = None,
                 *choices: list[str] | tuple[str, ...] | None) -> Filters:
    """Filters from the panel's values: the year range, then one list per CHOICE_FILTERS entry, in order."""
    lo, hi = _year(year_from, "from"), _year(year_to, "to")
    if lo is not None and hi is not None and lo > hi:
        raise FilterError(f"the year range {lo}–{hi} is empty: 'from' is after 'to'")
    try:
        named = {f.field: f.normalise(_strings(values, f.label)) for f, values in zip(CHOICE_FILTERS, choices)}
    except tags.TagError as exc:
        raise FilterError(str(exc)) from exc
    return Filters(year_from=lo, year_to=hi, **named)


def _strings(values: Any, label: str) -> tuple[str, ...]:
    """A filter's chosen values as strings: a list (or one string) of them; FilterError for anything else (a raw
    /ask caller may send a number or an object)."""
    if values is None or values == "":
        return ()
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise FilterError(f"{label}: expected a list of text values, got {type(values).__name__} {str(values)[:60]!r}")
    return tuple(v for v in values if v)


def filter_choices(index: Index) -> list[list[str]]:
    """The current choices of every CHOICE_FILTERS entry, read from the store (the `/ask` API's values)."""
    return [f.choices(index) for f in CHOICE_FILTERS]


# The page's filter panel: source and publication type, then one multiselect per study-tag key, each choice a
# (label "value (n)", value) pair; the panel's values become Filters through panel_filters (and so make_filters).

TAG_KEYS = tags.TAG_KEYS
TAG_LABELS = {"topic": "Topic", "design": "Study design", "species": "Species", "ev_source": "EV source",
              "isolation": "Isolation method", "characterisation": "Characterisation", "cargo": "Cargo",
              "cancer": "Cancer type"}


def tag_label(key: str) -> str:
    return TAG_LABELS.get(key, key.replace("_", " ").capitalize())


def counted(rows: list[tuple[str, int]], spaced: bool = False) -> list[tuple[str, str]]:
    """(label, value) choices labelled "value (n)"; with `spaced` (tag values, which are words joined by
    underscores) the label reads them as spaces, so it wraps between words."""
    return [(f"{value.replace('_', ' ') if spaced else value} ({n:,})", value) for value, n in rows if value]


def panel_choices(index: Index) -> dict[str, Any]:
    """The panel's choices with their document counts: {"sources": [(label, value)], "pub_types": [...],
    "tags": {key: [...]} for every key of TAG_KEYS (empty where no document has that key)}."""
    values = index.tag_values()
    return {"sources": counted(index.source_counts()), "pub_types": counted(index.pub_type_counts()),
            "tags": {key: counted(values.get(key, []), spaced=True) for key in TAG_KEYS}}


def panel_filters(year_from: float | int | str | None = None, year_to: float | int | str | None = None,
                  sources: list[str] | None = None, pub_types: list[str] | None = None,
                  *tag_lists: list[str] | None) -> Filters:
    """Filters from the page's panel: the year range, sources, publication types, then the chosen values of each
    TAG_KEYS key in order (as "key=value" for make_filters; a value already "key=value" is taken as it is)."""
    specs = [v if "=" in v else f"{key}={v}" for key, values in zip(TAG_KEYS, tag_lists) for v in (values or ()) if v]
    return make_filters(year_from, year_to, sources, pub_types, specs)


def panel_cleared() -> tuple[Any, ...]:
    """The panel's values with no filter set: the year boxes, sources, publication types, every tag key."""
    return ("", "", [], [], *([] for _ in TAG_KEYS))


def evidence_filtered_out(answer: Answer, filters: Filters) -> bool:
    """Whether the filters may have emptied the evidence: filters are set and the answer abstains."""
    return not filters.empty and answer.abstained


def draft_filtered_out(sentences: list[Any], filters: Filters) -> bool:
    """Whether the filters may have emptied the evidence of a draft check: filters are set and no sentence has a
    supporting (or contradicting) passage."""
    return not filters.empty and bool(sentences) and not any(s.citations or s.contradicting for s in sentences)


def clamp_k(k: float | int | str | None) -> int:
    """The number of passages: DEFAULT_K when unset or not a finite number, else rounded into 1..MAX_K."""
    try:
        value = float(k) if k not in (None, "") else float(DEFAULT_K)
    except (TypeError, ValueError):
        value = float(DEFAULT_K)
    if not math.isfinite(value):
        value = float(DEFAULT_K)
    return max(1, min(MAX_K, int(value) or DEFAULT_K))


def _ready(index: Index, text: str) -> None:
    """EmptyQuery for blank text (or not a string: a raw /ask caller), EmptyIndex for an index without passages."""
    if not isinstance(text, str) or not text.strip():
        raise EmptyQuery("empty question")
    if index.chunk_count() == 0:
        raise EmptyIndex(f"the index in {index.folder} has no passages yet")


def run_question(index: Index, question: str, k: float | int | None = DEFAULT_K,
                 filters: Filters | None = None) -> Answer:
    """The engine's Answer (k clamped); EmptyQuery, EmptyIndex or any ExoragError otherwise."""
    _ready(index, question)
    return ask(index, question, k=clamp_k(k), filters=filters)


def run_generated(index: Index, question: str, llm: LLMConfig, k: float | int | None = DEFAULT_K,
                  filters: Filters | None = None, on_text: Callable[[str], None] | None = None) -> Generated:
    """`exorag.ask.generate.generate`: a verified LLM answer, or the extractive one with a note; raises as
    run_question does."""
    _ready(index, question)
    return generate(index, question, llm, k=clamp_k(k), filters=filters, on_text=on_text)


EXPORTS_KEPT_S = 3600.0  # exports older than this are deleted when new ones are written (Gradio keeps its copy)


def write_exports(answer: Answer, folder: Path, rows: list[table.Row] | None = None) -> dict[str, Path]:
    """BibTeX, RIS and Markdown of one answer, in a fresh subfolder of `folder`: {"bibtex": path, ...}.

    With `rows` (exorag.output.table.rows_for(index, answer)), the evidence table too, as "table_csv" and "table_markdown".

    Subfolders older than EXPORTS_KEPT_S are removed first, so the folder does not grow all day.
    """
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in folder.glob("answer-*"):
        try:
            if now - old.stat().st_mtime > EXPORTS_KEPT_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass  # removed by a concurrent request
    target = Path(tempfile.mkdtemp(prefix="answer-", dir=folder))
    out = {}
    for fmt, name in (("bibtex", "references.bib"), ("ris", "references.ris"), ("markdown", "answer.md")):
        path = target / name
        path.write_text(export(answer, fmt), encoding="utf-8")  # type: ignore[arg-type]
        out[fmt] = path
    if rows:
        for fmt, name, text in (("table_csv", "evidence-table.csv", table.to_csv(rows)),
                                ("table_markdown", "evidence-table.md", table.to_markdown(rows))):
            path = target / name
            path.write_text(text, encoding="utf-8")
            out[fmt] = path
    return out


def check_draft(index: Index, text: str, k: float | int | None = DEFAULT_K,
                filters: Filters | None = None) -> list[Any]:
    """`cite_paragraph` over the user's draft; EmptyQuery (no text, or no sentence in it), EmptyIndex or any
    ExoragError otherwise."""
    _ready(index, text)
    return cite_paragraph(index, text, k=clamp_k(k), filters=filters)


EV_TAG = ("topic", "extracellular_vesicle")  # the documents counted as EV papers in the corpus make-up
DOCUMENTS_SHOWN = 50  # rows of the corpus tab's document list


def corpus_overview(index: Index) -> dict[str, Any]:
    """The corpus make-up: counts, documents tagged as EV papers, documents by year (undated as year None) and by
    source."""
    counts = index.counts()
    ev = dict(index.tag_values().get(EV_TAG[0], [])).get(EV_TAG[1], 0)
    return {"counts": counts, "ev_documents": ev, "years": index.year_counts(), "sources": index.source_counts()}


def _search_terms(query: str) -> str:
    """The document search's words, a pasted DOI link or "doi:" prefix reduced to the bare DOI."""
    return " ".join(normalise_doi(t) if t.lower().startswith(("http", "doi:")) else t for t in (query or "").split())


def find_documents(index: Index, query: str = "", limit: int = DOCUMENTS_SHOWN) -> tuple[int, list[dict[str, Any]]]:
    """(documents matching `query`, the first `limit` of them, newest first): every word must occur in the title,
    id, PMID, DOI or PMCID."""
    return index.find_documents(_search_terms(query), limit)


def remove_selected(index: Index, doc_ids: list[str] | None, settings: AppSettings) -> str:
    """Remove the documents `doc_ids` through remove_documents (their vectors go too), and each uploaded file of
    `settings.uploads` none of whose documents is left; what happened, as a sentence."""
    ids = [i.strip() for i in (doc_ids or []) if i and i.strip()]
    if not ids:
        raise ExoragError("select the documents to remove first")
    origins = {doc.origin for doc in index.get_documents(ids).values() if doc.origin}
    report = remove_documents(index, ids)
    left = {origin for _, origin in index.document_origins()}
    files = []
    for origin in sorted(origins - left):
        path = Path(origin)
        try:
            if path.resolve().is_relative_to(settings.uploads.resolve()) and path.is_file():
                path.unlink()
                files.append(path.name)
        except OSError:
            pass  # still named as kept below: nothing in the message claims it was deleted
    parts = []
    if report.removed:
        noun = "document" if len(report.removed) == 1 else "documents"
        parts.append(f"Removed {len(report.removed)} {noun} ({', '.join(report.removed)}) and "
                     f"{report.vectors_removed} of their vectors from the index.")
    if report.not_found:
        parts.append(f"No document with id {', '.join(report.not_found)} (already removed?).")
    if files:
        parts.append(f"Deleted the uploaded file(s) {', '.join(files)} from {settings.uploads}.")
    return " ".join(parts)


# Uploads


def safe_name(name: str) -> str:
    """A file name with only letters, digits, '.', '-' and '_', never hidden, never empty."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).lstrip("._") or "upload"
    return stem[-120:]


def free_target(folder: Path, name: str, source: Path) -> Path:
    """`folder/name`, or `folder/stem-2.ext`... when a different file already has that name (same bytes: reused)."""
    target, n = folder / name, 1
    while target.exists() and not filecmp.cmp(target, source, shallow=False):
        n += 1
        kind = kind_suffix(Path(name))  # "x.jsonl.gz" -> "x-2.jsonl.gz", still read as what it is
        target = folder / f"{name[:len(name) - len(kind)]}-{n}{kind}"
    return target


def _received(path: Path) -> bool:
    """Whether `path` is a file Gradio received from the browser (inside its upload folder)."""
    try:
        return path.resolve().is_relative_to(Path(get_upload_folder()).resolve()) and path.is_file()
    except OSError:
        return False


def _human_mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _describe(report: Any, name: str) -> tuple[bool, str]:
    """(ok, message) for one file's IngestReport, problems named with their line numbers."""
    problems = [f"{'line ' + str(p.line) + ': ' if p.line is not None else ''}{p.reason}"
                for p in report.skipped + report.failed]
    done = [f"{n} {label}" for n, label in ((report.added, "added"), (report.updated, "updated"),
                                            (report.unchanged, "unchanged (already in the index)")) if n]
    if not report.ingested:
        return False, "not added: " + ("; ".join(problems) if problems else f"no document found in {name}")
    noun = "document" if report.ingested == 1 else "documents"
    message = f"{report.ingested} {noun}: " + ", ".join(done)
    if problems:
        message += f"; {len(problems)} problem(s): " + "; ".join(problems[:5]) + (" …" if len(problems) > 5 else "")
    return True, message


def _save_and_ingest(index: Index, path: Path, folder: Path) -> tuple[bool, str]:
    """Copy one checked upload into `folder` and ingest it (no embedding yet): (ok, message)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = free_target(folder, safe_name(path.name), path)
        existed = target.exists()
        if not existed:
            shutil.copyfile(path, target)
    except OSError as exc:
        return False, f"could not be saved into {folder}: {exc.strerror or exc}"
    try:
        ok, message = _describe(ingest_paths(index, [target], progress=False, embed=False), path.name)
    except ExoragError as exc:
        ok, message = False, f"not added: {exc}"
    if not ok and not existed:
        target.unlink(missing_ok=True)  # uploads/ holds only files whose documents are in the index
    return ok, message


@writes
def ingest_uploads(index: Index, paths: list[str | Path], settings: AppSettings,
                   on_file: Callable[[int, int, str], None] | None = None) -> Iterator[list[tuple[str, bool, str]]]:
    """Check, save and ingest each uploaded file; yield the growing list of (name, ok, message) after each one.

    Ends with embedding the new passages (one row "(index)"). Files not received by Gradio, of other types or over
    the size limit are refused by name; the batch goes on.
    """
    rows: list[tuple[str, bool, str]] = []
    limit = int(settings.max_upload_mb * 1e6)
    saved_any = False
    for i, raw in enumerate(paths):
        path = Path(raw)
        name = path.name
        if on_file is not None:
            on_file(i, len(paths), name)
        if not _received(path):
            rows.append((name, False, "refused: not a file uploaded through this page"))
        elif kind_suffix(path) not in UPLOAD_TYPES:
            rows.append((name, False, f"refused: {path.suffix or 'no extension'} files are not accepted; "
                                      f"upload {', '.join(UPLOAD_TYPES)}"))
        elif path.stat().st_size > limit:
            rows.append((name, False, f"refused: {_human_mb(path.stat().st_size)} is over the "
                                      f"{settings.max_upload_mb:g} MB limit"))
        elif path.stat().st_size == 0:
            rows.append((name, False, "refused: the file is empty"))
        else:
            ok, message = _save_and_ingest(index, path, settings.uploads)
            saved_any = saved_any or ok
            rows.append((name, ok, message))
        yield list(rows)
    if saved_any:
        if on_file is not None:
            on_file(len(paths), len(paths), "embedding")
        synced = sync_vectors(index, progress=False)
        rows.append(("(index)", True, f"{synced['added']} new passages embedded; now searchable"))
        yield list(rows)
