"""The chat's generative mode (`serve --llm-url`): against the fake OpenAI-compatible server of test_generate, on
127.0.0.1, with the real model and index. The reply streams as an unchecked draft, the checked answer replaces
it, `/ask` returns `ask --json`'s generative shape, and the model's request does not hold the index lock."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")

from exorag.settings import LLMSettings, Settings  # noqa: E402
from exorag.web import app
from exorag.web import handlers  # noqa: E402
from exorag.web.page import answer_sources, cite_anchor, drafting_markdown, generated_markdown  # noqa: E402
from exorag.ask.generate import config_from  # noqa: E402
from exorag.index.index import Index, open_index  # noqa: E402
from exorag.types import Filters  # noqa: E402

from .test_app import free_port  # noqa: E402
from .fakes import QUESTION, FakeLLM, good_answer  # noqa: E402
from .test_generate import server as fake  # noqa: E402,F401  (the module-scoped fake model, shared fixture)


@pytest.fixture()
def llm(fake: FakeLLM):  # type: ignore[no-untyped-def]
    fake.behaviour, fake.reply = "stream", good_answer
    fake.requests.clear()
    return config_from(fake.url, "fake-model", timeout=5.0, settings=LLMSettings())


def test_streamed_draft_then_checked_answer(index: Index, llm) -> None:  # type: ignore[no-untyped-def]
    drafts: list[str] = []
    result = handlers.run_generated(index, QUESTION, llm, 8, Filters(), on_text=drafts.append)
    assert not isinstance(result, str) and result.mode == "llm"
    assert len(drafts) > 3 and all(b.startswith(a) for a, b in zip(drafts, drafts[1:]))  # it grew piece by piece
    assert "ten minutes" in drafts[-1]  # the draft is the raw reply, invention included ...
    reply = generated_markdown(result, 1, Filters(), "fake-model")
    assert "ten minutes" not in reply  # ... the checked answer is not
    assert "sentence(s) dropped" in reply
    anchors = set(re.findall(r"\(#(exorag-cite-1-\d+)\)", reply))
    cards = set(re.findall(r"id='(exorag-cite-1-\d+)'|id=\"(exorag-cite-1-\d+)\"", answer_sources(result.answer, 1)))
    cards = {a or b for a, b in cards}
    assert anchors and anchors <= cards, (anchors, cards)  # every [n] opens a source card of this answer
    for c in result.answer.citations:
        assert c.document.text[c.char_start:c.char_end] == c.quote
        assert f"(#{cite_anchor(1, c.n)})" in reply
    assert "not yet checked" in drafting_markdown(drafts[-1], "fake-model")


def test_falls_back_with_a_note_when_the_model_fails(index: Index, llm, fake: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    fake.behaviour = "error"
    result = handlers.run_generated(index, QUESTION, llm, 8, Filters())
    assert not isinstance(result, str) and result.mode == "extractive"
    reply = generated_markdown(result, 1, Filters(), "fake-model")
    assert reply.startswith("*LLM unavailable (HTTP 500") and "**References**" in reply


def test_the_lock_is_free_while_the_model_writes(index: Index, llm, fake: FakeLLM) -> None:  # type: ignore[no-untyped-def]
    fake.behaviour = "held"  # the fake holds its reply until released: no timing involved
    fake.holding.clear()
    fake.release.clear()
    worker = threading.Thread(target=handlers.run_generated, args=(index, QUESTION, llm, 8, Filters()))
    worker.start()
    try:
        assert fake.holding.wait(60), "the generative request never reached the model"
        other = handlers.run_question(index, "Which markers are used to characterise extracellular vesicles?", 8)
        assert not fake.release.is_set()  # answered while the model was still writing: the lock was free
        assert not isinstance(other, str) and other.citations
    finally:
        fake.release.set()
        worker.join(60)
    assert not worker.is_alive()


def test_ask_endpoint_in_generative_mode(built_index: Path, llm) -> None:  # type: ignore[no-untyped-def]
    index = open_index(built_index)
    demo = app.build_app(index, handlers.AppSettings.for_index(index, llm=llm))
    url = app.launch(demo, host="127.0.0.1", port=free_port(), block=False)
    try:
        client = gradio_client.Client(url, verbose=False)
        result = client.predict(QUESTION, 8, api_name="/ask")  # type: ignore[attr-defined]
        assert result["mode"] == "llm" and result["citations"] and result["dropped"]
        for c in result["citations"]:
            doc = index._conn.execute("SELECT text FROM documents WHERE id = ?", (c["doc_id"],)).fetchone()[0]
            assert doc[c["char_start"]:c["char_end"]] == c["quote"]
    finally:
        demo.close()  # type: ignore[attr-defined]
        index.close()


def _chat_fn(demo):  # type: ignore[no-untyped-def]
    """The page's chat event handler (a generator), as Gradio calls it."""
    return next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "chat")


def test_generative_chat_messages_never_crash(index: Index, llm, fake: FakeLLM, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    chat = _chat_fn(app.build_app(index, handlers.AppSettings.for_index(index, llm=llm)))
    choices = [[] for _ in handlers.CHOICE_FILTERS]
    for question in ("", "   "):
        *_, last = chat(question, [], [], 8, "", "", *choices)
        assert last[0][-1]["content"] == handlers.EMPTY_QUESTION
    empty = open_index(tmp_path / "empty")
    try:
        chat_empty = _chat_fn(app.build_app(empty, handlers.AppSettings.for_index(empty, llm=llm)))
        *_, last = chat_empty(QUESTION, [], [], 8, "", "", *choices)
        assert "exorag ingest" in last[0][-1]["content"]
    finally:
        empty.close()

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("worker fell over")

    monkeypatch.setattr(handlers, "generate", broken)
    *_, last = chat(QUESTION, [], [], 8, "", "", *choices)
    assert last[0][-1]["content"] == "Sorry, that question could not be answered: RuntimeError: worker fell over"
    *_, last = chat(QUESTION, [], [], float("nan"), "", "", *choices)  # a NaN k is the default, not a traceback
    assert "RuntimeError" in last[0][-1]["content"]


def test_draft_text_cannot_become_links_images_or_headings() -> None:
    draft = drafting_markdown("See ![x](http://203.0.113.9/?q=secret) and [here](http://203.0.113.9)\n# Big\n- item",
                              "fake-model")
    body = draft.split("\n\n", 1)[1]
    assert "\n" not in body
    assert "\\!\\[x\\]" in body or "\\[x\\]" in body  # the brackets are escaped: no image, no link
    assert "](http" not in body.replace("\\]", "")  # no unescaped "](" left
