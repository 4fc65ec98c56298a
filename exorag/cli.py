"""The `exorag` command: ingest, sync, remove, search, ask, cite, table, show, stats, check, demo, serve, fetch,
cluster build.

The only module that turns library errors (ExoragError) into short messages and exit codes: 0 success,
1 a handled error (or an ingest that ingested nothing), 2 usage, 130 interrupted. Every command takes
`--index DIR` (default ./index or $EXORAG_INDEX) and `--model NAME_OR_PATH` (default: the index's own model,
else the bundled all-MiniLM-L6-v2); search, ask, cite, table, show and serve also take `--cluster ADDR` (a sharded
index served read-only from a Ray cluster, exorag/cluster/serve.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exorag.errors import ExoragError
from exorag.settings import AskSettings, BuildSettings, ServeSettings, Settings, SettingsError, configure, current

if TYPE_CHECKING:
    from exorag.fetch import FetchReport

DEMO_CORPUS = Path(__file__).resolve().parent / "data" / "demo" / "ev_demo.jsonl.gz"  # see data/demo/SOURCES.md


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, ensure_ascii=False, indent=2))


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{size} B"


READ_COMMANDS = {"search", "ask", "cite", "table", "show", "stats", "check"}
CLUSTER_COMMANDS = {"search", "ask", "cite", "table", "show", "serve"}  # take --cluster ADDR (a sharded --index)


def _settings(args: argparse.Namespace) -> Settings:
    """Defaults < environment < this command's flags (a flag left out is None and changes nothing)."""
    flagged = {"EXORAG_MAX_UPLOAD_MB": getattr(args, "max_upload_mb", None)}
    s = Settings.from_env(overridden=frozenset(name for name, value in flagged.items() if value is not None))
    s = s.replace("index", folder=Path(args.index) if getattr(args, "index", None) else None,
                  model=getattr(args, "model", None))
    s = s.replace("build", file_timeout_s=getattr(args, "file_timeout", None),
                  overlap=True if getattr(args, "overlap", False) else None)
    s = s.replace("serve", host=getattr(args, "host", None), port=getattr(args, "port", None),
                  max_upload_mb=getattr(args, "max_upload_mb", None))
    s = s.replace("cluster", address=getattr(args, "cluster", None), replicas=getattr(args, "replicas", None))
    return s.replace("llm", url=getattr(args, "llm_url", None), model=getattr(args, "llm_model", None),
                     key=getattr(args, "llm_key", None), timeout_s=getattr(args, "llm_timeout", None))


def _open(args: argparse.Namespace):
    """The index of --index: an Index, or with --cluster ADDR a ShardedIndex served from that Ray cluster."""
    from exorag.cluster.layout import is_cluster
    from exorag.errors import NotFound, ReadOnlyIndex
    from exorag.index.index import open_index
    from exorag.index.store import STORE_FILE

    folder = current().index.folder
    address = current().cluster.address if args.command in CLUSTER_COMMANDS else None
    if address:
        from exorag.cluster.serve import open_sharded

        return open_sharded(folder, address, current().cluster.replicas, current().index.model)
    if is_cluster(folder):
        if args.command not in READ_COMMANDS | CLUSTER_COMMANDS:
            raise ReadOnlyIndex(f"{folder} holds a sharded index (cluster.json); `exorag {args.command}` does not "
                                "write to one: add or remove documents with `exorag cluster build`")
        raise ExoragError(f"{folder} holds a sharded index (cluster.json): serve it from a Ray cluster with "
                          f"`--cluster ADDR`" + (" (search, ask, cite, table, show, serve)"
                                                 if args.command not in CLUSTER_COMMANDS else "")
                          + ", or point --index at one of its shard folders")
    if args.command in READ_COMMANDS and not (folder / STORE_FILE).exists():
        raise NotFound(f"no index in {folder.resolve()} (no {STORE_FILE}); build one with "
                       f"`exorag demo --index {folder}` or `exorag ingest PATH... --index {folder}`, "
                       "or point --index (or $EXORAG_INDEX) at an existing index folder")
    return open_index(folder, current().index.model)


