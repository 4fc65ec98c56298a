"""Past one machine (the optional [cluster] extra, Ray): a sharded index built and served on a Ray cluster.

layout.py names the files of a sharded index (N ordinary index folders and cluster.json); driver.py joins a Ray
cluster (the one `connect` of building and serving). build.py is `exorag cluster
build` (the driver: stages, progress, the IVF quantiser, the on-disk merge), workers.py the work its Ray tasks and
Ray Data actors do, parts.py the resumable embedding parts. serve.py serves a sharded index from shard actors
(shard.py) through a gateway with the read methods of an index, merging the shards' answers (merge.py) and scoring
bm25 with the whole index's statistics (bm25.py). Nothing here imports ray at module level, so the
default install never needs it.
"""
