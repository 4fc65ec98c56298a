"""The `exorag` command: ingest, search, ask, show, stats, demo, serve.

The only module that turns library errors (ExoragError) into short messages and exit codes: 0 success,
1 a handled error (or an ingest that ingested nothing), 2 usage, 130 interrupted. Every command takes
`--index DIR` (default ./index or $EXORAG_INDEX) and `--model NAME_OR_PATH` (default: the index's own model,
else the bundled all-MiniLM-L6-v2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .errors import ExoragError

DEMO_RELATIVE = Path("shared") / "data" / "exo_corpus" / "corpus.jsonl"


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, ensure_ascii=False, indent=2))


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{size} B"


def _open(args: argparse.Namespace):
    from .index import open_index

    return open_index(Path(args.index) if args.index else None, args.model)


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .ingest import ingest_paths

    index = _open(args)
    report = ingest_paths(
        index, [Path(p) for p in args.paths], progress=not args.quiet,
        on_problem=lambda p: tqdm.write(f"{'skipped' if p.reason.startswith('unsupported') else 'failed'}: {p}",
                                        file=sys.stderr),
    )
    print(
        f"ingested {report.ingested} documents from {report.files} files "
        f"(added {report.added}, updated {report.updated}, unchanged {report.unchanged}); "
        f"skipped {len(report.skipped)}, failed {len(report.failed)}; "
        f"vectors +{report.vectors_added} -{report.vectors_removed}"
    )
    return 0 if report.ingested else 1


def _demo_corpus(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    if os.environ.get("EXORAG_DEMO_DATA"):
        return Path(os.environ["EXORAG_DEMO_DATA"])
    here = Path(__file__).resolve().parent.parent
    for base in (Path.cwd(), Path.cwd().parent, here, here.parent):
        candidate = base / DEMO_RELATIVE
        if candidate.exists():
            return candidate
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    corpus = _demo_corpus(args.data)
    if corpus is None or not corpus.exists():
        print(
            "error: the demo corpus (../shared/data/exo_corpus/corpus.jsonl) is not on this machine.\n"
            "Point --data (or EXORAG_DEMO_DATA) at a corpus.jsonl, or build your own index instead:\n"
            "  exorag ingest my_papers/        # PDFs, JSONL of abstracts, .txt/.md",
            file=sys.stderr,
        )
        return 1
    print(f"building the demo index in {args.index or os.environ.get('EXORAG_INDEX') or 'index'} from {corpus}")
    args.paths = [str(corpus)]
    return cmd_ingest(args)


def _filters(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .types import Filters

    return Filters(year_from=args.year_from, year_to=args.year_to, sources=tuple(args.source or ()),
                   journals=tuple(args.journal or ()), pub_types=tuple(args.pub_type or ()))


def _add_filter_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters (repeat a flag to allow several values)")
    g.add_argument("--year-from", type=int, metavar="YEAR")
    g.add_argument("--year-to", type=int, metavar="YEAR")
    g.add_argument("--source", action="append", metavar="NAME", help="e.g. pubmed, pdf, scifact")
    g.add_argument("--journal", action="append", metavar="NAME", help="journal as stored, case-insensitive")
    g.add_argument("--pub-type", action="append", metavar="TYPE", help="publication type, e.g. Review")


def cmd_search(args: argparse.Namespace) -> int:
    from .render import hit_dict, hit_text
    from .retrieve import search

    hits = search(_open(args), args.query, k=args.k, mode=args.mode, filters=_filters(args), fusion=args.fusion)
    if args.json:
        _print_json({"query": args.query, "results": [hit_dict(h) for h in hits]})
    elif not hits:
        print("no results")
    else:
        for rank, hit in enumerate(hits, start=1):
            print(hit_text(rank, hit))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from .answer import ask
    from .render import answer_dict, answer_text

    answer = ask(_open(args), args.question, k=args.k, filters=_filters(args))
    if args.format:
        from .export import export

        print(export(answer, args.format), end="")
    elif args.json:
        _print_json(answer_dict(answer))
    else:
        print(answer_text(answer), end="")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from . import store
    from .render import document_dict, reference_line, where

    index = _open(args)
    doc = store.get_document(index.conn, args.doc_id)
    chunks = store.document_chunks(index.conn, args.doc_id)
    if args.json:
        _print_json(document_dict(doc, chunks))
        return 0
    print(reference_line(doc))
    print(f"id: {doc.id}  source: {doc.source}  chunks: {len(chunks)}")
    if doc.publication_types:
        print("publication types: " + "; ".join(doc.publication_types))
    if doc.mesh:
        print("MeSH: " + "; ".join(doc.mesh))
    for chunk in chunks:
        print(f"\n[{chunk.ordinal}] {where(chunk.section, chunk.page)}\n{chunk.text}")
    return 0


def stats(index) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from . import store
    from .index import disk_size
    from .vectors import read_meta

    meta = read_meta(index.folder)
    counts = store.counts(index.conn)
    return {
        "index": str(index.folder), "documents": counts["documents"], "chunks": counts["chunks"],
        "vectors": index.vectors.size if meta else 0, "model": index.model_name,
        "dim": meta.get("dim") if meta else None, "size_bytes": disk_size(index.folder), "sources": counts["sources"],
    }


def cmd_stats(args: argparse.Namespace) -> int:
    info = stats(_open(args))
    if args.json:
        _print_json(info)
        return 0
    print(f"index:     {info['index']}")
    print(f"documents: {info['documents']}")
    print(f"chunks:    {info['chunks']}")
    print(f"vectors:   {info['vectors']}")
    print(f"model:     {info['model']} (dim {info['dim']})")
    print(f"size:      {_human(info['size_bytes'])}")
    for source, n in sorted(info["sources"].items(), key=lambda kv: -kv[1]):
        print(f"  {source or '(none)'}: {n}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from . import evaluate
    from .index import open_index

    folder = Path(args.folder)
    name = folder.parent.name if folder.name in ("beir_format", "beir") else folder.name
    index_folder = Path(args.index) if args.index else Path("index") / f"eval-{args.dataset}-{name}"
    index = open_index(index_folder, args.model)
    if args.dataset == "beir":
        result = evaluate.evaluate_beir(index, folder, split=args.split, mode=args.mode, fusion=args.fusion,
                                        progress=not args.quiet)
    else:
        result = evaluate.evaluate_bioasq(index, folder, mode=args.mode, fusion=args.fusion, progress=not args.quiet,
                                          limit=args.limit)
    result["index"] = str(index_folder)
    if args.json:
        _print_json(result)
    else:
        for key, value in result.items():
            print(f"{key:12s} {value:.4f}" if isinstance(value, float) else f"{key:12s} {value}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import serve

    serve(_open(args), host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", metavar="DIR", help="index folder (default ./index or $EXORAG_INDEX)")
    common.add_argument("--model", metavar="NAME_OR_PATH",
                        help="sentence-transformers model (default: the index's model, else bundled all-MiniLM-L6-v2)")
    parser = argparse.ArgumentParser(prog="exorag", description="Cited answers from the exosome / EV literature, offline.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", parents=[common], help="add JSONL, PDF, .txt/.md files or folders to the index")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("demo", parents=[common], help="build a demo index from ../shared/data/exo_corpus")
    p.add_argument("--data", metavar="JSONL", help="corpus file (default: find shared/data/exo_corpus/corpus.jsonl)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("search", parents=[common], help="ranked passages for a query")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10, help="number of passages (default 10)")
    p.add_argument("--mode", choices=["hybrid", "dense", "lexical"], default="hybrid")
    p.add_argument("--fusion", choices=["rrf", "convex"], default="rrf", help="how hybrid mode fuses (default rrf)")
    p.add_argument("--json", action="store_true")
    _add_filter_flags(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", parents=[common], help="an answer quoted from the literature, with citations")
    p.add_argument("question")
    p.add_argument("-k", type=int, default=8, help="passages to draw evidence from (default 8)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--format", choices=["bibtex", "ris", "csljson", "markdown"],
                   help="print the cited works in this format (markdown: the answer with its references)")
    _add_filter_flags(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("show", parents=[common], help="a document's metadata and chunks")
    p.add_argument("doc_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("stats", parents=[common], help="counts, model and size of the index")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("eval", parents=[common], help="retrieval metrics on human judgments (BEIR, BioASQ)")
    p.add_argument("dataset", choices=["beir", "bioasq"])
    p.add_argument("folder", metavar="DIR", help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or BioASQ golden folder")
    p.add_argument("--split", default="test", help="BEIR qrels split (default test; tune on train)")
    p.add_argument("--mode", choices=["hybrid", "dense", "lexical"], default="hybrid")
    p.add_argument("--fusion", choices=["rrf", "convex"], default="rrf")
    p.add_argument("--limit", type=int, help="BioASQ: first N questions only")
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("serve", parents=[common], help="the browser chat")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "k", 1) is not None and getattr(args, "k", 1) < 1:
        print("error: -k must be at least 1", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except ExoragError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: what was written is complete; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
