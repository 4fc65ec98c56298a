"""Generative mode against a fake OpenAI-compatible server on 127.0.0.1, with the real model and index.

The fake server reads the numbered passages in the prompt it receives and answers with their sentences, cited
correctly, plus sentences that must not survive (an invention citing [1], a real sentence citing [99], an
uncited one). It can stream (SSE), answer plain JSON, stall past the timeout, fail with HTTP 500, or send
malformed JSON; every failure must fall back to the extractive answer with a note.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from exorag.settings import LLMSettings, Settings  # noqa: E402
from exorag.index import store
from exorag.build.chunk import split_sentences
from exorag.cli import main
from exorag.errors import LLMError
from exorag.ask.generate import config_from, parse_sentences, verify
from exorag.index.index import open_index
from exorag.ask.retrieve import search

from .fakes import INVENTED, QUESTION, UNCITED, FakeLLM, first_long_sentence, good_answer, passages_in  # noqa: F401

@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    yield fake
    fake.server.shutdown()


@pytest.fixture()
def llm(server: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> FakeLLM:
    for name in ("EXORAG_LLM_URL", "EXORAG_LLM_MODEL", "EXORAG_LLM_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    server.behaviour, server.reply = "stream", good_answer
    server.requests.clear()
    return server


def ask_json(capsys: pytest.CaptureFixture[str], built_index: Path, *extra: str) -> dict[str, Any]:
    assert main(["ask", QUESTION, "--index", str(built_index), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def assert_verbatim(built_index: Path, payload: dict[str, Any]) -> None:
    index = open_index(built_index)
    try:
        for n, citation in enumerate(payload["citations"], start=1):
            assert citation["n"] == n
            doc = index.get_document(citation["doc_id"])
            assert doc.text[citation["char_start"]:citation["char_end"]] == citation["quote"]
    finally:
        index.close()
    markers = {int(m) for m in re.findall(r"\[(\d+)\]", payload["answer"])}
    assert markers == {c["n"] for c in payload["citations"]}


def test_streamed_answer_is_verified_and_cited_verbatim(llm: FakeLLM, built_index: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    payload = ask_json(capsys, built_index, "--llm-url", llm.url, "--llm-model", "fake-7b", "--llm-key", "sekrit")
    assert payload["mode"] == "llm" and payload["note"] == "" and payload["abstained"] is False
    request = llm.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sekrit"
    assert request["body"]["model"] == "fake-7b" and request["body"]["stream"] is True
    assert request["body"]["messages"][0]["role"] == "system"
    passages = passages_in(request["body"]["messages"][-1]["content"])
    assert len(passages) == 8

    assert_verbatim(built_index, payload)
    assert len(payload["citations"]) == 2
    first, second = first_long_sentence(passages[1]), first_long_sentence(passages[2])
    assert payload["answer"] == f"{first}. [1] {second}. [2]"
    for citation, sentence in zip(payload["citations"], (first, second)):
        assert citation["quote"].rstrip(".") == sentence
    assert len(payload["dropped"]) == 3 and payload["marked"] == []
    assert any(INVENTED in s for s in payload["dropped"])
    assert any(first_long_sentence(passages[3]) in s for s in payload["dropped"])
    assert UNCITED in payload["dropped"]
    assert set(payload) >= {"question", "answer", "abstained", "citations", "closest"}


def test_mark_mode_keeps_unsupported_sentences_marked(llm: FakeLLM, built_index: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    payload = ask_json(capsys, built_index, "--llm-url", llm.url, "--llm-model", "m", "--llm-unsupported", "mark")
    assert payload["mode"] == "llm" and payload["dropped"] == [] and len(payload["marked"]) == 3
    assert payload["answer"].count("[unsupported]") == 3
    assert f"{INVENTED}. [unsupported]" in payload["answer"]
    assert_verbatim(built_index, payload)


def test_text_output_lists_references_and_dropped(llm: FakeLLM, built_index: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", QUESTION, "--index", str(built_index), "--llm-url", llm.url, "--llm-model", "m"]) == 0
    out = capsys.readouterr().out
    assert "\nReferences\n[1" in out and "Dropped (not supported by the passages they cite):" in out
    assert "not among the 8 passages" in out and "cites no passage" in out


@pytest.mark.parametrize("no_stream", [False, True])
def test_plain_json_reply_is_read(llm: FakeLLM, built_index: Path, capsys: pytest.CaptureFixture[str],
                                  no_stream: bool) -> None:
    llm.behaviour = "json"  # the server answers JSON even when a stream was asked for
    payload = ask_json(capsys, built_index, "--llm-url", llm.url + "/", "--llm-model", "m",
                       *(["--llm-no-stream"] if no_stream else []))
    assert llm.requests[-1]["body"]["stream"] is (not no_stream)
    assert payload["mode"] == "llm" and len(payload["citations"]) == 2 and len(payload["dropped"]) == 3
    assert_verbatim(built_index, payload)


def test_settings_from_environment(llm: FakeLLM, built_index: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXORAG_LLM_URL", llm.url)
    monkeypatch.setenv("EXORAG_LLM_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai-env")
    payload = ask_json(capsys, built_index)
    assert payload["mode"] == "llm"
    assert llm.requests[-1]["body"]["model"] == "env-model"
    assert llm.requests[-1]["headers"]["Authorization"] == "Bearer from-openai-env"


@pytest.mark.parametrize(("behaviour", "reason"), [
    ("slow", "within 0.5 s"), ("error", "HTTP 500"), ("malformed", "malformed response"),
    ("malformed-stream", "malformed response"),
])
def test_failures_fall_back_to_the_extractive_answer(llm: FakeLLM, built_index: Path,
                                                     capsys: pytest.CaptureFixture[str], behaviour: str,
                                                     reason: str) -> None:
    llm.behaviour = behaviour
    started = time.monotonic()
    payload = ask_json(capsys, built_index, "--llm-url", llm.url, "--llm-model", "m", "--llm-timeout", "0.5")
    assert time.monotonic() - started < 10
    assert payload["mode"] == "extractive" and payload["note"].startswith("LLM unavailable (")
    assert reason in payload["note"] and payload["note"].endswith("showing the extractive answer")
    if behaviour == "error":
        assert "model crashed" in payload["note"]
    assert len(llm.requests) == 1
    assert payload["abstained"] is False and payload["citations"]
    assert_verbatim(built_index, payload)
    if behaviour == "error":  # the fallback is exactly the extractive answer
        assert main(["ask", QUESTION, "--index", str(built_index), "--json"]) == 0
        assert payload["answer"] == json.loads(capsys.readouterr().out)["answer"]


def test_unreachable_server_falls_back(llm: FakeLLM, built_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    payload = ask_json(capsys, built_index, "--llm-url", f"http://127.0.0.1:{port}/v1", "--llm-model", "m")
    assert payload["mode"] == "extractive" and "cannot reach" in payload["note"]


def test_nothing_verified_falls_back_with_the_dropped_sentences(llm: FakeLLM, built_index: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    llm.reply = lambda prompt: f"{INVENTED} [1]. {UNCITED}"
    assert main(["ask", QUESTION, "--index", str(built_index), "--llm-url", llm.url, "--llm-model", "m"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Note: LLM answer discarded: none of its sentences is supported")
    assert "\nReferences\n" in out and INVENTED in out.split("Dropped")[1]


def test_no_request_without_an_llm_url(llm: FakeLLM, built_index: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXORAG_LLM_MODEL", "m")
    monkeypatch.setenv("EXORAG_LLM_KEY", "k")

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a request was made without an LLM URL")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    payload = ask_json(capsys, built_index)
    assert "mode" not in payload and payload["citations"]
    assert llm.requests == []


def test_url_without_model_is_an_error(llm: FakeLLM, built_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", QUESTION, "--index", str(built_index), "--llm-url", llm.url]) == 1
    assert "--llm-model" in capsys.readouterr().err
    assert main(["ask", QUESTION, "--index", str(built_index), "--llm-url", "ftp://x", "--llm-model", "m"]) == 1
    assert "http://" in capsys.readouterr().err
    assert llm.requests == []


def test_config_from_environment_mapping() -> None:
    assert config_from(settings=LLMSettings()) is None
    config = config_from(settings=Settings.from_env({"EXORAG_LLM_URL": "http://h:1/v1/", "EXORAG_LLM_MODEL": "m", "OPENAI_API_KEY": "o"}).llm)
    assert config is not None and config.url == "http://h:1/v1/chat/completions" and config.key == "o"
    config = config_from(url="http://h/v1/chat/completions", model="m", key="x", timeout=3,
                         settings=Settings.from_env({"EXORAG_LLM_KEY": "e"}).llm)
    assert config is not None and config.url == "http://h/v1/chat/completions" and config.key == "x"
    assert config_from(url="http://h", model="m", settings=Settings.from_env({"EXORAG_LLM_KEY": "e"}).llm).key == "e"
    with pytest.raises(LLMError):
        config_from(url="http://h", model="m", timeout=0, settings=LLMSettings())


def test_parse_sentences_reads_marker_styles() -> None:
    text = ("- Exosomes carry PD-L1 [1]. They promote metastasis.[2] They prime niches. [3]\n"
            "**They** also fuse with cells [1, 3-4].\n[5]\nSources: [1], [2]")
    assert parse_sentences(text) == [
        ("Exosomes carry PD-L1.", [1]), ("They promote metastasis.", [2]), ("They prime niches.", [3]),
        ("They also fuse with cells.", [1, 3, 4, 5]),
    ]


def test_paraphrase_is_supported_and_wrong_passage_is_not(index) -> None:  # type: ignore[no-untyped-def]
    hits = search(index, QUESTION, k=12)  # in the metastasis-rich fixture corpus the first passage on another topic is 11th
    n = next(i for i, h in enumerate(hits, 1) if "prepare the pre-metastatic niche" in h.chunk.text)
    other = next(i for i, h in enumerate(hits, 1) if "niche" not in h.chunk.text and "metasta" not in h.chunk.text)
    text = (f"Tumour exosomes taken up by organ-specific cells prepare the pre-metastatic niche [{n}]. "
            f"Tumour exosomes taken up by organ-specific cells prepare the pre-metastatic niche again [{other}].")
    answer, citations, rejected = verify(text, hits)
    assert answer == "Tumour exosomes taken up by organ-specific cells prepare the pre-metastatic niche. [1]"
    assert citations[0].quote == "We show that tumour-derived exosomes uptaken by organ-specific cells prepare the " \
                                 "pre-metastatic niche."
    assert citations[0].document.text[citations[0].char_start:citations[0].char_end] == citations[0].quote
    assert len(rejected) == 1 and "not supported" in rejected[0].reason
