"""The CLI contract on a real index: JSON shapes of search/ask/show/stats, ranks, verbatim citations, bad queries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from exorag.index import store
from exorag.ask.answer import ask
from exorag.cli import main
from exorag.index.index import open_index

from .conftest import SAMPLE_PDF, SHARED

HIT_KEYS = {"doc_id", "title", "year", "pmid", "doi", "text", "section", "page", "score"}
CITATION_KEYS = {"n", "doc_id", "title", "year", "pmid", "doi", "url", "quote", "section", "page", "char_start",
                 "char_end"}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("circPACRGL colorectal cancer", "pmid:32713345"),  # rare keyword
        ("miR-188-3p liver metastasis", "pmid:40134019"),  # miRNA token with hyphens
        ("Are extracellular vesicles and viruses close relatives?", "doi:10.1073/pnas.1605146113"),
        ("vesicles that come from mitochondria", "doi:10.1126/sciadv.abe5085"),  # paraphrase
        ("OX40L-expressing macrophage exosomes for cancer immunotherapy", "pmid:38040340"),
    ],
)
def test_search_ranks_the_right_paper_first(built_index: Path, capsys: pytest.CaptureFixture[str],
                                             query: str, expected: str) -> None:
    payload = run_json(capsys, "search", query, "--index", str(built_index), "-k", "5", "--json")
    results = payload["results"]  # type: ignore[index]
    assert results[0]["doc_id"] == expected, [r["doc_id"] for r in results]
    for result in results:
        assert HIT_KEYS <= set(result)
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("mode", ["dense", "lexical"])
def test_single_modes_also_find_keyword_paper(built_index: Path, capsys: pytest.CaptureFixture[str], mode: str) -> None:
    payload = run_json(capsys, "search", "circPACRGL colorectal cancer", "--index", str(built_index), "--mode", mode,
                       "--json")
    assert payload["results"][0]["doc_id"] == "pmid:32713345"  # type: ignore[index]


def test_ask_json_quotes_are_verbatim_and_numbered(built_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "ask", "How do tumour-derived exosomes help cancer metastasis?",
                       "--index", str(built_index), "--json")
    assert set(payload) >= {"question", "answer", "abstained", "citations"}  # type: ignore[arg-type]
    assert payload["abstained"] is False  # type: ignore[index]
    citations = payload["citations"]  # type: ignore[index]
    assert 1 <= len(citations) <= 5
    index = open_index(built_index)
    for n, citation in enumerate(citations, start=1):
        assert CITATION_KEYS <= set(citation)
        assert citation["n"] == n
        doc = index.get_document(citation["doc_id"])
        assert doc.text[citation["char_start"]:citation["char_end"]] == citation["quote"]
        assert f"{citation['quote']} [{n}]" in payload["answer"]  # type: ignore[index]
        assert citation["url"].startswith("https://")
    assert [int(m) for m in re.findall(r"\[(\d+)\]", payload["answer"])] == list(range(1, len(citations) + 1))  # type: ignore[index]


def test_ask_text_has_reference_list(built_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "Which methods characterise single extracellular vesicles?", "--index", str(built_index)]) == 0
    out = capsys.readouterr().out
    body, refs = out.split("\nReferences\n")
    assert "[1]" in body
    assert re.search(r"^\[1(, \d+)*\] .+\. .*(https://doi.org/|https://pubmed)", refs, re.MULTILINE)


def test_ask_abstains_off_topic(built_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "ask", "What is the boiling point of tungsten in a vacuum furnace?",
                       "--index", str(built_index), "--json")
    assert payload["abstained"] is True and payload["citations"] == []  # type: ignore[index]
    assert "does not appear to answer" in payload["answer"]  # type: ignore[index]


def test_many_answers_cite_only_retrieved_passages_verbatim(index) -> None:  # type: ignore[no-untyped-def]
    questions = [
        "Which markers are used to characterise exosomes?", "How are extracellular vesicles isolated from urine?",
        "Can EVs deliver drugs to tumours?", "What is the role of exosomal PD-L1?",
        "Which microRNAs are biomarkers of colorectal cancer?", "How is the size of vesicles measured?",
        "Do stem cell exosomes help osteoarthritis?", "What do exosomes from leukemia cells do to T cells?",
        "Complications of DVT prophylaxis in trauma patients", "Are EVs reproducible between laboratories?",
    ]
    for question in questions:
        answer = ask(index, question)
        retrieved = {(h.document.id, h.chunk.char_start, h.chunk.char_end) for h in answer.hits}
        for c in answer.citations:
            assert c.document.text[c.char_start:c.char_end] == c.quote
            assert any(doc == c.document.id and s <= c.char_start and c.char_end <= e for doc, s, e in retrieved)


def test_show_and_stats(built_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "show", "pmid:40134019", "--index", str(built_index), "--json")
    assert doc["pmid"] == "40134019" and doc["chunks"]  # type: ignore[index]
    assert {"text", "section", "page"} <= set(doc["chunks"][0])  # type: ignore[index]
    stats = run_json(capsys, "stats", "--index", str(built_index), "--json")
    assert stats["documents"] >= 180 and stats["chunks"] == stats["vectors"] > stats["documents"]  # type: ignore[index]
    assert stats["model"] == "sentence-transformers/all-MiniLM-L6-v2" and stats["dim"] == 384  # type: ignore[index]
    assert stats["size_bytes"] > 100_000  # type: ignore[index]
    assert main(["show", "pmid:0", "--index", str(built_index)]) == 1
    assert capsys.readouterr().err == "error: no document with id 'pmid:0'\n"


def test_pdf_passages_keep_their_page(built_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert SAMPLE_PDF.name.startswith("datta2010")  # the fixture PDF in the session index
    payload = run_json(capsys, "search", "complications of thromboprophylaxis in trauma patients",
                       "--index", str(built_index), "--json")
    top = payload["results"][0]  # type: ignore[index]
    assert top["doc_id"] == "doi:10.1186/1752-2897-4-1"
    assert isinstance(top["page"], int) and top["page"] >= 1


@pytest.mark.parametrize("query", ['"unbalanced quote', "CD63*", "exosome NEAR vesicle", "AND OR NOT",
                                   "-PD-L1 : title:", "x" * 10_000, "α-synuclein (EVs) [1]"])
def test_hostile_queries_give_results_or_nothing_not_tracebacks(built_index: Path, capsys: pytest.CaptureFixture[str],
                                                                 query: str) -> None:
    assert main(["search", query, "--index", str(built_index), "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out)["results"], list)


@pytest.mark.parametrize("query", ["", "   ", "?!"])
def test_empty_query_is_a_clear_error(built_index: Path, capsys: pytest.CaptureFixture[str], query: str) -> None:
    assert main(["ask", query, "--index", str(built_index)]) == 1
    assert capsys.readouterr().err.startswith("error: the query is empty")


@pytest.mark.parametrize("command", ["search", "ask"])
def test_a_query_that_is_not_utf8_is_a_clear_error_not_a_traceback(tmp_path: Path, command: str) -> None:
    """Bytes that are not UTF-8 reach Python as surrogate escapes in argv (the tokenizer raised a TypeError)."""
    import os
    import subprocess
    import sys

    from exorag.index.index import open_index

    open_index(tmp_path / "idx").close()  # an (empty) index: the query is checked, not the folder
    argv = [sys.executable, "-m", "exorag.cli", command, b"exosomes \xff\xfe PD-L1", "--index", str(tmp_path / "idx")]
    done = subprocess.run(argv, capture_output=True, timeout=120, env={**os.environ, "LC_ALL": "C.UTF-8"})
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 1, err[-2000:]
    assert err.strip() == ("error: the query is not valid text: it holds the byte 0xff, which is not UTF-8 "
                           "(check the terminal's encoding)")


def test_demo_without_data_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--data", str(tmp_path / "absent.jsonl"), "--index", str(tmp_path / "idx")]) == 1
    err = capsys.readouterr().err
    assert "demo corpus" in err and "exorag ingest" in err


def test_two_hundred_answers_quote_verbatim_and_cite_only_retrieved(index) -> None:  # type: ignore[no-untyped-def]
    """Over 200+ real questions (the titles of all 207 fixture-corpus papers as questions, and 60 BioASQ questions
    where ../shared/data has them), every citation is a verbatim quote at its offsets, from a passage that was
    retrieved, numbered 1..n in the order the answer cites them."""
    from .conftest import corpus_records

    records = corpus_records(n_head=None)  # the whole fixture corpus, as in the session index
    questions = [f"What is known about {r['title'].rstrip('.')}?" for r in records if r.get("title")]
    assert len(questions) == len(records) >= 200
    bioasq = SHARED / "bioasq_golden" / "Task10BGoldenEnriched" / "10B1_golden.json"
    if bioasq.exists():
        questions += [q["body"] for q in json.loads(bioasq.read_text())["questions"][:60]]
    assert len(questions) >= 200
    answered = 0
    for question in questions:
        answer = ask(index, question, k=5)
        retrieved = {(h.document.id, h.chunk.char_start, h.chunk.char_end) for h in answer.hits}
        assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
        assert answer.abstained == (not answer.citations)
        for c in answer.citations:
            assert c.document.text[c.char_start:c.char_end] == c.quote
            assert any(d == c.document.id and s <= c.char_start and c.char_end <= e for d, s, e in retrieved)
            assert f"{c.quote} [{c.n}]" in answer.text
        answered += not answer.abstained
    assert answered >= 150  # titles of indexed papers must be answerable


def test_settings_precedence_defaults_environment_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults < $EXORAG_* < flags, through the one Settings object the CLI installs."""
    from exorag import cli
    from exorag.settings import Settings, SettingsError, current

    assert Settings.from_env({}).index.folder == Path("index") and Settings.from_env({}).ask.k == 8
    env = Settings.from_env({"EXORAG_INDEX": "/e", "EXORAG_NPROBE": "7", "EXORAG_MAX_UPLOAD_MB": "3"})
    assert env.index.folder == Path("/e") and env.index.nprobe == 7 and env.serve.max_upload_mb == 3.0
    with pytest.raises(SettingsError, match="EXORAG_NPROBE='x'"):
        Settings.from_env({"EXORAG_NPROBE": "x"})
    monkeypatch.setenv("EXORAG_INDEX", str(tmp_path / "from-env"))
    seen = {}
    monkeypatch.setattr(cli, "cmd_stats", lambda args: seen.update(folder=current().index.folder) or 0)
    assert cli.main(["stats"]) == 0 and seen["folder"] == tmp_path / "from-env"
    assert cli.main(["stats", "--index", str(tmp_path / "flag")]) == 0 and seen["folder"] == tmp_path / "flag"
    assert current().index.folder == tmp_path / "from-env"  # main() uninstalls its settings when it returns


def test_read_command_without_an_index_is_an_error_and_creates_nothing(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "nothing-here"
    for argv in (["ask", "exosomes PD-L1"], ["search", "PD-L1"], ["stats"], ["show", "x"], ["check"]):
        assert main([*argv, "--index", str(folder)]) == 1
        err = capsys.readouterr().err
        assert f"no index in {folder}" in err and "exorag ingest" in err and "exorag demo" in err, err
    assert not folder.exists()
