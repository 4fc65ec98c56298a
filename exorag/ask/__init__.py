"""Ask: retrieval (dense + BM25), the trained judge, extractive answers, claim checking, the optional LLM, evaluation.

Stage three: a question or claim in, an Answer or a Verdict out. Formatting for people is exorag.output's job.
"""
