"""The browser chat (`exorag serve`): the Gradio page over the same engine as `exorag ask`, plus a JSON API.

`build_app(index, settings)` lays out the page: a filter panel (year range, source, publication type, one multiselect
per study-tag key, each choice with its number of documents; Clear filters; number of passages) beside a line naming
the active filters (on every tab) and four tabs, *Chat* (as tall as the window; history; each reply says "searching"
at once, then quotes with `[n]` markers
that bring up the cited sentence highlighted within its passage in the sources panel; the last answer's
references as BibTeX / RIS / Markdown downloads, its evidence table (exorag/output/table.py, one row per cited paper) as CSV /
Markdown, and the answer as Markdown to copy; "Retry without filters" when filters are set and the answer abstains),
*Check my draft* (`exorag cite`; the same retry when the filters left no passage), *Add papers* (upload PDF, JSONL,
TXT, MD, RIS, BibTeX into the index with a per-file result) and *Corpus* (the make-up: EV share, sources, years; a
searchable document list; removal of chosen documents through build/sync.py's remove_documents, after a
confirmation). The named endpoint `/ask` takes (question, k, year_from, year_to, sources,
pub_types, tags) and returns `render.answer_dict` (or `{"error": ...}`), e.g.
`gradio_client.Client(url).predict("Which markers ...?", 8, api_name="/ask")`.

Safety: `serve` binds to 127.0.0.1 unless told otherwise, never opens a share link, sends no analytics and uses
system fonts and inline script only, so the page loads nothing from other hosts. Gradio serves only its own
upload cache (files sent by the browser, exports written by the app) and static files: `allowed_paths` is
empty, so neither the index nor any other file can be read through it. Uploads are limited in type and size.
Several requests are served at once (CONCURRENCY), and questions run side by side (the Index locks each store call
only). Handlers raise the library's errors; `user_message` is the one place that turns them into what the user
reads. The CSS and JavaScript are plain files in assets/.
With `serve --llm-url/--llm-model` (exorag/ask/generate.py) the chat and `/ask` answer through that model instead: its
reply streams into the chat as an unchecked draft, then is replaced by the checked answer (every sentence must be
supported by the passage it cites; else the extractive answer with a note).
Deliberately left out: authentication and multi-turn context (each question is answered on its own).
"""

from __future__ import annotations

import threading
from pathlib import Path

from exorag.settings import offline_environment

offline_environment()  # before gradio is imported: no telemetry, no version check

from collections.abc import Iterator
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from exorag.web import handlers as h
from exorag.web.guard import Guard
from exorag.web.page import SOURCES_PLACEHOLDER, active_filters_html, answer_sources, corpus_html, documents_html, \
    draft_html, drafting_markdown, esc, generated_markdown, removal_choices, reply_markdown, sources_panel, upload_html
from exorag.errors import EmptyIndex, EmptyQuery, ExoragError
from exorag.ask.generate import LLMConfig
from exorag.index.index import Index
from exorag.output.render import answer_dict, generated_dict, md_escape
from exorag.output.table import rows_for

CONCURRENCY = 4  # requests handled at once
SESSIONS_KEPT = 256  # browser sessions whose state Gradio keeps (~0.1 MB each; /ask calls each make one): bounded memory
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial",
                "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]
EXAMPLE = h.EXAMPLE
DEFAULT_K, MAX_K = h.DEFAULT_K, h.MAX_K
STREAM_EVERY_S = 0.3  # how often the chat shows the model's reply so far while it writes
CHAT_HEIGHT = "calc(100vh - 330px)"  # the window below the header, filter line and tabs, less the question box
CHAT_MIN_HEIGHT = 360
ASSETS = Path(__file__).resolve().parent / "assets"  # the page's CSS and JavaScript, as plain files


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


# Clicking an in-page `[n]` link (#exorag-...) unfolds, scrolls to and highlights its source card.
JUMP_JS = "<script>\n" + _asset("jump.js") + "</script>"

# After an answer: its start at the top of the chat, and its sources (the open fold) at the top of the panel.
SHOW_NEWEST_JS = _asset("show_newest.js")

CSS = _asset("page.css")


