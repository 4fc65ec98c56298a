"""Optional generative answers: an OpenAI-compatible chat endpoint writes, the passages verify, the rest is dropped.

Any server that speaks the OpenAI chat-completions protocol works (Ollama, llama.cpp server, vLLM, OpenAI): it is
set by a base URL (e.g. http://127.0.0.1:11434/v1), a model name and an optional key. The retrieved passages are
numbered 1..k (with title and year) in the prompt, and the model is told to answer only from them and to end every
sentence with its [n]. The request asks for a stream (SSE `data:` lines with choices[0].delta.content); a server
that answers plain JSON (choices[0].message.content) is read as such.

The model's answer is then checked sentence by sentence by the judge (exorag.ask.cite): a sentence must cite only passages
that exist, and a sentence of the passages it cites must support it; otherwise it is dropped (or kept and marked
"[unsupported]"). A sentence that a cited passage contradicts (and none supports) is always dropped, and reported
as contradicted, with the contradicting quote. Each kept citation points at the verbatim best-supporting sentence of the cited passage, with
offsets into the document text, exactly like the extractive answer; numbers are reassigned in order of appearance.
When the server cannot be reached, times out, answers an HTTP error or something malformed, stops a stream before
its end (no finish_reason, no [DONE]), or when no sentence survives, the extractive answer (exorag.ask.answer) is
returned with a note saying why. Nothing is sent anywhere unless an LLM URL is given. Deliberately left out:
showing tokens as they stream (the answer is only shown once checked), chat history, tool calls, and retries.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from exorag.ask import answer as extractive
from exorag.build.chunk import split_sentences
from exorag.ask.cite import Evidence, judge_claim
from exorag.errors import LLMError
from exorag.index.index import Index
from exorag.ask.retrieve import normalize_query, search
from exorag.settings import LLMSettings, current
from exorag.types import Answer, Citation, Filters, Hit

Unsupported = Literal["drop", "mark"]
DEFAULT_TIMEOUT_S = LLMSettings.timeout_s  # longest wait for the reply to start, or for its next piece while it streams
MAX_RESPONSE_BYTES = 2_000_000
MAX_RANGE = 20  # "[1-3]" expands; a wider range is taken as nonsense
UNSUPPORTED_MARK = "[unsupported]"
SYSTEM_PROMPT = (
    "You answer questions about the extracellular vesicle and exosome literature. Use only the numbered passages "
    "the user gives you; do not add facts from anywhere else. Write a short answer of at most six sentences in "
    "plain prose, without lists or headings. End every sentence with the number(s) of the passage(s) that support "
    "it in square brackets, for example [2] or [1][3]. If the passages do not answer the question, reply only: "
    "The passages do not answer this question."
)
_NUMBER = r"(?:passages?\s*)?\d+"
_MARKER = re.compile(r"\[\s*(" + _NUMBER + r"(?:\s*(?:[,;]|[-–])\s*" + _NUMBER + r")*)\s*\]", re.IGNORECASE)
_MARKERS_AFTER_STOP = re.compile(r"([.!?])((?:\s*" + _MARKER.pattern + r")+)", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)]|#+)\s+")
_LABEL = re.compile(r"[^.!?]{0,40}:[\s,;.]*")


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to ask: `url` is the full chat-completions endpoint."""

    url: str
    model: str
    key: str = ""
    timeout: float = DEFAULT_TIMEOUT_S
    stream: bool = True
    unsupported: Unsupported = "drop"


@dataclass(frozen=True)
class Rejected:
    """A sentence of the model's answer that failed verification, and why."""

    sentence: str
    reason: str
    contradicted: bool = False  # a cited passage says the opposite: dropped even when unsupported ones are marked


@dataclass(frozen=True)
class Generated:
    """The answer shown (`mode` says whose), a note when the LLM was not used, and the rejected sentences."""

    answer: Answer
    mode: Literal["llm", "extractive"]
    note: str = ""
    rejected: tuple[Rejected, ...] = ()
    unsupported: Unsupported = "drop"

    @property
    def dropped(self) -> tuple[Rejected, ...]:
        if self.unsupported == "drop" or self.mode == "extractive":
            return self.rejected
        return tuple(r for r in self.rejected if r.contradicted)

    @property
    def marked(self) -> tuple[Rejected, ...]:
        return tuple(r for r in self.rejected if not r.contradicted) if self.unsupported == "mark" \
            and self.mode == "llm" else ()

    @property
    def contradicted(self) -> tuple[Rejected, ...]:
        return tuple(r for r in self.rejected if r.contradicted)


