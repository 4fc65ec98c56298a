"""One frozen Settings object, in sections, and the only place that reads the process environment.

Precedence: the defaults below < `EXORAG_*` environment variables < command-line flags (the CLI applies its flags
with `Settings.replace(section=..., **values)` and installs the result with `configure`). Library code asks
`current()` for what it needs; without `configure` that is a fresh read of the environment each time (cheap), so a
test that sets a variable sees it at once.

`offline_environment()` is one of the two writers: before transformers or tokenizers are imported it sets the
variables that keep them off the network and quiet (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, TOKENIZERS_PARALLELISM,
...) and turns off Gradio's telemetry; `cluster_environment()`, the other, keeps a Ray driver on loopback for a
cluster on 127.0.0.1. Deliberately left out: a settings file (the environment and flags are enough for a
command-line tool) and validation of values a module checks where it uses them (e.g. the LLM URL).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exorag.errors import ExoragError


class SettingsError(ExoragError):
    """An environment variable or flag holds a value of the wrong kind."""


@dataclass(frozen=True)
class IndexSettings:
    folder: Path = Path("index")  # EXORAG_INDEX
    model: str | None = None  # EXORAG_MODEL; None: the model that built the index (or the default model)
    backend: str | None = None  # EXORAG_BACKEND: torch | onnx | onnx-int8; None: per model (embed.default_backend)
    onnx_threads: int | None = None  # EXORAG_ONNX_THREADS; None: the number of physical cores
    nprobe: int | None = None  # EXORAG_NPROBE; None: a fraction of the IVF lists (vectors.default_nprobe)
    approx_threshold: int = 200_000  # EXORAG_APPROX_THRESHOLD: vectors past which the exact index becomes IVF
    cache: Path = Path.home() / ".cache" / "exorag"  # EXORAG_CACHE: exported ONNX embedders


@dataclass(frozen=True)
class BuildSettings:
    overlap: bool = False  # EXORAG_OVERLAP=1: embed in a thread while parsing goes on
    file_timeout_s: float = 120.0  # per file: reading, tagging and chunking together
    demo_data: Path | None = None  # EXORAG_DEMO_DATA: a corpus for `exorag demo` other than the shipped one


@dataclass(frozen=True)
class AskSettings:
    k: int = 8  # passages an answer, a claim check or a generated answer draws on
    table_k: int = 12  # passages an evidence table draws on
    search_k: int = 10  # hits `search` shows
    max_k: int = 30  # the most passages one question may ask for (a larger k is clamped, on the page and the CLI)


@dataclass(frozen=True)
class LLMSettings:
    url: str = ""  # EXORAG_LLM_URL; empty: no LLM (extractive answers)
    model: str = ""  # EXORAG_LLM_MODEL
    key: str = ""  # EXORAG_LLM_KEY, else OPENAI_API_KEY
    timeout_s: float = 120.0  # longest wait for the reply to start, or for its next piece while it streams


@dataclass(frozen=True)
class FetchSettings:
    eutils_url: str = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"  # EXORAG_EUTILS_URL
    europepmc_url: str = "https://www.ebi.ac.uk/europepmc/webservices/rest"  # EXORAG_EUROPEPMC_URL
    ncbi_api_key: str | None = None  # NCBI_API_KEY
    ncbi_email: str | None = None  # NCBI_EMAIL


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: float = 50.0  # EXORAG_MAX_UPLOAD_MB


@dataclass(frozen=True)
class ClusterSettings:
    address: str | None = None  # EXORAG_CLUSTER: a Ray cluster's address (host:port) serving a sharded --index
    replicas: int = 1  # EXORAG_REPLICAS: shard actors per shard (the gateway spreads calls over them)


@dataclass(frozen=True)
class Settings:
    index: IndexSettings = field(default_factory=IndexSettings)
    build: BuildSettings = field(default_factory=BuildSettings)
    ask: AskSettings = field(default_factory=AskSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, overridden: frozenset[str] = frozenset()) -> Settings:
        """The defaults with the environment's `EXORAG_*` (and NCBI_*, OPENAI_API_KEY) values applied; variables in
        `overridden` (set by a flag given as well) are not read, so a bad one there is no error."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            if name in overridden:
                return None
            value = env.get(name, "").strip()
            return value or None

        def number(name: str, kind: type, minimum: float | None = None) -> Any:
            raw = get(name)
            if raw is None:
                return None
            try:
                value = kind(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r}: expected a {'whole ' if kind is int else ''}number") from None
            if minimum is not None and value < minimum:
                raise SettingsError(f"{name}={raw!r}: expected at least {minimum:g}")
            return value

        def path(name: str) -> Path | None:
            value = get(name)
            return Path(value) if value else None

        overlap = get("EXORAG_OVERLAP")
        return (cls()
                .replace("index", folder=path("EXORAG_INDEX"), model=get("EXORAG_MODEL"), backend=get("EXORAG_BACKEND"),
                         onnx_threads=number("EXORAG_ONNX_THREADS", int, 1), nprobe=number("EXORAG_NPROBE", int, 1),
                         approx_threshold=number("EXORAG_APPROX_THRESHOLD", int, 1), cache=path("EXORAG_CACHE"))
                .replace("build", overlap=(overlap == "1") if overlap else None, demo_data=path("EXORAG_DEMO_DATA"))
                .replace("llm", url=get("EXORAG_LLM_URL"), model=get("EXORAG_LLM_MODEL"),
                         key=get("EXORAG_LLM_KEY") or get("OPENAI_API_KEY"))
                .replace("fetch", eutils_url=get("EXORAG_EUTILS_URL"), europepmc_url=get("EXORAG_EUROPEPMC_URL"),
                         ncbi_api_key=get("NCBI_API_KEY"), ncbi_email=get("NCBI_EMAIL"))
                .replace("serve", max_upload_mb=number("EXORAG_MAX_UPLOAD_MB", float, 0))
                .replace("cluster", address=get("EXORAG_CLUSTER"), replicas=number("EXORAG_REPLICAS", int, 1)))

    def replace(self, section: str, **values: Any) -> Settings:
        """A copy with `values` set in one section; None values (a flag not given) leave the setting as it is."""
        changed = {k: v for k, v in values.items() if v is not None}
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changed)})


_configured: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Install the settings the library uses from now on (the CLI does, after its flags); None: back to the env."""
    global _configured
    _configured = settings


def current() -> Settings:
    """The configured settings, else the defaults with the environment applied (read now)."""
    return _configured if _configured is not None else Settings.from_env()


_OFFLINE = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false", "GRADIO_ANALYTICS_ENABLED": "False",
}


def offline_environment() -> None:
    """Keep transformers, huggingface_hub and Gradio off the network (call before importing them); a value the user
    set is left alone."""
    for name, value in _OFFLINE.items():
        os.environ.setdefault(name, value)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def cluster_environment(address: str) -> None:
    """Before ray is imported by a driver of a sharded index: no usage statistics, and for a cluster on this
    machine's loopback (`127.0.0.1:PORT`) keep Ray on loopback (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0; otherwise Ray
    swaps 127.0.0.1 for the network interface's address). A value the user set is left alone."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    if host in LOOPBACK:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
