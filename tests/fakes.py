"""Test doubles at the true edges, shared by the test modules: a free loopback port and a fake OpenAI-compatible
chat-completions server (FakeLLM) for the cases a real model server cannot produce on demand (HTTP 500, malformed
JSON, a stall, a trickle). Everything else in the tests is real: SQLite, FAISS, the models, llama.cpp's server.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from exorag.build.chunk import split_sentences


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


QUESTION = "How do tumour-derived exosomes help cancer metastasis?"
INVENTED = "Tumour-derived exosomes are cleared by the kidneys within ten minutes of their release"
UNCITED = "Exosome research is a rapidly growing field with many open questions."


def first_long_sentence(text: str) -> str:
    return next(text[s:e] for s, e in split_sentences(text) if e - s >= 40).rstrip(".")


def passages_in(prompt: str) -> dict[int, str]:
    return {int(n): text for n, text in re.findall(r"^\[(\d+)\] [^\n]*\n([^\n]+)", prompt, re.MULTILINE)}


def good_answer(prompt: str) -> str:
    """Two correctly cited sentences (markers written two ways), two invalid ones and an uncited one."""
    passages = passages_in(prompt)
    return (f"{first_long_sentence(passages[1])} [1]. {first_long_sentence(passages[2])}.[2] "
            f"{INVENTED} [1]. {first_long_sentence(passages[3])} [99].\n\n{UNCITED}")


class FakeLLM:
    """A loopback chat-completions server; `behaviour` and `reply` decide what the next request gets."""

    def __init__(self) -> None:
        self.behaviour = "stream"
        self.reply = good_answer
        self.requests: list[dict[str, Any]] = []
        self.holding = threading.Event()  # behaviour "held": set while a request waits for `release`
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                try:
                    fake.respond(self, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def respond(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        text = self.reply(body["messages"][-1]["content"])
        if self.behaviour == "slow":
            time.sleep(2.0)
        if self.behaviour == "held":  # answers only once the test says so (or after 60 s)
            self.holding.set()
            self.release.wait(60)
        if self.behaviour == "error":
            self.send(handler, 500, "application/json", b'{"error": {"message": "model crashed"}}')
        elif self.behaviour == "malformed":
            self.send(handler, 200, "application/json", b'{"choices": [{"message": {"content": "cut off')
        elif self.behaviour == "malformed-stream":
            self.send(handler, 200, "text/event-stream", b'data: {"choices": [{"delta": {"content": "Exo\n\n')
        elif self.behaviour == "json" or not body.get("stream"):
            payload = {"object": "chat.completion", "choices": [{"index": 0, "message": {
                "role": "assistant", "content": text}, "finish_reason": "stop"}]}
            self.send(handler, 200, "application/json", json.dumps(payload).encode())
        else:
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.end_headers()
            events = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
            events += [{"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in re.split(r"(?<= )", text)]
            events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            for event in events:
                handler.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                handler.wfile.flush()
                if self.behaviour == "trickle":  # a model that writes slowly enough to watch (the chat tests)
                    time.sleep(0.05)
            handler.wfile.write(b"data: [DONE]\n\n")

    @staticmethod
    def send(handler: BaseHTTPRequestHandler, status: int, kind: str, data: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


