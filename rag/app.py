"""The browser chat (`exorag serve`): a Gradio page over the same engine as `exorag ask`, plus a JSON API.

`build_app(index)` makes the page: a chat whose replies are `rag.answer.ask` rendered as Markdown (each `[n]`
links to the cited paper, then the numbered references), a sources panel showing, for the last answer, every
citation's reference, location and links with the quoted sentence highlighted inside its passage (or, when the
answer abstains, the closest passages, not cited), and a slider for k. The named endpoint `/ask` takes
(question, k) and returns `render.answer_dict` (or `{"error": ...}`), e.g.
`gradio_client.Client(url).predict("Which markers ...?", 8, api_name="/ask")`. An empty index, an empty question
and any ExoragError become short messages, never tracebacks. Questions run one at a time under `index.lock`
(one shared SQLite connection and one tokenizer). `serve` binds to the given host (default 127.0.0.1), never
opens a share link, sends no analytics and uses system fonts only, so the page loads nothing from other hosts.
Deliberately left out: authentication, multi-turn context (each question is answered on its own), streaming,
and editing the index from the browser (ingest stays on the command line).
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no telemetry, no version check

import html
from pathlib import Path
from typing import Any

import gradio as gr

from . import store
from .answer import ask
from .errors import EmptyQuery, ExoragError
from .index import Index
from .render import answer_dict, answer_markdown, authors_short, where
from .types import Answer, Citation, Hit

DEFAULT_K = 8
MAX_K = 30
CONCURRENCY = 4  # requests handled at once; the engine itself runs one question at a time under index.lock
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial",
                "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]
EXAMPLE = "Which markers are used to characterise exosomes?"

EMPTY_QUESTION = f"Please type a question about exosomes or extracellular vesicles, for example: *{EXAMPLE}*"
SOURCES_PLACEHOLDER = "<p><em>The sources of the last answer appear here.</em></p>"


def empty_index_message(index: Index) -> str:
    return (
        f"The index in `{index.folder}` has no literature yet. Add some from a terminal:\n\n"
        "- `exorag ingest PATH...` with PDFs, JSONL of abstracts (one record per line), .txt/.md files or folders\n"
        "- `exorag demo` to build the demo index from the bundled exosome corpus\n\n"
        "using the same `--index` folder, then ask again (restart `exorag serve` if answers look stale)."
    )


def run_question(index: Index, question: str, k: float | int | None = DEFAULT_K) -> Answer | str:
    """The engine's Answer, or a short message for the user (empty question or index, any ExoragError)."""
    if not (question or "").strip():
        return EMPTY_QUESTION
    k = max(1, min(MAX_K, int(k or DEFAULT_K)))
    try:
        with index.lock:
            if store.counts(index.conn)["chunks"] == 0:
                return empty_index_message(index)
            return ask(index, question, k=k)
    except EmptyQuery:
        return EMPTY_QUESTION
    except ExoragError as exc:
        return f"Sorry, that question could not be answered: {exc}"


def _esc(text: str) -> str:
    return html.escape(text, quote=True).replace("$", "&#36;")


def _links(hit_or_citation: Hit | Citation) -> str:
    d = hit_or_citation.document
    links = []
    if d.pmid:
        links.append((f"PMID {d.pmid}", f"https://pubmed.ncbi.nlm.nih.gov/{d.pmid}/"))
    if d.doi:
        links.append((f"doi:{d.doi}", f"https://doi.org/{d.doi}"))
    if d.pmcid:
        links.append((d.pmcid, f"https://www.ncbi.nlm.nih.gov/pmc/articles/{d.pmcid}/"))
    out = [f'<a href="{_esc(url)}" target="_blank" rel="noopener noreferrer">{_esc(label)}</a>' for label, url in links]
    if not out and d.origin:
        out.append(f"<code>{_esc(Path(d.origin).name)}</code>")
    return " · ".join(out)


def _byline(hit_or_citation: Hit | Citation, section: str, page: int | None) -> str:
    d = hit_or_citation.document
    parts = [authors_short(d.authors), str(d.year or ""), d.journal, where(section, page)]
    return " · ".join(_esc(p) for p in parts if p)


def highlighted_passage(citation: Citation, hits: tuple[Hit, ...]) -> str:
    """HTML of the chunk that holds the quote, with the quote in <mark>; the quote alone if no chunk holds it."""
    for hit in hits:
        c = hit.chunk
        if hit.document.id == citation.document.id and c.char_start <= citation.char_start \
                and citation.char_end <= c.char_end:
            s, e = citation.char_start - c.char_start, citation.char_end - c.char_start
            return f"{_esc(c.text[:s])}<mark>{_esc(c.text[s:e])}</mark>{_esc(c.text[e:])}"
    return f"<mark>{_esc(citation.quote)}</mark>"


