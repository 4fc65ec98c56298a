"""Output: answers as text and Markdown (render), references as BibTeX / RIS / Markdown (export), evidence tables.

Stage four. Pure functions of Answers and Documents; no search happens here (tables call exorag.ask for theirs).
"""
