"""Index: the SQLite store (documents, chunks, FTS5, tags), the FAISS vectors, the embedder and the `Index` API.

Stage two. `Index` owns the connection and the lock; the other stages call its methods and never write SQL.
"""