def endpoint(base: str) -> str:
    """The chat-completions URL for a base URL such as http://127.0.0.1:11434/v1 (a full endpoint is kept)."""
    base = base.strip().rstrip("/")
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LLMError(f"the LLM URL must start with http:// or https://, got {base!r}")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def config_from(
    url: str | None = None, model: str | None = None, key: str | None = None, timeout: float | None = None,
    stream: bool = True, unsupported: Unsupported = "drop", settings: LLMSettings | None = None,
) -> LLMConfig | None:
    """LLM settings from explicit values, else Settings.llm ($EXORAG_LLM_URL/_MODEL/_KEY, $OPENAI_API_KEY); None
    without a URL."""
    settings = settings or current().llm
    url = url or settings.url
    if not url.strip():
        return None
    model = model or settings.model
    if not model.strip():
        raise LLMError("an LLM URL is set but no model: give --llm-model NAME (or set EXORAG_LLM_MODEL)")
    if (timeout if timeout is not None else settings.timeout_s) <= 0:
        raise LLMError("the LLM timeout must be a positive number of seconds")
    key = key or settings.key
    return LLMConfig(url=endpoint(url), model=model.strip(), key=key.strip(),
                     timeout=settings.timeout_s if timeout is None else float(timeout), stream=stream,
                     unsupported=unsupported)


