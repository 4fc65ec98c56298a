"""exorag: offline retrieval-augmented question answering over the exosome / EV literature.

The pipeline, one module per stage:
sources -> chunk -> store (SQLite + FTS5) -> embed -> vectors (FAISS) -> retrieve -> answer -> cli / app.
"""

__version__ = "0.1.0"
