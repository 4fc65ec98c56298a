"""Past one machine (the optional [cluster] extra, Ray): a sharded index built and served on a Ray cluster.

layout.py names the files of a sharded index (N ordinary index folders and cluster.json); serve.py serves one from
shard actors (shard.py) through a gateway with the read methods of an index, merging the shards' answers (merge.py)
and scoring bm25 with the whole index's statistics (bm25.py). Nothing here imports ray at module level, so the
default install never needs it.
"""