def build_messages(question: str, hits: list[Hit]) -> list[dict[str, str]]:
    """The system instruction and a user message with the passages numbered 1..k, then the question."""
    blocks = []
    for n, hit in enumerate(hits, start=1):
        doc = hit.document
        blocks.append(f"[{n}] {doc.title or doc.id} ({doc.year or 'n.d.'})\n{' '.join(hit.chunk.text.split())}")
    user = "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _where(url: str) -> str:
    """The URL without credentials or query, fit for messages."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _error_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        payload = json.loads(text)
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            return str(error.get("message") or error)[:200]
        if error:
            return str(error)[:200]
    except ValueError:
        pass
    return " ".join(text.split())[:200]


def _content_of(payload: Any, stream: bool) -> str:
    """The text in one SSE event (delta) or a whole JSON answer (message); LLMError when the shape is wrong."""
    if not isinstance(payload, dict):
        raise LLMError("malformed response: not a JSON object")
    if payload.get("error"):
        raise LLMError(f"the server reported an error: {_error_message(json.dumps(payload).encode())}")
    choices = payload.get("choices")
    if not isinstance(choices, list):
        raise LLMError("malformed response: no choices")
    if not choices:
        return ""  # e.g. a final usage-only event
    part = choices[0].get("delta" if stream else "message") if isinstance(choices[0], dict) else None
    if part is None and isinstance(choices[0], dict):
        part = choices[0].get("message" if stream else "delta")  # a server mixing up the two
    if not isinstance(part, dict):
        raise LLMError("malformed response: no message in choices[0]")
    content = part.get("content")
    if content is not None and not isinstance(content, str):
        raise LLMError("malformed response: content is not text")
    return content or ""


def _read_sse(lines: Iterable[bytes | str], on_text: Callable[[str], None] | None = None) -> str:
    """The streamed reply; LLMError when the stream stops before its end (no finish_reason and no [DONE]): a
    server that dies mid-reply closes the connection, and http.client reads that as a clean end of a chunked body."""
    pieces = []
    finished = False
    for raw in lines:
        line = raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else raw.strip()
        if not line.startswith("data:"):
            continue  # blank lines, ": keep-alive" comments, "event:" lines
        data = line[5:].strip()
        if data == "[DONE]":
            finished = True
            break
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise LLMError(f"malformed response: an event is not JSON ({data[:80]!r})") from exc
        pieces.append(_content_of(payload, stream=True))
        choice = payload["choices"][0] if payload["choices"] else None
        finished = finished or bool(isinstance(choice, dict) and choice.get("finish_reason"))
        if on_text is not None and pieces[-1]:
            on_text("".join(pieces))
    if not finished:
        raise LLMError("the stream ended before the reply was complete (no finish_reason, no [DONE])")
    return "".join(pieces)


def _limited_lines(response: http.client.HTTPResponse) -> Iterator[bytes]:
    total = 0
    while True:
        line = response.readline(65536)
        if not line:
            return
        total += len(line)
        if total > MAX_RESPONSE_BYTES:
            raise LLMError(f"the response is longer than {MAX_RESPONSE_BYTES} bytes")
        yield line


def chat(config: LLMConfig, messages: list[dict[str, str]], on_text: Callable[[str], None] | None = None) -> str:
    """The model's reply to `messages`; LLMError on timeout, connection or HTTP errors, and malformed answers.

    `on_text` gets the reply so far after each streamed piece (unverified: for showing progress only)."""
    body = json.dumps({"model": config.model, "messages": messages, "stream": config.stream, "temperature": 0})
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json",
               "User-Agent": "exorag/0.1"}
    if config.key:
        headers["Authorization"] = f"Bearer {config.key}"
    request = urllib.request.Request(config.url, data=body.encode("utf-8"), headers=headers, method="POST")
    where = _where(config.url)
    try:
        with urllib.request.urlopen(request, timeout=config.timeout) as response:  # noqa: S310 - user-set URL
            if response.headers.get_content_type() == "text/event-stream":
                text = _read_sse(_limited_lines(response), on_text)
            else:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
                if len(raw) > MAX_RESPONSE_BYTES:
                    raise LLMError(f"the response is longer than {MAX_RESPONSE_BYTES} bytes")
                text = _parse_body(raw)
    except urllib.error.HTTPError as exc:
        raise LLMError(f"HTTP {exc.code} from {where}: {_error_message(exc.read()[:4096]) or exc.reason}") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            raise LLMError(f"no reply from {where} within {config.timeout:g} s") from exc
        raise LLMError(f"cannot reach {where}: {exc.reason}") from exc
    except (TimeoutError, socket.timeout) as exc:
        raise LLMError(f"no reply from {where} within {config.timeout:g} s") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise LLMError(f"connection to {where} failed: {type(exc).__name__}: {exc}") from exc
    if not text.strip():
        raise LLMError("the model returned an empty answer")
    return text


def _parse_body(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError as exc:
        if any(line.strip().startswith("data:") for line in text.splitlines()):
            return _read_sse(text.splitlines())  # SSE sent with another content type
        raise LLMError(f"malformed response: not JSON ({' '.join(text.split())[:80]!r})") from exc
    return _content_of(payload, stream=False)


def _numbers(marker: str) -> list[int]:
    out: list[int] = []
    for piece in re.split(r"\s*[,;]\s*", re.sub(r"(?i)passages?\s*", "", marker)):
        bounds = [int(b) for b in re.split(r"\s*[-–]\s*", piece) if b.strip()]
        if len(bounds) == 2 and 0 <= bounds[1] - bounds[0] <= MAX_RANGE:
            out.extend(range(bounds[0], bounds[1] + 1))
        else:
            out.extend(bounds)
    return list(dict.fromkeys(out))


def parse_sentences(text: str) -> list[tuple[str, list[int]]]:
    """The model's sentences without their [n] markers, each with the passage numbers it cites (in order)."""
    out: list[tuple[str, list[int]]] = []
    for line in text.splitlines():
        line = _BULLET.sub("", line.replace("**", "")).strip()
        # "growth. [1] Next" and "growth.[1]" would put the marker on the wrong sentence: move it before the stop.
        line = _MARKERS_AFTER_STOP.sub(lambda m: " " + m.group(2).strip() + m.group(1), line)
        for s, e in split_sentences(line):
            sentence = line[s:e]
            numbers = [n for m in _MARKER.finditer(sentence) for n in _numbers(m.group(1))]
            clean = re.sub(r"\s+([.,;:!?])", r"\1", _MARKER.sub("", sentence))
            clean = " ".join(clean.split())
            if not re.search(r"[A-Za-z]{2}", clean):
                if out and numbers:  # a stray "[2]" on its own: it belongs to the sentence before
                    out[-1] = (out[-1][0], list(dict.fromkeys(out[-1][1] + numbers)))
                continue
            if _LABEL.fullmatch(clean):
                continue  # "Sources: [1], [2]" and the like: a label, not a claim
            out.append((clean, list(dict.fromkeys(numbers))))
    return out


