"""Build: read source files (sources/), chunk them, tag them and mine abbreviations, and ingest or sync a folder.

Stage one of the pipeline. Everything here turns files into Documents and Chunks and hands them to the index;
nothing here writes SQL or the FAISS file directly (that is exorag.index).
"""
