"""Past one machine (the optional [cluster] extra, Ray): a sharded index built and served on a Ray cluster.

layout.py names the files of a sharded index (N ordinary index folders and cluster.json); build.py is `exorag cluster
build` (the driver: stages, progress, the IVF quantiser, the on-disk merge), workers.py the work its Ray tasks and
Ray Data actors do, parts.py the resumable embedding parts. Nothing here imports ray at module level, so the
default install never needs it.
"""