def _open_checked(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The index, after a cheap vectors-vs-chunks count check that warns on stderr about drift."""
    from exorag.index.index import drift_warning

    index = _open(args)
    warnings = index.drift_warnings() if hasattr(index, "drift_warnings") else [drift_warning(index)]
    for warning in filter(None, warnings):
        print(f"warning: {warning}", file=sys.stderr)
    return index


def _tell_problem(problem) -> None:  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    tqdm.write(f"{'skipped' if problem.reason.startswith('unsupported') else 'failed'}: {problem}", file=sys.stderr)


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from exorag.build.ingest import ingest_paths

    index = _open(args)
    report = ingest_paths(
        index, [Path(p) for p in args.paths], progress=not args.quiet,
        on_problem=lambda p: tqdm.write(f"{'skipped' if p.reason.startswith('unsupported') else 'failed'}: {p}",
                                        file=sys.stderr),
        file_timeout=current().build.file_timeout_s or None,
        overlap=current().build.overlap,
    )
    print(
        f"ingested {report.ingested} documents from {report.files} files "
        f"(added {report.added}, updated {report.updated}, unchanged {report.unchanged}); "
        f"skipped {len(report.skipped)}, failed {len(report.failed)}; "
        f"vectors +{report.vectors_added} -{report.vectors_removed}"
    )
    return 0 if report.ingested else 1


def _demo_corpus(explicit: str | None) -> Path:
    """--data, else $EXORAG_DEMO_DATA, else the EV demo corpus shipped in the package (exorag/data/demo)."""
    if explicit:
        return Path(explicit)
    return current().build.demo_data or DEMO_CORPUS


def cmd_demo(args: argparse.Namespace) -> int:
    corpus = _demo_corpus(args.data)
    if not corpus.exists():
        print(f"error: the demo corpus {corpus} is not there (a damaged install? reinstall exorag).\n"
              "Point --data (or EXORAG_DEMO_DATA) at a JSONL corpus, or build your own index instead:\n"
              "  exorag ingest my_papers/        # PDFs, JSONL of abstracts, .txt/.md, RIS, BibTeX",
              file=sys.stderr)
        return 1
    folder = current().index.folder
    print(f"building the demo index in {folder} from {corpus}")
    args.paths = [str(corpus)]
    status = cmd_ingest(args)
    if status == 0:
        where = "" if folder == Path("index") else f" --index {folder}"
        print("\nThe demo index is ready. Next:\n"
              f"  exorag serve{where}                     # the browser chat on http://127.0.0.1:7860\n"
              f"  exorag ask \"Which markers are used to characterise exosomes?\"{where}\n"
              f"  exorag cite draft.txt{where}            # check the claims of your own text\n"
              f"  exorag stats{where}                     # what the index holds, and the filter values")
    return status


def _filters(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from exorag.build.tags import parse_tags
    from exorag.types import Filters

    return Filters(year_from=args.year_from, year_to=args.year_to, sources=tuple(args.source or ()),
                   journals=tuple(args.journal or ()), pub_types=tuple(args.pub_type or ()),
                   tags=parse_tags(args.tag or ()))


def _add_filter_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters (repeat a flag to allow several values)")
    g.add_argument("--year-from", type=int, metavar="YEAR", help="only papers published in or after YEAR")
    g.add_argument("--year-to", type=int, metavar="YEAR", help="only papers published in or before YEAR")
    g.add_argument("--source", action="append", metavar="NAME", help="e.g. pubmed, pdf, scifact")
    g.add_argument("--journal", action="append", metavar="NAME", help="journal as stored, case-insensitive")
    g.add_argument("--pub-type", action="append", metavar="TYPE", help="publication type, e.g. Review")
    g.add_argument("--tag", action="append", metavar="KEY=VALUE",
                   help="study tag, e.g. design=review, species=mouse, ev_source=plasma (keys: topic, design, species, "
                        "ev_source, isolation, characterisation, cargo, cancer); one key repeated: any value")


def _add_expand_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-expand", dest="expand", action="store_false",
                   help="do not add EV synonyms and mined abbreviation long forms to the lexical search")


def cmd_search(args: argparse.Namespace) -> int:
    from exorag.output.render import hit_dict, hit_text
    from exorag.ask.retrieve import search


    index = _open_checked(args)
    hits = search(index, args.query, k=args.k, mode=args.mode, filters=_filters(args), fusion=args.fusion,
                  expand=args.expand)
    if args.json:
        tags = index.document_tags((h.document.id for h in hits))
        _print_json({"query": args.query, "results": [{**hit_dict(h), "tags": tags.get(h.document.id, {})}
                                                       for h in hits]})
    elif not hits:
        print("no results")
    else:
        for rank, hit in enumerate(hits, start=1):
            print(hit_text(rank, hit))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from exorag.ask.answer import ask
    from exorag.ask.generate import config_from, generate
    from exorag.output.render import answer_dict, answer_text, generated_dict, generated_text

    llm = config_from(stream=not args.llm_no_stream, unsupported=args.llm_unsupported)
    if llm is not None:  # only then does anything leave the machine
        result = generate(_open_checked(args), args.question, llm, k=args.k, filters=_filters(args),
                          expand=args.expand)
        if args.format:
            from exorag.output.export import export

            if result.note:
                print(f"note: {result.note}", file=sys.stderr)
            print(export(result.answer, args.format), end="")
        elif args.json:
            _print_json(generated_dict(result))
        else:
            print(generated_text(result), end="")
        return 0
    answer = ask(_open_checked(args), args.question, k=args.k, filters=_filters(args), expand=args.expand)
    if args.format:
        from exorag.output.export import export

        print(export(answer, args.format), end="")
    elif args.json:
        _print_json(answer_dict(answer))
    else:
        print(answer_text(answer), end="")
    return 0


def cmd_cite(args: argparse.Namespace) -> int:
    from exorag.ask.cite import cite_paragraph
    from exorag.output.render import cite_dict, cite_text

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    sentences = cite_paragraph(_open_checked(args), text, k=args.k, filters=_filters(args))
    if args.json:
        _print_json(cite_dict(sentences))
    else:
        print(cite_text(sentences), end="")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from exorag.output.render import document_dict, reference_line, where

    index = _open(args)
    doc = index.get_document(args.doc_id)
    chunks = index.document_chunks(args.doc_id)
    tags = index.document_tags([doc.id]).get(doc.id, {})
    if args.json:
        _print_json({**document_dict(doc, chunks), "tags": tags})
        return 0
    print(reference_line(doc))
    print(f"id: {doc.id}  source: {doc.source}  chunks: {len(chunks)}")
    if tags:
        print("tags: " + "; ".join(f"{key}={','.join(values)}" for key, values in tags.items()))
    if doc.publication_types:
        print("publication types: " + "; ".join(doc.publication_types))
    if doc.mesh:
        print("MeSH: " + "; ".join(doc.mesh))
    for chunk in chunks:
        print(f"\n[{chunk.ordinal}] {where(chunk.section, chunk.page)}\n{chunk.text}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from exorag.index.index import stats

    info = stats(_open(args))
    if args.json:
        _print_json(info)
        return 0
    print(f"index:     {info['index']}")
    print(f"documents: {info['documents']}")
    print(f"chunks:    {info['chunks']}")
    print(f"vectors:   {info['vectors']} ({info['vector_index'] or 'none yet'})")
    print(f"model:     {info['model']} (dim {info['dim']})")
    print(f"size:      {_human(info['size_bytes'])}")
    if not info["consistent"]:
        print(f"drift:     {info['missing_vectors']} chunks without a vector, {info['stale_vectors']} stale vectors "
              "(run `exorag check --repair`)")
    print("filter values (documents):")
    print("  --source: " + ", ".join(f"{s or '(none)'} {n}" for s, n in sorted(info["sources"].items(),
                                                                         key=lambda kv: -kv[1])))
    if info["publication_types"]:
        print("  --pub-type: " + ", ".join(f"{t} {n}" for t, n in info["publication_types"].items()))
    for key, values in info["tags"].items():
        print(f"  --tag {key}=: " + ", ".join(f"{v} {n}" for v, n in values.items()))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from exorag.index.index import check

    result = check(_open(args), repair=args.repair, progress=not args.quiet)
    if args.json:
        _print_json(result)
    else:
        state = "consistent" if result["consistent"] else "NOT consistent"
        print(f"{state}: {result['chunks']} chunks, {result['vectors']} vectors; {result['missing']} chunks without "
              f"a vector, {result['stale']} stale vectors")
        for problem in result["store_problems"]:
            print(f"damaged store: {problem}")
        if result["vectors_damaged"]:
            print(f"damaged vectors: {result['vectors_damaged']}")
        if "added" in result:
            print(f"repaired: vectors +{result['added']} -{result['removed']}"
                  + ("; full-text table rebuilt" if result.get("fts_rebuilt") else "")
                  + ("" if result.get("repaired") else "; the store itself is damaged beyond what check can rebuild"))
    return 0 if result["consistent"] or result.get("repaired") else 1


def cmd_remove(args: argparse.Namespace) -> int:
    from exorag.build.sync import remove_documents

    report = remove_documents(_open(args), args.doc_ids)
    for doc_id in report.not_found:
        print(f"already absent: {doc_id!r} (no document with this id)")
    absent = f", {len(report.not_found)} already absent" if report.not_found else ""
    print(f"removed {len(report.removed)} documents{absent}; vectors -{report.vectors_removed}")
    return 0  # every id named is absent now: the goal holds


def cmd_sync(args: argparse.Namespace) -> int:
    from exorag.build.sync import sync_folder

    report = sync_folder(_open(args), Path(args.folder), progress=not args.quiet, on_problem=_tell_problem,
                         file_timeout=current().build.file_timeout_s or None)
    s = report.summary
    if args.json:
        _print_json({**s, "removed_ids": report.removed, "vectors_added": report.vectors_added,
                     "vectors_removed": report.vectors_removed})
    else:
        print(f"synced {args.folder}: added {s['added']}, updated {s['updated']}, unchanged {s['unchanged']}, "
              f"removed {s['removed']}, failed {s['failed']}, skipped {s['skipped']}; "
              f"vectors +{report.vectors_added} -{report.vectors_removed}")
    return 0 if not s["failed"] else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from exorag.ask import evaluate
    from exorag.index.index import open_index

    folder = Path(args.folder)
    name = folder.parent.name if folder.name in ("beir_format", "beir") or folder.is_file() else folder.name
    index_folder = Path(args.index) if args.index else Path("index") / f"eval-{args.dataset}-{name}"
    index = open_index(index_folder, args.model)
    if args.dataset == "beir":
        result = evaluate.evaluate_beir(index, folder, split=args.split, mode=args.mode, fusion=args.fusion,
                                        progress=not args.quiet, expand=args.expand)
    elif args.dataset == "pubmedqa":
        result = evaluate.evaluate_answers_pubmedqa(index, folder, progress=not args.quiet, limit=args.limit or 200)
    elif args.answers:
        result = evaluate.evaluate_answers_bioasq(index, folder, progress=not args.quiet, limit=args.limit or 200)
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


def cmd_cluster_build(args: argparse.Namespace) -> int:
    from exorag.cluster.build import build

    report = build(current().index.folder, [Path(p) for p in args.paths], args.address, args.shards, ivf=args.ivf,
                   merge=args.merge, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                   part_size=args.part_size, progress=not args.quiet)
    for bucket, problems in (("failed", report.failed), ("skipped", report.skipped)):
        for problem in problems:
            print(f"{bucket}: {problem}", file=sys.stderr)
    if args.json:
        _print_json(report.as_dict())
    else:
        d = report.documents
        print(f"built {report.shards} shards in {report.root}: documents added {d['added']}, updated {d['updated']}, "
              f"unchanged {d['unchanged']}; {report.chunks} chunks, {report.embedded} embedded now on "
              f"{len(report.nodes)} nodes; {report.vectors} vectors ({report.kind}"
              f"{', merged on disk' if report.merged else ''}); failed {len(report.failed)}")
    return 0 if report.chunks else 1


def _fetch_line(label: str, report: FetchReport) -> str:
    if report.path is None:
        return f"{label}: {report.note or 'nothing written'}"
    extras = [f"{n} {what}" for n, what in ((report.no_abstract, "without abstract (metadata only)"),
                                              (report.errata, "errata"), (report.full_texts, "with full text")) if n]
    return (f"{label}: {report.found} found; {report.written} records in {report.path} ({report.new} new"
            + "".join(f"; {e}" for e in extras) + ")" + (f" [{report.note}]" if report.note else ""))


def cmd_fetch(args: argparse.Namespace) -> int:
    from exorag.errors import FetchError, ServiceUnreachable
    from exorag.fetch import FetchReport, defaults, europepmc, ids, pubmed

    if (args.max is not None and args.max < 1) or (args.batch is not None and args.batch < 1):
        print("error: --max and --batch must be at least 1", file=sys.stderr)
        return 2
    out = Path(args.out)
    progress = None if args.quiet else (lambda message: print(message, file=sys.stderr))
    reports: list[tuple[str, FetchReport]] = []
    if args.source == "pubmed":
        reports.append((f"PubMed {args.query!r}", pubmed.fetch_pubmed(
            args.query, args.max or 200, args.since, out, args.api_key, batch_size=args.batch or pubmed.BATCH,
            refresh=args.refresh, progress=progress)))
    elif args.source == "europepmc":
        reports.append((f"Europe PMC {args.query!r}", europepmc.fetch_europepmc(
            args.query, args.max or 200, args.fulltext, out, page_size=args.batch or europepmc.PAGE,
            refresh=args.refresh, captions=args.captions, progress=progress)))
    elif args.source == "ids":
        reports.append((f"identifiers in {args.file}", ids.fetch_ids(Path(args.file), out, args.api_key,
                                                                     progress=progress)))
    else:  # default
        version, sources = defaults.load(defaults.find_list(Path(args.sources) if args.sources else None))
        print(f"default source list v{version}: {len(sources)} PubMed queries", file=sys.stderr)
        for source in sources:
            try:
                reports.append((source.name, pubmed.fetch_pubmed(
                    source.query, args.max or source.max, source.since, out, args.api_key,
                    batch_size=args.batch or pubmed.BATCH, refresh=args.refresh, progress=progress)))
            except ServiceUnreachable:
                raise
            except FetchError as exc:
                reports.append((source.name, FetchReport(failures=[f"{source.name}: {exc}"], note="failed")))
    for label, report in reports:
        print(_fetch_line(label, report))
        for failure in report.failures:
            print(f"error: {failure}", file=sys.stderr)
        if report.not_found:
            print("not found: " + ", ".join(report.not_found), file=sys.stderr)
    failures = sum(len(r.failures) for _, r in reports)
    if failures:
        print(f"{failures} request(s) failed; what did arrive is written; run the same command again to retry",
              file=sys.stderr)
    paths = [r.path for _, r in reports if r.path is not None]
    if paths and not args.no_ingest:
        from exorag.fetch.ingest import METADATA_ONLY, ingest_fetched
        from exorag.build.ingest import Problem

        def tell(problem: Problem) -> None:
            if problem.reason != METADATA_ONLY:
                print(f"failed: {problem}", file=sys.stderr)
            elif not args.quiet:
                print(f"skipped: {problem}", file=sys.stderr)

        done = ingest_fetched(_open(args), paths, progress=not args.quiet, on_problem=tell)
        metadata_only = sum(1 for p in done.skipped if p.reason == METADATA_ONLY)
        print(f"ingested {done.ingested} documents (added {done.added}, updated {done.updated}, "
              f"unchanged {done.unchanged}); skipped {metadata_only} without abstract (metadata only), "
              f"failed {len(done.failed)}; vectors +{done.vectors_added} -{done.vectors_removed}")
    return 1 if failures else 0


def cmd_table(args: argparse.Namespace) -> int:
    from exorag.output.table import evidence_table, to_csv, to_markdown

    rows = evidence_table(_open_checked(args), args.question, k=args.k, filters=_filters(args), expand=args.expand)
    if not rows:
        print("The indexed literature does not appear to answer this question: no evidence table "
              "(try other words, fewer filters or `exorag search`).", file=sys.stderr)
        return 1
    out = to_csv(rows) if args.format == "csv" else to_markdown(rows)
    if args.out:
        try:
            Path(args.out).write_text(out, encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {len(rows)} rows to {args.out}")
    else:
        print(out, end="")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    max_upload_mb = current().serve.max_upload_mb
    if not 0 < max_upload_mb < 1e6:
        print(f"error: the upload limit must be a positive number of MB, not {max_upload_mb:g} "
              "(--max-upload-mb or $EXORAG_MAX_UPLOAD_MB)", file=sys.stderr)
        return 2
    from exorag.ask.generate import config_from

    llm = config_from(stream=not args.llm_no_stream,
                      unsupported=args.llm_unsupported)  # None without a URL: then nothing leaves the machine
    from exorag.web.app import serve

    index = _open(args)
    if hasattr(index, "where"):  # a sharded index: say where its shards run
        nodes = {w["node"] for replicas in index.where() for w in replicas}
        print(f"serving the sharded index {index.folder} read-only: {index.shards} shards x {index.replicas} "
              f"replicas on {len(nodes)} Ray node(s) of {current().cluster.address}", file=sys.stderr)
    serve(index, host=current().serve.host, port=current().serve.port, max_upload_mb=max_upload_mb, llm=llm)
    return 0


def _add_llm_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generative mode (an OpenAI-compatible chat endpoint; off unless a URL is set)")
    g.add_argument("--llm-url", metavar="URL",
                   help="base URL, e.g. http://127.0.0.1:11434/v1 (default $EXORAG_LLM_URL)")
    g.add_argument("--llm-model", metavar="NAME", help="model name (default $EXORAG_LLM_MODEL)")
    g.add_argument("--llm-key", metavar="KEY", help="API key (default $EXORAG_LLM_KEY, else $OPENAI_API_KEY)")
    g.add_argument("--llm-timeout", type=float, metavar="S",
                   help="seconds to wait for the reply to start or continue (default 120)")
    g.add_argument("--llm-no-stream", action="store_true", help="ask for one JSON reply instead of a stream")
    g.add_argument("--llm-unsupported", choices=["drop", "mark"], default="drop",
                   help="sentences the passages do not support: drop them (default) or keep them marked")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", metavar="DIR", help="index folder (default ./index or $EXORAG_INDEX)")
    common.add_argument("--model", metavar="NAME_OR_PATH",
                        help="sentence-transformers model (default: the index's model, else bundled all-MiniLM-L6-v2)")
    cluster = argparse.ArgumentParser(add_help=False)
    g = cluster.add_argument_group("sharded index (the [cluster] extra: Ray)")
    g.add_argument("--cluster", metavar="ADDR",
                   help="serve the sharded index in --index ROOT (ROOT/cluster.json) from the Ray cluster at ADDR, "
                        "e.g. --cluster 127.0.0.1:6379 --index sharded/ (default $EXORAG_CLUSTER)")
    g.add_argument("--replicas", type=int, metavar="R",
                   help="shard actors per shard, for many users (default 1, or $EXORAG_REPLICAS)")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON (one object) instead of text")
    parser = argparse.ArgumentParser(prog="exorag", description="Cited answers from the exosome / EV literature, offline.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", parents=[common], help="add JSONL, PDF, .txt/.md files or folders to the index")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="files or folders: .jsonl/.jsonl.gz records, .pdf, .txt/.md, .ris, .bib")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--file-timeout", type=float, metavar="S",
                   help=f"abandon a file whose reading, tagging and chunking take longer than S seconds "
                        f"(default {BuildSettings.file_timeout_s:g}; 0: no limit)")
    p.add_argument("--overlap", action="store_true",
                   help="embed in a thread while parsing goes on (also EXORAG_OVERLAP=1; no faster on 2 cores)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("sync", parents=[common, as_json], help="make the index match a folder: add, update, remove")
    p.add_argument("folder", metavar="FOLDER", help="the folder whose files the index should hold")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--file-timeout", type=float, metavar="S",
                   help=f"abandon a file whose reading, tagging and chunking take longer than S seconds "
                        f"(default {BuildSettings.file_timeout_s:g}; 0: no limit)")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("remove", parents=[common], help="remove documents (and their chunks and vectors) by id")
    p.add_argument("doc_ids", nargs="+", metavar="DOC_ID", help="document ids, as `search` and `ask` show them")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("demo", parents=[common], help="build a demo index from the EV corpus shipped with exorag (879 records)")
    p.add_argument("--data", metavar="JSONL", help="corpus file (default: $EXORAG_DEMO_DATA, else the shipped exorag/data/demo/ev_demo.jsonl.gz)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("search", parents=[common, cluster, as_json], help="ranked passages for a query")
    p.add_argument("query", help="keywords or a question")
    p.add_argument("-k", type=int, help=f"number of passages (default {AskSettings.search_k})")
    p.add_argument("--mode", choices=["hybrid", "dense", "lexical"], default="hybrid",
                   help="dense (MiniLM), lexical (FTS5 bm25) or both fused (default hybrid)")
    p.add_argument("--fusion", choices=["rrf", "convex"], default="convex", help="how hybrid mode fuses (default convex: better on SciFact train)")
    _add_filter_flags(p)
    _add_expand_flag(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", parents=[common, cluster, as_json], help="an answer quoted from the literature, with citations")
    p.add_argument("question", help="a question about exosomes / extracellular vesicles")
    p.add_argument("-k", type=int, help=f"passages to draw evidence from (default {AskSettings.k}, at most {AskSettings.max_k})")
    p.add_argument("--format", choices=["bibtex", "ris", "csljson", "markdown"],
                   help="print the cited works in this format (markdown: the answer with its references)")
    _add_filter_flags(p)
    _add_expand_flag(p)
    _add_llm_flags(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("cite", parents=[common, cluster, as_json], help="suggest citations from the index for each sentence of a text")
    p.add_argument("file", metavar="FILE", help="a text file, or - to read standard input")
    p.add_argument("-k", type=int, help=f"passages searched per sentence (default {AskSettings.k}, at most {AskSettings.max_k})")
    _add_filter_flags(p)
    p.set_defaults(func=cmd_cite)

    p = sub.add_parser("table", parents=[common, cluster], help="an evidence table (one row per paper) for a question")
    p.add_argument("question", help="the question whose evidence to tabulate")
    p.add_argument("-k", type=int, help=f"passages to draw evidence from (default {AskSettings.table_k}, at most {AskSettings.max_k})")
    p.add_argument("--format", choices=["csv", "markdown"], default="markdown", help="table format (default markdown)")
    p.add_argument("--out", metavar="FILE", help="write the table to FILE instead of standard output")
    _add_filter_flags(p)
    _add_expand_flag(p)
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("show", parents=[common, cluster, as_json], help="a document's metadata and chunks")
    p.add_argument("doc_id", help="a document id, as `search` and `ask` show them")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("stats", parents=[common, as_json], help="counts, model and size of the index")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("check", parents=[common, as_json], help="compare chunks with vectors; --repair fixes the drift")
    p.add_argument("--repair", action="store_true", help="embed missing vectors and drop stale ones")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("eval", parents=[common, as_json], help="retrieval metrics on human judgments (BEIR, BioASQ)")
    p.add_argument("dataset", choices=["beir", "bioasq", "pubmedqa"], help="which kind of benchmark PATH holds")
    p.add_argument("folder", metavar="PATH",
                   help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/), a BioASQ golden folder, "
                        "or PubMedQA's ori_pqal.json")
    p.add_argument("--split", default="test", help="BEIR qrels split (default test; tune on train)")
    p.add_argument("--mode", choices=["hybrid", "dense", "lexical"], default="hybrid",
                   help="dense (MiniLM), lexical (FTS5 bm25) or both fused (default hybrid)")
    p.add_argument("--fusion", choices=["rrf", "convex"], default="convex", help="how hybrid mode fuses (default convex)")
    p.add_argument("--limit", type=int, help="first N questions only (answer evaluations default to 200)")
    p.add_argument("--answers", action="store_true", help="BioASQ: evaluate answers (citations, ROUGE-L), not retrieval")
    _add_expand_flag(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_eval)

    fetch_common = argparse.ArgumentParser(add_help=False, parents=[common])
    fetch_common.add_argument("--out", metavar="DIR", default=os.path.join("corpus", "fetched"),
                              help="where JSONL, state and raw answers go (default corpus/fetched)")
    fetch_common.add_argument("--max", type=int, metavar="N", help="records per query (default 200)")
    fetch_common.add_argument("--batch", type=int, metavar="N",
                              help="records per request (default 200 PubMed, 100 Europe PMC)")
    fetch_common.add_argument("--api-key", metavar="KEY", help="NCBI API key (default $NCBI_API_KEY): 10 requests/s")
    fetch_common.add_argument("--refresh", action="store_true", help="search again even if an earlier run completed")
    fetch_common.add_argument("--no-ingest", action="store_true", help="only write the JSONL, do not ingest it")
    fetch_common.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p = sub.add_parser("fetch", help="fetch records from PubMed / Europe PMC into corpus/fetched/, then ingest them")
    fetch_sub = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    p = fetch_sub.add_parser("pubmed", parents=[fetch_common], help="a PubMed query through NCBI E-utilities")
    p.add_argument("query", help="a PubMed query, e.g. 'exosome AND PD-L1'")
    p.add_argument("--since", type=int, metavar="YEAR", help="publication year from")
    p = fetch_sub.add_parser("europepmc", parents=[fetch_common], help="a Europe PMC query (optionally OA full texts)")
    p.add_argument("query", help="a Europe PMC query, e.g. 'exosome PD-L1 OPEN_ACCESS:y'")
    p.add_argument("--fulltext", action="store_true", help="add JATS full text of open-access articles")
    p.add_argument("--captions", action="store_true", help="with --fulltext: keep figure and table captions")
    p = fetch_sub.add_parser("ids", parents=[fetch_common], help="PMIDs, PMCIDs and DOIs listed in a file")
    p.add_argument("file", help="a text file listing PMIDs, PMCIDs or DOIs (any layout)")
    p = fetch_sub.add_parser("default", parents=[fetch_common], help="the default query list (corpus/default_sources.json)")
    p.add_argument("--sources", metavar="JSON", help="another query list")
    for name in ("pubmed", "europepmc", "ids", "default"):
        fetch_sub.choices[name].set_defaults(func=cmd_fetch)

    p = sub.add_parser("cluster", help="build a sharded index on a Ray cluster (the [cluster] extra)")
    cluster_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = cluster_sub.add_parser("build", parents=[common, as_json],
                               help="read, chunk and store into N shards, embed on a Ray Data actor pool, write vectors")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="files or folders, as for `ingest` (every node must see them, and the --index folder)")
    p.add_argument("--address", required=True, metavar="ADDR", help="the Ray cluster's address (host:port of its head)")
    p.add_argument("--shards", type=int, required=True, metavar="N",
                   help="number of shards (fixed once built: a rerun must give the same N)")
    p.add_argument("--ivf", action="store_true",
                   help="IVF-fp16 vectors with one quantiser for all shards (default: exact while the corpus holds at "
                        "most $EXORAG_APPROX_THRESHOLD chunks, 200,000)")
    p.add_argument("--merge", action="store_true",
                   help="also merge the shards' inverted lists on disk into one index (merged.faiss; implies --ivf)")
    p.add_argument("--workers", type=int, metavar="N", help="embedding actors (default: the cluster's CPUs / cpus per worker)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C",
                   help="CPUs each embedding actor takes (and ONNX threads it runs; default 1)")
    p.add_argument("--part-size", type=int, default=256, metavar="N",
                   help="chunks per embedding part, the unit a rerun skips once written (default 256)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_cluster_build)
    cluster_sub.choices["build"].formatter_class = argparse.RawDescriptionHelpFormatter
    cluster_sub.choices["build"].epilog = ("example:\n  exorag cluster build --address 127.0.0.1:6379 --shards 4 "
                                           "--index sharded corpus/")

    p = sub.add_parser("serve", parents=[common, cluster], help="the browser chat")
    p.add_argument("--host", help=f"address to bind (default {ServeSettings.host}: this machine only)")
    p.add_argument("--port", type=int, help=f"port to listen on (default {ServeSettings.port})")
    p.add_argument("--max-upload-mb", type=float, metavar="MB",
                   help="largest file the page accepts for upload (default 50, or $EXORAG_MAX_UPLOAD_MB)")
    _add_llm_flags(p)
    p.set_defaults(func=cmd_serve)
    for name, command in sub.choices.items():
        command.formatter_class = argparse.RawDescriptionHelpFormatter
        command.epilog = "example:\n  " + EXAMPLES[name]
    for name, command in fetch_sub.choices.items():
        command.formatter_class = argparse.RawDescriptionHelpFormatter
        command.epilog = "example:\n  " + FETCH_EXAMPLES[name]
    return parser


EXAMPLES = {
    "ingest": "exorag ingest papers/ records.jsonl --index my_index",
    "sync": "exorag sync papers/ --index my_index",
    "remove": "exorag remove pmid:31358973 --index my_index",
    "demo": "exorag demo && exorag serve",
    "search": 'exorag search "exosomal PD-L1 immunotherapy" -k 5 --year-from 2018',
    "ask": 'exorag ask "Which markers are used to characterise exosomes?" --json',
    "cite": "exorag cite draft.txt   (or: cat draft.txt | exorag cite -)",
    "table": 'exorag table "Which exosomal miRNAs are biomarkers of colorectal cancer?" --format csv --out t.csv',
    "show": "exorag show pmid:31358973",
    "stats": "exorag stats --json",
    "check": "exorag check --repair",
    "eval": "exorag eval beir ../shared/data/scifact/beir_format --split train",
    "fetch": 'exorag fetch pubmed "exosome AND PD-L1" --max 100',
    "serve": "exorag serve --port 7860   (then open http://127.0.0.1:7860)\n"
             "  exorag serve --cluster 127.0.0.1:6379 --index sharded/ --replicas 2   (a sharded index, read-only)",
    "cluster": "exorag cluster build --address 127.0.0.1:6379 --shards 4 --index sharded corpus/",
}
FETCH_EXAMPLES = {
    "pubmed": 'exorag fetch pubmed "exosome AND PD-L1" --since 2019 --max 100',
    "europepmc": 'exorag fetch europepmc "exosome PD-L1" --fulltext --max 50',
    "ids": "exorag fetch ids my_pmids.txt",
    "default": "exorag fetch --default",
}


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the same clean path as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["fetch", "--default"]:
        argv[1] = "default"  # `exorag fetch --default` is the documented spelling of `exorag fetch default`
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    if getattr(args, "replicas", None) is not None and args.replicas < 1:
        print("error: --replicas must be at least 1", file=sys.stderr)
        return 2
    if getattr(args, "k", 1) is not None and getattr(args, "k", 1) < 1:
        print("error: -k must be at least 1", file=sys.stderr)
        return 2
    try:
        configure(_settings(args))
        if getattr(args, "k", None) is None and hasattr(args, "k"):
            args.k = current().ask.search_k if args.command == "search" else \
                current().ask.table_k if args.command == "table" else current().ask.k
        if args.command in ("ask", "cite", "table") and args.k > current().ask.max_k:
            args.k = current().ask.max_k  # as the page does: a huge k only makes the answer slow
        return args.func(args)
    except SettingsError as exc:  # a bad $EXORAG_* value or flag: a usage error
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ExoragError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: what was written is complete; run the same command again to resume", file=sys.stderr)
        return 130
    except sqlite3.DatabaseError as exc:  # a store call outside the Index's own translation (should not happen)
        print(f"error: the index store failed: {exc}; run `exorag check --index DIR` to see what is damaged",
              file=sys.stderr)
        return 1
    except BrokenPipeError:  # `exorag show ID | head`: the reader left; end quietly, as cat does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit would fail again
        return 141
    finally:
        configure(None)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