def theme() -> gr.themes.Base:
    """The default theme with system fonts only, so the page requests no web fonts."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def _download(path: Any = None) -> gr.DownloadButton:
    return gr.DownloadButton(value=str(path) if path else None, interactive=bool(path))


def user_message(exc: BaseException, index: Index, failed: str = "that question could not be answered",
                 empty: str = h.EMPTY_QUESTION) -> str:
    """The one place where an error of the handlers becomes what the user reads (chat, /ask, draft check)."""
    if isinstance(exc, EmptyQuery):
        return empty
    if isinstance(exc, EmptyIndex):
        return h.empty_index_message(index)
    if isinstance(exc, h.FilterError):
        return f"Please fix the filters: {exc}"
    if isinstance(exc, ExoragError):
        return f"Sorry, {failed}: {exc}"
    return f"Sorry, {failed}: {type(exc).__name__}: {exc}"  # a bug: say so rather than hang or show a traceback


def stream_generated(index: Index, llm: LLMConfig, question: str, k: float, filters: Any) -> Iterator[tuple[str, Any]]:
    """("draft", the model's reply so far) every STREAM_EVERY_S while it writes, then ("done", run_generated's
    result: a Generated, or the exception it raised)."""
    latest: dict[str, Any] = {"text": "", "done": False, "result": None}

    def work() -> None:
        try:
            latest["result"] = h.run_generated(index, question, llm, k, filters,
                                               on_text=lambda text: latest.__setitem__("text", text))
        except Exception as exc:  # handed to the page, which says what went wrong instead of hanging
            latest["result"] = exc
        finally:
            latest["done"] = True

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    shown = ""
    while not latest["done"]:
        worker.join(STREAM_EVERY_S)
        if latest["text"] != shown and not latest["done"]:
            shown = latest["text"]
            yield "draft", shown
    yield "done", latest["result"]


def build_app(index: Index, settings: h.AppSettings | None = None) -> gr.Blocks:
    """The page and the `/ask` API over `index`."""
    settings = settings or h.AppSettings.for_index(index)

    def ask_endpoint(question: str, k: int = DEFAULT_K, year_from: int | None = None, year_to: int | None = None,
                     sources: list[str] | None = None, pub_types: list[str] | None = None,
                     tags: list[str] | None = None) -> dict[str, Any]:
        """Answer a question about exosomes / EVs from the index: quoted sentences with numbered citations.

        `tags` are study-tag filters as "key=value" (e.g. "design=review"), like `exorag ask --tag`."""
        try:
            filters = h.make_filters(year_from, year_to, sources, pub_types, tags)
            if settings.llm is not None:  # `serve --llm-url`: the same as `ask --llm-url ... --json`
                return generated_dict(h.run_generated(index, question, settings.llm, k, filters))
            return answer_dict(h.run_question(index, question, k, filters))
        except Exception as exc:
            return {"question": question if isinstance(question, str) else repr(question),
                    "error": user_message(exc, index)}

    def chat(question: str, history: list[dict[str, Any]] | None, turns: list[dict[str, Any]] | None, k: float,
             year_from: str | None, year_to: str | None, *choices: list[str] | None) -> Iterator[tuple[Any, ...]]:
        """The chat's handler; `choices`: sources, publication types, then one list per tag key (h.panel_filters).
        Yields (history, sources panel, turns, question box, five downloads, Markdown, retry button, question)."""
        history = list(history or []) + [{"role": "user", "content": question or ""},
                                         {"role": "assistant", "content": h.SEARCHING}]
        turns = list(turns or [])
        skip = gr.skip()
        hidden = gr.Button(visible=False)
        yield history, skip, skip, "", skip, skip, skip, skip, skip, skip, hidden, question or ""
        generated = None
        try:
            filters = h.panel_filters(year_from, year_to, *choices)
            if settings.llm is None:
                result = h.run_question(index, question, k, filters)
            else:
                for kind, update in stream_generated(index, settings.llm, question, k, filters):
                    if kind == "draft":
                        history[-1] = {"role": "assistant", "content": drafting_markdown(update, settings.llm.model)}
                        yield history, skip, skip, "", skip, skip, skip, skip, skip, skip, skip, skip
                    elif isinstance(update, BaseException):
                        raise update
                    else:
                        generated, result = update, update.answer
        except Exception as exc:
            history[-1] = {"role": "assistant", "content": user_message(exc, index)}
            yield history, skip, skip, "", skip, skip, skip, skip, skip, skip, skip, skip
            return
        turn = turns[-1]["turn"] + 1 if turns else 1
        reply = (reply_markdown(result, turn, filters) if generated is None else
                 generated_markdown(generated, turn, filters, settings.llm.model))  # type: ignore[union-attr]
        history[-1] = {"role": "assistant", "content": reply}
        turns = (turns + [{"turn": turn, "question": result.question, "sources": answer_sources(result, turn)}])
        turns = turns[-h.MAX_TURNS:]
        files = h.write_exports(result, settings.downloads, rows_for(index, result)) if result.citations else {}
        markdown = files["markdown"].read_text(encoding="utf-8") if files else ""
        yield (history, sources_panel(turns), turns, "", _download(files.get("bibtex")), _download(files.get("ris")),
               _download(files.get("markdown")), markdown, _download(files.get("table_csv")),
               _download(files.get("table_markdown")), gr.Button(visible=h.evidence_filtered_out(result, filters)),
               skip)

    def draft(text: str, k: float, year_from: str | None, year_to: str | None,
              *choices: list[str] | None) -> tuple[str, Any]:
        """The draft check's result, and the retry button (shown when the filters left no evidence)."""
        try:
            filters = h.panel_filters(year_from, year_to, *choices)
            sentences = h.check_draft(index, text, k, filters)
            return draft_html(sentences, filters), gr.Button(visible=h.draft_filtered_out(sentences, filters))
        except Exception as exc:
            empty = "There is no sentence to check in that text." if (text or "").strip() else \
                "Paste a paragraph of your draft first."
            return (f"<p>{esc(user_message(exc, index, 'the draft could not be checked', empty))}</p>",
                    gr.Button(visible=False))

    def upload(files: list[str] | None, progress: gr.Progress = gr.Progress()) -> Iterator[str]:  # noqa: B008
        if not files:
            yield upload_html([], "Choose one or more files first.")
            return
        total = len(files)

        def tell(i: int, n: int, name: str) -> None:
            progress((i, n), desc=f"adding {name}" if i < n else "embedding new passages")

        rows: list[tuple[str, bool, str]] = []
        try:
            for rows in h.ingest_uploads(index, files, settings, on_file=tell):
                done = min(len(rows), total)
                yield upload_html(rows, f"{done} of {total} files processed…" if done < total else "Embedding…")
        except ExoragError as exc:  # e.g. ReadOnlyIndex: a sharded index served from a cluster takes no uploads
            yield upload_html(rows, user_message(exc, index, "the files could not be added"))
            return
        added = sum(1 for _, ok, _ in rows[:total] if ok)
        yield upload_html(rows, f"Done: {added} of {total} files added to the index.")

    def summary(*values: Any) -> str:
        """The active filters above the tabs, with how many documents pass them."""
        try:
            filters = h.panel_filters(*values)
        except h.FilterError as exc:
            return active_filters_html(None, 0, 0, problem=str(exc))
        return active_filters_html(filters, index.count_documents(filters), index.count_documents())

    def listed(query: str | None, selected: list[str] | None) -> tuple[str, Any]:
        """The document list for the search box, and the removal picker over its rows (ids picked before kept)."""
        total, rows = h.find_documents(index, query or "")
        choices = removal_choices(rows)
        known = {value for _, value in choices}
        keep = [v for v in (selected or []) if v]
        return (documents_html(total, rows, query or ""),
                gr.Dropdown(choices=choices + [(v, v) for v in keep if v not in known], value=keep))

    def refresh(*values: Any) -> list[Any]:
        """After the index changed (or on load): the filter choices (values still present kept), the corpus
        make-up, the active-filter line, the document list and its removal picker."""
        *panel, query, selected = values
        options = h.panel_choices(index)
        lists = [options["sources"], options["pub_types"], *(options["tags"][key] for key in h.TAG_KEYS)]
        boxes = []
        for i, (choices, current) in enumerate(zip(lists, panel[2:])):
            valid = {value for _, value in choices}
            boxes.append(gr.Dropdown(choices=choices, value=[v for v in (current or []) if v in valid],
                                     **({"visible": bool(choices)} if i >= 2 else {})))
        page = corpus_html(h.corpus_overview(index), index.folder)
        kept = [[v for v in (current or []) if v in {value for _, value in choices}]
                for choices, current in zip(lists, panel[2:])]
        return [*boxes, page, summary(*panel[:2], *kept), *listed(query, selected)]

    def confirm_removal(selected: list[str] | None) -> tuple[Any, str, str]:
        ids = [v for v in (selected or []) if v and v.strip()]
        if not ids:
            return gr.update(visible=False), "", "<p>Select the documents to remove first (pick them from the list " \
                                                 "or type an id).</p>"
        noun = "document" if len(ids) == 1 else "documents"
        return (gr.update(visible=True),
                f"Remove **{len(ids)} {noun}** ({md_escape(', '.join(ids))}) from the index? Their passages and "
                "vectors are deleted, and an uploaded file is deleted once none of its documents is left. This "
                "cannot be undone.", "")

    def remove(selected: list[str] | None, query: str | None) -> tuple[Any, ...]:
        try:
            done = f"<p class='exorag-ok'>{esc(h.remove_selected(index, selected, settings))}</p>"
        except Exception as exc:
            done = f"<p class='exorag-failed'>{esc(user_message(exc, index, 'the documents could not be removed'))}</p>"
        page, picker = listed(query, [])
        return gr.update(visible=False), done, page, picker

    with gr.Blocks(title="exorag", analytics_enabled=False, delete_cache=(3600, 24 * 3600)) as demo:
        if settings.llm is None:
            gr.Markdown("## exorag\nCited answers quoted from the indexed exosome / extracellular vesicle literature, "
                        "offline. Every sentence of an answer is a verbatim quote; click `[n]` to see it in its "
                        "passage.", elem_id="exorag-header")
        else:
            gr.Markdown(f"## exorag\nAnswers written by `{settings.llm.model}` from the indexed exosome / "
                        "extracellular vesicle literature; every sentence is checked against the passage it cites "
                        "(unsupported ones are dropped). Click `[n]` to see the supporting sentence in its passage.",
                        elem_id="exorag-header")
        turns = gr.State([])
        asked = gr.State("")  # the last question asked, for "retry without filters"
        options = h.panel_choices(index)
        with gr.Row():
            with gr.Column(scale=1, min_width=270, elem_id="exorag-filters"):
                gr.Markdown("### Filters")
                clear_filters = gr.Button("Clear filters", variant="secondary", size="sm",
                                          elem_id="exorag-clear-filters")
                with gr.Row():
                    year_from = gr.Textbox(label="From year", placeholder="any", max_lines=1,
                                           elem_id="exorag-year-from")
                    year_to = gr.Textbox(label="To year", placeholder="any", max_lines=1,
                                         elem_id="exorag-year-to")
                source_box = gr.Dropdown(choices=options["sources"], value=[], multiselect=True, label="Source",
                                         elem_id="exorag-filter-sources")
                pub_box = gr.Dropdown(choices=options["pub_types"], value=[], multiselect=True,
                                      label="Publication type", elem_id="exorag-filter-pub_types")
                with gr.Accordion("Study tags", open=True, elem_id="exorag-tag-filters"):
                    gr.Markdown("Any chosen value of one tag; every tag chosen must hold.",
                                elem_classes="exorag-tags-help")
                    tag_boxes = [gr.Dropdown(choices=options["tags"][key], value=[], multiselect=True,
                                             label=h.tag_label(key), visible=bool(options["tags"][key]),
                                             elem_id=f"exorag-filter-tag-{key}") for key in h.TAG_KEYS]
                k = gr.Slider(1, MAX_K, value=DEFAULT_K, step=1, label="Passages to draw from (k)")
                clear = gr.Button("New conversation", variant="secondary")
            with gr.Column(scale=6):
                active = gr.HTML(summary(), elem_id="exorag-active-filters")
                with gr.Tabs():
                    with gr.Tab("Chat", id="chat"):
                        with gr.Row():
                            with gr.Column(scale=3):
                                chatbot = gr.Chatbot(label="Chat", height=CHAT_HEIGHT, min_height=CHAT_MIN_HEIGHT,
                                                     latex_delimiters=[], buttons=["copy"], elem_id="exorag-chat",
                                                     placeholder=f"Ask, for example: *{EXAMPLE}*")
                                retry = gr.Button("Retry without filters", visible=False, variant="primary",
                                                  size="sm", elem_id="exorag-retry")
                                question = gr.Textbox(label="Question", placeholder=EXAMPLE, lines=1, max_lines=4,
                                                      submit_btn=True, elem_id="exorag-question")
                                with gr.Row():
                                    bib = gr.DownloadButton("BibTeX", interactive=False, size="sm",
                                                            elem_id="exorag-bibtex")
                                    ris = gr.DownloadButton("RIS", interactive=False, size="sm", elem_id="exorag-ris")
                                    md_file = gr.DownloadButton("Markdown", interactive=False, size="sm",
                                                                elem_id="exorag-markdown")
                                    table_csv = gr.DownloadButton("Evidence table (CSV)", interactive=False,
                                                                  size="sm", elem_id="exorag-table-csv")
                                    table_md = gr.DownloadButton("Evidence table (Markdown)", interactive=False,
                                                                 size="sm", elem_id="exorag-table-md")
                                with gr.Accordion("Last answer as Markdown, with references (copy)", open=False):
                                    md_text = gr.Textbox(show_label=False, lines=8, max_lines=20, buttons=["copy"],
                                                         interactive=False, elem_id="exorag-markdown-text")
                            with gr.Column(scale=2):
                                gr.Markdown("### Sources")
                                sources = gr.HTML(SOURCES_PLACEHOLDER, elem_id="exorag-sources")
                    with gr.Tab("Check my draft", id="draft"):
                        draft_box = gr.Textbox(label="Your draft (a paragraph or more)", lines=8,
                                               placeholder="Paste text; each sentence gets suggested citations.",
                                               elem_id="exorag-draft")
                        with gr.Row():
                            check = gr.Button("Check", variant="primary", elem_id="exorag-check")
                            draft_retry = gr.Button("Retry without filters", visible=False, variant="primary",
                                                    elem_id="exorag-draft-retry")
                        draft_out = gr.HTML(draft_html([]), elem_id="exorag-draft-result")
                    with gr.Tab("Add papers", id="upload"):
                        gr.Markdown(f"Add files to the index: {', '.join(h.UPLOAD_TYPES)}, up to "
                                    f"{settings.max_upload_mb:g} MB each. They are kept in `{settings.uploads}`.")
                        files = gr.File(file_count="multiple", label="Files", elem_id="exorag-files")
                        add = gr.Button("Add to index", variant="primary", elem_id="exorag-add")
                        upload_out = gr.HTML("", elem_id="exorag-upload-result")
                    with gr.Tab("Corpus", id="corpus"):
                        corpus = gr.HTML("", elem_id="exorag-corpus")
                        gr.Markdown("### Documents")
                        doc_query = gr.Textbox(label="Find documents", max_lines=1, elem_id="exorag-doc-query",
                                               placeholder="words of a title, an id, a PMID or a DOI")
                        with gr.Row(equal_height=True):
                            to_remove = gr.Dropdown(choices=[], value=[], multiselect=True, allow_custom_value=True,
                                                    label="Documents to remove (pick from the list or type an id)",
                                                    scale=4, elem_id="exorag-remove-pick")
                            remove_btn = gr.Button("Remove selected…", variant="stop", scale=1,
                                                   elem_id="exorag-remove")
                        with gr.Row(visible=False, elem_id="exorag-remove-confirm") as confirm_row:
                            confirm_text = gr.Markdown("", elem_id="exorag-remove-question")
                            confirm_btn = gr.Button("Yes, remove them", variant="stop", scale=0,
                                                    elem_id="exorag-remove-yes")
                            cancel_btn = gr.Button("Cancel", scale=0, elem_id="exorag-remove-cancel")
                        remove_out = gr.HTML("", elem_id="exorag-remove-result")
                        doc_list = gr.HTML("", elem_id="exorag-doc-list")
                        reload = gr.Button("Refresh", variant="secondary")

        panel = [year_from, year_to, source_box, pub_box, *tag_boxes]
        filter_inputs = [k, *panel]
        chat_outputs = [chatbot, sources, turns, question, bib, ris, md_file, md_text, table_csv, table_md, retry,
                        asked]
        refreshed = [source_box, pub_box, *tag_boxes, corpus, active, doc_list, to_remove]
        private: dict[str, Any] = {"api_visibility": "private"}
        question.submit(chat, [question, chatbot, turns, *filter_inputs], chat_outputs,
                        **private).then(None, None, None, js=SHOW_NEWEST_JS, **private)
        clear.click(lambda: ([], SOURCES_PLACEHOLDER, [], "", _download(), _download(), _download(), "", _download(),
                             _download(), gr.Button(visible=False), ""), None, chat_outputs, queue=False, **private)
        # The active-filter line follows every change of the panel (typed, or set by Clear / Retry / a refresh). It
        # is queued on its own (not queue=False, whose calls waiting for a busy index held up the questions).
        gr.on([box.change for box in panel], summary, panel, active, trigger_mode="always_last",
              show_progress="hidden", concurrency_id="summary", **private)
        clear_filters.click(h.panel_cleared, None, panel, queue=False, **private)
        retry.click(lambda last: (last, *h.panel_cleared(), gr.Button(visible=False)), [asked],
                    [question, *panel, retry], queue=False, **private).then(
            chat, [question, chatbot, turns, *filter_inputs], chat_outputs, **private).then(
            None, None, None, js=SHOW_NEWEST_JS, **private)
        check.click(draft, [draft_box, *filter_inputs], [draft_out, draft_retry], **private)
        draft_retry.click(lambda: (*h.panel_cleared(), gr.Button(visible=False)), None, [*panel, draft_retry],
                          queue=False, **private).then(draft, [draft_box, *filter_inputs], [draft_out, draft_retry],
                                                       **private)
        add.click(upload, [files], [upload_out], concurrency_limit=1, concurrency_id="ingest",
                  **private).then(refresh, [*panel, doc_query, to_remove], refreshed, **private)
        doc_query.change(listed, [doc_query, to_remove], [doc_list, to_remove], show_progress="hidden",
                         trigger_mode="always_last", **private)
        remove_btn.click(confirm_removal, [to_remove], [confirm_row, confirm_text, remove_out], queue=False,
                         **private)
        cancel_btn.click(lambda: (gr.update(visible=False), ""), None, [confirm_row, remove_out], queue=False,
                         **private)
        to_remove.change(lambda: gr.update(visible=False), None, confirm_row, queue=False, **private)  # ask again
        confirm_btn.click(remove, [to_remove, doc_query], [confirm_row, remove_out, doc_list, to_remove],
                          concurrency_limit=1, concurrency_id="ingest",
                          **private).then(refresh, [*panel, doc_query, to_remove], refreshed, **private)
        reload.click(refresh, [*panel, doc_query, to_remove], refreshed, **private)
        demo.load(refresh, [*panel, doc_query, to_remove], refreshed, **private)
        gr.api(ask_endpoint, api_name="ask")
    demo.queue(default_concurrency_limit=CONCURRENCY)
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, block: bool = True,
           max_upload_mb: float = h.DEFAULT_MAX_UPLOAD_MB) -> str:
    """Start the server bound to `host`:`port` (never a share link); return its local URL.

    `max_upload_mb` is Gradio's own limit on any one upload (the upload handler checks its settings' limit too).
    """
    _, local_url, _ = demo.launch(
        server_name=host, server_port=port, share=False, prevent_thread_lock=not block, theme=theme(), css=CSS,
        head=JUMP_JS, footer_links=["api", "settings"], mcp_server=False, pwa=False, ssr_mode=False, show_error=True,
        state_session_capacity=SESSIONS_KEPT,
        quiet=not block, allowed_paths=[], max_file_size=int(max_upload_mb * 1e6),
        app_kwargs={"middleware": [Middleware(Guard, bound_host=host)]},  # own host names, same origin, CSP
    )
    return local_url


def serve(index: Index, host: str = "127.0.0.1", port: int = 7860,
          max_upload_mb: float = h.DEFAULT_MAX_UPLOAD_MB, llm: LLMConfig | None = None) -> None:
    """Build the page over `index` and serve it until interrupted; with `llm`, the chat writes through that model."""
    demo = build_app(index, h.AppSettings.for_index(index, max_upload_mb, llm))
    launch(demo, host=host, port=port, block=True, max_upload_mb=max_upload_mb)
