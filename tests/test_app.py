"""Tests for rag.app: the real Gradio server on 127.0.0.1 over the real session index, called with gradio_client.

Checks the `/ask` JSON (citations verbatim against the store, `[n]` markers), abstention on an off-topic question,
the empty-index and empty-question messages, the sources panel's highlighting and escaping, the loopback-only
binding, and that the served page references no external font or script host.
"""

from __future__ import annotations

import html
import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

gradio_client = pytest.importorskip("gradio_client")

from rag import app, store  # noqa: E402
from rag.index import Index, open_index  # noqa: E402
from rag.types import Answer, Chunk, Citation, Document, Hit, Section  # noqa: E402

EV_QUESTION = "Which markers are used to characterise extracellular vesicles and exosomes?"
OFF_TOPIC = "What is the boiling point of tungsten in a vacuum furnace?"
LOCAL_HOSTS = {"127.0.0.1", "localhost", ""}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(index: Index) -> tuple[object, str]:
    demo = app.build_app(index)
    url = app.launch(demo, host="127.0.0.1", port=free_port(), block=False)
    return demo, url


@pytest.fixture(scope="module")
def served(built_index: Path) -> Iterator[tuple[Index, object, str, object]]:
    index = open_index(built_index)
    demo, url = start(index)
    client = gradio_client.Client(url, verbose=False)
    yield index, demo, url, client
    demo.close()  # type: ignore[attr-defined]
    index.close()


def test_ask_endpoint_cites_verbatim(served: tuple[Index, object, str, object]) -> None:
    index, _, _, client = served
    result = client.predict(EV_QUESTION, 8, api_name="/ask")  # type: ignore[attr-defined]
    assert "error" not in result, result
    assert result["abstained"] is False
    citations = result["citations"]
    assert citations
    assert [c["n"] for c in citations] == list(range(1, len(citations) + 1))
    for c in citations:
        doc = store.get_document(index.conn, c["doc_id"])
        assert doc.text[c["char_start"]:c["char_end"]] == c["quote"]
        assert c["quote"] in result["answer"]
    markers = [int(n) for n in re.findall(r"\[(\d+)\]", result["answer"])]
    assert sorted(set(markers)) == [c["n"] for c in citations]


def test_off_topic_question_abstains(served: tuple[Index, object, str, object]) -> None:
    _, _, _, client = served
    result = client.predict(OFF_TOPIC, 8, api_name="/ask")  # type: ignore[attr-defined]
    assert result["abstained"] is True, result["answer"]
    assert result["citations"] == []
    assert result["closest"]


def test_empty_question_is_a_polite_message(served: tuple[Index, object, str, object]) -> None:
    index, _, _, client = served
    result = client.predict("   ", 8, api_name="/ask")  # type: ignore[attr-defined]
    assert result["error"].startswith("Please type a question")
    history, panel, box = app.chat_turn(index, "?!", [], 8)
    assert history[-1]["role"] == "assistant" and history[-1]["content"].startswith("Please type a question")
    assert panel == app.SOURCES_PLACEHOLDER and box == ""


def test_chat_turn_and_sources_panel(served: tuple[Index, object, str, object]) -> None:
    index, _, _, _ = served
    history, panel, _ = app.chat_turn(index, EV_QUESTION, [{"role": "user", "content": "hi"}], 8)
    assert [m["role"] for m in history] == ["user", "user", "assistant"]
    reply = history[-1]["content"]
    assert "**References**" in reply and re.search(r"\[\[1\]\]\(https://", reply)
    answer = app.run_question(index, EV_QUESTION, 8)
    assert isinstance(answer, Answer) and not answer.abstained
    for c in answer.citations:
        assert f"<mark>{html.escape(c.quote, quote=True).replace('$', '&#36;')}</mark>" in panel
        assert f"[{c.n}] " in panel


def test_sources_panel_escapes_and_highlights_within_chunk() -> None:
    text = "Intro <b>bold</b> & more. CD63 <script>alert(1)</script> marks exosomes. Tail sentence here."
    doc = Document(id="x:1", text=text, sections=(Section("Abstract", 0, len(text)),), title="A <i>title</i>",
                   authors=("Doe J",), year=2024, journal="J EV", pmid="123")
    s = text.index("CD63")
    e = text.index(" Tail")
    chunk = Chunk(doc_id=doc.id, ordinal=0, text=text, section="Abstract", page=None, char_start=0,
                  char_end=len(text), id=1)
    cit = Citation(n=1, document=doc, quote=text[s:e], section="Abstract", page=None, char_start=s, char_end=e,
                   score=0.9)
    panel = app.sources_html(Answer(question="q", text=f"{text[s:e]} [1]", abstained=False, citations=(cit,),
                                    hits=(Hit(chunk=chunk, document=doc, score=1.0),)))
    assert "<script>" not in panel and "<b>" not in panel and "<i>" not in panel
    assert "<mark>CD63 &lt;script&gt;alert(1)&lt;/script&gt; marks exosomes.</mark>" in panel
    assert panel.index("Intro &lt;b&gt;") < panel.index("<mark>") < panel.index("Tail sentence")
    assert "https://pubmed.ncbi.nlm.nih.gov/123/" in panel


def test_empty_index_explains_how_to_add_literature(tmp_path: Path) -> None:
    index = open_index(tmp_path / "empty")
    demo, url = start(index)
    try:
        result = gradio_client.Client(url, verbose=False).predict(EV_QUESTION, 8, api_name="/ask")
        assert "exorag ingest" in result["error"] and "exorag demo" in result["error"]
        history, _, _ = app.chat_turn(index, EV_QUESTION, None, 8)
        assert "exorag ingest" in history[-1]["content"]
    finally:
        demo.close()  # type: ignore[attr-defined]
        index.close()


def _other_address() -> str | None:
    """A non-loopback address of this machine, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # UDP: no packet is sent
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_bound_to_loopback_only(served: tuple[Index, object, str, object]) -> None:
    _, demo, url, _ = served
    assert demo.server_name == "127.0.0.1"  # type: ignore[attr-defined]
    assert urlparse(url).hostname == "127.0.0.1"
    assert getattr(demo, "share_url", None) is None
    other = _other_address()
    if other:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            assert s.connect_ex((other, urlparse(url).port)) != 0


def test_page_loads_nothing_from_other_hosts(served: tuple[Index, object, str, object]) -> None:
    _, _, url, _ = served
    page = urllib.request.urlopen(url, timeout=10).read().decode("utf-8")
    theme_css = urllib.request.urlopen(url.rstrip("/") + "/theme.css", timeout=10).read().decode("utf-8")
    for text in (page, theme_css):
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text
    assert not re.search(r"@import\s+url\(\s*['\"]?https?:", theme_css)
    loaded = re.findall(r"<script[^>]*\ssrc=[\"']([^\"']+)", page)
    loaded += re.findall(r"<link[^>]*\shref=[\"']([^\"']+)", page)
    loaded += re.findall(r"<img[^>]*\ssrc=[\"']([^\"']+)", page)
    assert any(src.endswith(".js") for src in loaded)
    for src in loaded:
        assert urlparse(src).hostname in LOCAL_HOSTS | {None}, src
    assert re.search(r'"stylesheets":\s*\[\s*\]', page), "the theme asks for no external stylesheets"
    # The frontend adds Google Fonts links only for its Hugging Face Spaces badge, i.e. when space_id is set.
    assert re.search(r'"space_id":\s*null', page)
    assert re.search(r'"analytics_enabled":\s*false', page)