def sources_html(answer: Answer | None) -> str:
    """The sources panel for one answer: its citations, or the closest passages when it abstains."""
    if answer is None:
        return SOURCES_PLACEHOLDER
    blocks = []
    if answer.abstained:
        blocks.append("<p><strong>No answer in the indexed literature.</strong> "
                      "Closest passages (not cited as answers):</p>")
        for hit in answer.hits:
            title = _esc(hit.document.title or hit.document.id)
            blocks.append(f"<div class='exorag-source'><p><strong>{title}</strong><br>"
                          f"<small>{_byline(hit, hit.chunk.section, hit.chunk.page)}</small><br>{_links(hit)}</p>"
                          f"<blockquote>{_esc(hit.chunk.text)}</blockquote></div>")
        return "\n".join(blocks) if answer.hits else blocks[0]
    for c in answer.citations:
        title = _esc(c.document.title or c.document.id)
        blocks.append(f"<div class='exorag-source' id='source-{c.n}'><p><strong>[{c.n}] {title}</strong><br>"
                      f"<small>{_byline(c, c.section, c.page)}</small><br>{_links(c)}</p>"
                      f"<blockquote>{highlighted_passage(c, answer.hits)}</blockquote></div>")
    return "\n".join(blocks)


def api_answer(index: Index, question: str, k: float | int | None = DEFAULT_K) -> dict[str, Any]:
    """The `/ask` endpoint: `render.answer_dict`, or {"question", "error"} for problems."""
    result = run_question(index, question, k)
    if isinstance(result, str):
        return {"question": question, "error": result}
    return answer_dict(result)


def chat_turn(
    index: Index, question: str, history: list[dict[str, Any]] | None, k: float | int | None
) -> tuple[list[dict[str, Any]], str, str]:
    """One chat exchange: (new history, sources panel HTML, cleared textbox)."""
    result = run_question(index, question, k)
    reply = result if isinstance(result, str) else answer_markdown(result)
    panel = SOURCES_PLACEHOLDER if isinstance(result, str) else sources_html(result)
    history = list(history or []) + [{"role": "user", "content": question or ""},
                                     {"role": "assistant", "content": reply}]
    return history, panel, ""


def theme() -> gr.themes.Base:
    """The default theme with system fonts only, so the page requests no web fonts."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


CSS = """
.exorag-source blockquote { margin: 0.3em 0 1em 0; padding-left: 0.8em; border-left: 3px solid #ccc; }
.exorag-source mark { background: #fff3a3; color: inherit; padding: 0 1px; }
"""


def build_app(index: Index) -> gr.Blocks:
    """The chat page and the `/ask` API over `index`."""

    def ask_endpoint(question: str, k: int = DEFAULT_K) -> dict[str, Any]:
        """Answer a question about exosomes / EVs from the index: quoted sentences with numbered citations."""
        return api_answer(index, question, k)

    def chat_endpoint(
        question: str, history: list[dict[str, Any]] | None, k: float
    ) -> tuple[list[dict[str, Any]], str, str]:
        return chat_turn(index, question, history, k)

    with gr.Blocks(title="exorag", analytics_enabled=False) as demo:
        gr.Markdown("## exorag\nCited answers quoted from the indexed exosome / extracellular vesicle literature, "
                    "offline. Every sentence of an answer is a verbatim quote; `[n]` links to the paper.")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Chat", height=520, latex_delimiters=[], buttons=["copy"],
                                     placeholder=f"Ask, for example: *{EXAMPLE}*")
                question = gr.Textbox(label="Question", placeholder=EXAMPLE, lines=1, max_lines=4, submit_btn=True)
                with gr.Row():
                    k = gr.Slider(1, MAX_K, value=DEFAULT_K, step=1, label="Passages to draw from (k)")
                    clear = gr.Button("Clear", variant="secondary")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(SOURCES_PLACEHOLDER, max_height=700)
        question.submit(chat_endpoint, [question, chatbot, k], [chatbot, sources, question], api_visibility="private")
        clear.click(lambda: ([], SOURCES_PLACEHOLDER, ""), None, [chatbot, sources, question],
                    api_visibility="private", queue=False)
        gr.api(ask_endpoint, api_name="ask")
    demo.queue(default_concurrency_limit=CONCURRENCY)
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> str:
    """Start the server bound to `host`:`port` (never a share link); return its local URL."""
    _, local_url, _ = demo.launch(
        server_name=host, server_port=port, share=False, prevent_thread_lock=not block, theme=theme(), css=CSS,
        footer_links=["api", "settings"], mcp_server=False, pwa=False, ssr_mode=False, quiet=not block,
    )
    return local_url


def serve(index: Index, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Build the page over `index` and serve it until interrupted."""
    launch(build_app(index), host=host, port=port, block=True)
