"""A small, polite HTTP GET client for the literature services, on urllib alone.

What it does: builds URLs from a base URL (taken from the environment so tests can point at a loopback server),
sets a request timeout and a User-Agent, keeps a minimum interval between requests to the same service (NCBI asks
for at most 3 requests per second, 10 with an API key), retries 429 and 5xx answers and dropped connections with
exponential backoff, honouring Retry-After, and turns every failure into a FetchError that names the service.
A service that cannot be reached at all (offline, connection refused, DNS failure) raises ServiceUnreachable at
once, without retries, pointing to `exorag ingest` for local files.

Deliberately left out: POST, cookies, proxies beyond what urllib reads from the environment, caching (files.py),
and parsing (the callers).
"""

from __future__ import annotations

import email.utils
import http.client
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from exorag.errors import FetchError, ServiceUnreachable
from exorag.settings import current

USER_AGENT = "exorag/0.1 (offline RAG over the exosome literature; https://github.com/exorag)"
TIMEOUT_S = 30.0
RETRIES = 4  # attempts after the first, for 429 / 5xx / dropped connections
BACKOFF_S = 1.0  # first retry delay; doubles each time
MAX_RETRY_AFTER_S = 120.0
SECRET_PARAMS = frozenset({"api_key", "email"})


class HttpStatus(FetchError):
    """A final (not retried) HTTP error answer such as 400 or 404; `status` is the code."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class Limiter:
    """At most one request per `interval` seconds; `wait()` sleeps until the next one may go."""

    interval: float
    _next: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                time.sleep(self._next - now)
                now = time.monotonic()
            self._next = now + self.interval


_LIMITERS: dict[str, Limiter] = {}


def limiter_for(service: str, interval: float) -> Limiter:
    """One limiter per service for the whole process; a stricter interval asked later tightens it."""
    limiter = _LIMITERS.setdefault(service, Limiter(interval))
    limiter.interval = interval
    return limiter


def public_url(url: str) -> str:
    """The URL with secrets (api_key, email) masked, fit for messages."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, "***" if k in SECRET_PARAMS else v) for k, v in urllib.parse.parse_qsl(parts.query)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _unreachable(reason: object) -> bool:
    """Whether a URLError reason means the host cannot be reached at all (not a transient hiccup)."""
    return isinstance(reason, (ConnectionRefusedError, socket.gaierror)) or (
        isinstance(reason, OSError) and reason.errno in (101, 113)  # network / host unreachable
    )


@dataclass
class Client:
    """GET requests to one service: `client.get("esearch.fcgi", {"db": "pubmed", ...}) -> bytes`."""

    service: str  # for messages: "NCBI E-utilities", "Europe PMC"
    base_url: str
    min_interval: float
    timeout: float = TIMEOUT_S
    retries: int = RETRIES
    backoff: float = BACKOFF_S
    sleep: Callable[[float], None] = time.sleep
    requests: int = 0  # requests actually sent (tests and progress messages)

    def url(self, path: str, params: Mapping[str, object] | None = None) -> str:
        url = self.base_url.rstrip("/") + "/" + path.lstrip("/")
        if params:
            clean = {k: str(v) for k, v in params.items() if v is not None and v != ""}
            url += "?" + urllib.parse.urlencode(clean)
        return url

    def get(self, path: str, params: Mapping[str, object] | None = None) -> bytes:
        """The body of a 200 answer; FetchError after retries, ServiceUnreachable when there is no connection."""
        url = self.url(path, params)
        limiter = limiter_for(self.service, self.min_interval)
        attempt = 0
        while True:
            limiter.wait()
            self.requests += 1
            delay: float | None = None
            try:
                request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.read()
            except urllib.error.HTTPError as exc:
                body = _snippet(exc)
                if exc.code != 429 and exc.code < 500:
                    message = f"{self.service} answered HTTP {exc.code} for {public_url(url)}{body}"
                    raise HttpStatus(exc.code, message) from None
                problem = f"HTTP {exc.code}{body}"
                delay = retry_after(exc.headers.get("Retry-After") if exc.headers else None)
                if delay is not None and delay > MAX_RETRY_AFTER_S:
                    raise FetchError(
                        f"{self.service} asked to wait {delay:.0f} s before retrying {public_url(url)}; "
                        "try again later"
                    ) from None
            except urllib.error.URLError as exc:
                if _unreachable(exc.reason):
                    raise ServiceUnreachable(
                        f"cannot reach {self.service} at {self.base_url} ({exc.reason}); check the network "
                        "connection, or add local files without it: exorag ingest PATH"
                    ) from None
                problem = f"connection failed ({exc.reason})"
            except (TimeoutError, socket.timeout):
                problem = f"no answer within {self.timeout:.0f} s"
            except (http.client.HTTPException, ConnectionError, OSError) as exc:
                problem = f"connection dropped ({type(exc).__name__}: {exc})"
            if attempt >= self.retries:
                raise FetchError(f"{self.service} failed for {public_url(url)} after {attempt + 1} attempts: {problem}")
            self.sleep(delay if delay is not None else self.backoff * (2**attempt))
            attempt += 1


def _snippet(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read(300).decode("utf-8", "replace").strip()
    except Exception:  # the body of an error answer is a courtesy only
        return ""
    text = " ".join(text.split())
    return f": {text[:200]}" if text else ""


def eutils(api_key: str | None = None) -> Client:
    """A client for NCBI E-utilities ($EXORAG_EUTILS_URL): 3 requests/s, 10 with an API key."""
    base = current().fetch.eutils_url
    return Client("NCBI E-utilities", base, min_interval=0.101 if api_key else 0.34)


def europepmc() -> Client:
    """A client for the Europe PMC REST API ($EXORAG_EUROPEPMC_URL), at most 5 requests/s."""
    base = current().fetch.europepmc_url
    return Client("Europe PMC", base, min_interval=0.2)
