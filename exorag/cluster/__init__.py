"""Past one machine (the optional [cluster] extra, Ray): a sharded index built and served on a Ray cluster.

layout.py names the files of a sharded index (N ordinary index folders and cluster.json); nothing here imports ray
at module level, so the default install never needs it.
"""