def verify(
    text: str, hits: list[Hit], unsupported: Unsupported = "drop",
) -> tuple[str, tuple[Citation, ...], tuple[Rejected, ...]]:
    """The checked answer text with renumbered [n] markers, its citations, and the sentences that failed."""
    sentences = parse_sentences(text)
    numbers: dict[tuple[str, int, int], int] = {}
    citations: list[Citation] = []
    parts: list[str] = []
    rejected: list[Rejected] = []
    for clean, numbers_cited in sentences:
        kept, reason, contradicted = _check(clean, numbers_cited, hits)
        if not kept:
            rejected.append(Rejected(sentence=clean, reason=reason, contradicted=contradicted))
            if unsupported == "mark" and not contradicted:
                parts.append(f"{clean} {UNSUPPORTED_MARK}")
            continue
        markers = []
        for evidence in kept:
            key = (evidence.hit.document.id, evidence.start, evidence.end)
            if key not in numbers:
                numbers[key] = len(numbers) + 1
                citations.append(evidence.citation(numbers[key]))
            if numbers[key] not in markers:
                markers.append(numbers[key])
        parts.append(clean + " " + "".join(f"[{n}]" for n in markers))
    if not citations:
        return "", (), tuple(rejected)
    return " ".join(parts), tuple(citations), tuple(rejected)


def _check(clean: str, cited: list[int], hits: list[Hit]) -> tuple[list[Evidence], str, bool]:
    """The supporting sentences to cite for one generated sentence (one per cited passage), or ([], why not,
    whether a cited passage contradicts it)."""
    if not cited:
        return [], "cites no passage", False
    missing = [n for n in cited if not 1 <= n <= len(hits)]
    if missing:
        return [], f"cites [{', '.join(map(str, missing))}], not among the {len(hits)} passages", False
    evidence = judge_claim(clean, [hits[n - 1] for n in cited])
    supports: dict[str, Evidence] = {}
    for e in sorted((e for e in evidence if e.stance == "supports"), key=lambda e: -e.strength):
        supports.setdefault(e.hit.document.id + f"#{e.hit.chunk.id}", e)
    if supports:
        return list(supports.values()), "", False
    against = [e for e in evidence if e.stance == "contradicts"]
    if against:
        best = max(against, key=lambda e: e.strength)
        return [], f"contradicted by the passage it cites: \"{best.quote}\"", True
    top = max((e.judgement.supports for e in evidence), default=0.0)
    return [], f"not supported by the passage(s) it cites (best support {top:.2f})", False


def generate(
    index: Index, question: str, config: LLMConfig, k: int = 8, filters: Filters | None = None,
    on_text: Callable[[str], None] | None = None, expand: bool = True,
) -> Generated:
    """A verified LLM answer from the top `k` passages, or the extractive answer with a note saying why not.

    One search: the fallback answers from the passages already found. Nothing here holds the index's lock beyond a
    store call, so other questions are answered while the model writes. `on_text`: see `chat`."""
    question = normalize_query(question)
    hits = search(index, question, k=k, filters=filters, expand=expand)

    def fallback(note: str, rejected: tuple[Rejected, ...] = ()) -> Generated:
        plain = extractive.ask(index, question, k=k, filters=filters, expand=expand, hits=hits)
        return Generated(answer=plain, mode="extractive", note=note, rejected=rejected,
                         unsupported=config.unsupported)

    if not hits:
        return fallback("no passages found, so the LLM was not asked; showing the extractive answer")
    try:
        reply = chat(config, build_messages(question, hits), on_text)
    except LLMError as exc:
        return fallback(f"LLM unavailable ({exc}); showing the extractive answer")
    # The judge reads only the passages already in hand: verification needs no lock on the index.
    text, citations, rejected = verify(reply, hits, config.unsupported)
    if not citations:
        return fallback("LLM answer discarded: none of its sentences is supported by the passages it cites; "
                        "showing the extractive answer", rejected)
    answer = Answer(question=question, text=text, abstained=False, citations=citations, hits=tuple(hits))
    return Generated(answer=answer, mode="llm", rejected=rejected, unsupported=config.unsupported)
