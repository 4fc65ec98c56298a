"""Throughput of `exorag serve` under concurrent clients, over loopback, and its memory over many requests.

Usage: python bench/serve_load.py --index DIR [--clients 1,8,16] [--requests 200] [--rss-requests 1000]
Starts `exorag serve` on a free 127.0.0.1 port, then for each client count runs a bounded loop: that many threads
send `--requests` questions in all through the raw HTTP API (/gradio_api/call/ask, then its event stream), and
prints requests/s with p50/p95/max latency. Last, `--rss-requests` more with 8 clients while the server's RSS is read
from /proc every 100 requests: the figure to watch is growth after warm-up, which includes filling Gradio's
state of the last 256 sessions (each raw call is a session of its own), so it prints growth after 200 and after
400 requests. Questions cycle through EV questions. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

QUESTIONS = [
    "What is the role of exosomal PD-L1 in tumour immune evasion?",
    "Which markers are used to characterise extracellular vesicles?",
    "How are exosomes isolated from plasma?",
    "Do tumour-derived exosomes promote metastasis?",
    "How do exosomes deliver drugs to tumours?",
    "Which exosomal microRNAs are biomarkers of colorectal cancer?",
    "Are circulating exosomes useful for liquid biopsy in pancreatic cancer?",
    "Does miR-21 in exosomes promote chemoresistance?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ask(base: str, question: str) -> float:
    started = time.perf_counter()
    body = json.dumps({"data": [question, 8, None, None, None, None, None]}).encode()
    request = urllib.request.Request(f"{base}/gradio_api/call/ask", data=body,
                                     headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(request, timeout=120).read())["event_id"]
    text = urllib.request.urlopen(f"{base}/gradio_api/call/ask/{event}", timeout=300).read().decode()
    if "event: complete" not in text:
        raise RuntimeError(text[:300])
    return time.perf_counter() - started


def run(base: str, clients: int, total: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(total))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            took = ask(base, QUESTIONS[n % len(QUESTIONS)])
            with lock:
                latencies.append(took)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--clients", default="1,8,16")
    parser.add_argument("--requests", type=int, default=200, help="requests per client count")
    parser.add_argument("--rss-requests", type=int, default=1000)
    parser.add_argument("--module", default="exorag.cli", help="the CLI module to serve with (to compare versions)")
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", args.module, "serve", "--index", args.index, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(base, timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not come up within 180 s")
                time.sleep(0.5)
        ask(base, QUESTIONS[0])  # warm: models loaded
        for clients in (int(c) for c in args.clients.split(",")):
            wall, lat = run(base, clients, args.requests)
            lat.sort()
            print(f"clients {clients:>2}: {len(lat) / wall:5.2f} requests/s   p50 {statistics.median(lat) * 1000:6.0f} ms"
                  f"   p95 {lat[int(0.95 * (len(lat) - 1))] * 1000:6.0f} ms   max {lat[-1] * 1000:6.0f} ms"
                  f"   ({len(lat)} requests in {wall:.1f} s)", flush=True)
        if args.rss_requests:
            readings = [rss_mb(server.pid)]
            for _ in range(max(1, args.rss_requests // 100)):
                run(base, 8, 100)
                readings.append(rss_mb(server.pid))
            print("server RSS (MB) every 100 requests: " + ", ".join(f"{r:.0f}" for r in readings))
            for after in (200, 400):  # the server keeps the state of its last 256 sessions (one per raw call)
                warm = readings[min(after // 100, len(readings) - 1)]
                print(f"growth after the first {after} requests: {readings[-1] - warm:+.0f} MB over "
                      f"{100 * (len(readings) - 1 - min(after // 100, len(readings) - 1))} requests; "
                      f"peak after them {max(readings[min(after // 100, len(readings) - 1):]) - warm:+.0f} MB")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
