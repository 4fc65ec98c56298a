"""Exceptions raised by the library. Only `exorag.cli` (and the app) turn them into short messages."""


class ExoragError(Exception):
    """Base class: every error the library raises on purpose."""


class ParseError(ExoragError):
    """An input file (or one line of it) cannot be read into a Document.

    The message names the file, the line where there is one, and the reason.
    """

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class UnsupportedFile(ParseError):
    """A file whose kind `exorag ingest` does not read (unknown extension)."""


class FileTimeout(ParseError):
    """A reader spent longer than the per-file limit on one file (`limit` seconds)."""

    def __init__(self, path: str, limit: float) -> None:
        self.limit = limit
        super().__init__(path, f"took longer than {limit:g} s; abandoned (raise --file-timeout to allow more)")


class IndexMismatch(ExoragError):
    """The index was built with another embedding model (or dimension) than the one asked for."""


class ModelNotFound(ExoragError):
    """The embedding model cannot be loaded offline."""


class NotFound(ExoragError):
    """A document id that is not in the store."""


class EmptyQuery(ExoragError):
    """A query or question with no searchable content."""


class DamagedIndex(ExoragError):
    """A file of the index is damaged (a garbled store page, a broken FTS table, a truncated FAISS file, bad
    index.json) or missing; the message says which and what `exorag check --repair` can rebuild."""


class IndexBusy(ExoragError):
    """Another exorag process is writing to the same index folder."""


class EmptyIndex(ExoragError):
    """The index holds no passages yet, so there is nothing to answer from."""


class InvalidText(ExoragError):
    """A query that is not valid Unicode text: a lone surrogate, e.g. bytes of a command-line argument that were
    not UTF-8 (Python keeps them as surrogate escapes), which neither the tokenizer nor SQLite can take."""


class FetchError(ExoragError):
    """A remote literature service (NCBI E-utilities, Europe PMC) failed or answered something unusable.

    The message names the service and, where there is one, the request or batch that failed.
    """


class ServiceUnreachable(FetchError):
    """The service cannot be reached at all (offline, connection refused, DNS failure): no point going on."""


class LLMError(ExoragError):
    """The LLM endpoint is misconfigured, unreachable, too slow, or answered something unusable.

    `exorag.ask.generate` turns the last three into a fallback to the extractive answer with a note; a misconfiguration
    (a URL without a model, a bad URL) reaches the CLI as an error.
    """


class NotACluster(ExoragError):
    """A folder holds no sharded index (no cluster.json), or a cluster.json this version cannot read."""


class ClusterError(ExoragError):
    """The Ray cluster cannot be joined, ray (the [cluster] extra) is not installed, or a build step failed on it."""


class ReadOnlyIndex(ExoragError):
    """A write (ingest, sync, remove, an upload in the chat) asked of an index that is served read-only: a sharded
    index on a Ray cluster, which only `exorag cluster build` writes."""


class ShardUnavailable(ExoragError):
    """A shard of a sharded index cannot answer: its actor died and could not be replaced, or the cluster is gone."""
