"""Every code block in README.md and docs/ is run by a test or marked as not runnable.

The markers are described in tests/docblocks.py and CONTRIBUTING.md.
"""

from __future__ import annotations

from pathlib import Path

from tests.docblocks import ROOT, DocBlock, documents, parse

HINT = (
    "put <!-- run: tests/<file>.py --> (a test runs it) or <!-- not-run: why --> on the line"
    " above the opening fence (see CONTRIBUTING.md)"
)


def all_blocks() -> list[DocBlock]:
    return [block for path in documents() for block in parse(path)]


def test_every_block_is_marked() -> None:
    unmarked = [f"{b.doc}:{b.line}" for b in all_blocks() if b.kind is None]
    assert not unmarked, f"unmarked code blocks {unmarked}: {HINT}"


def test_every_run_marker_names_a_test_that_reads_the_document() -> None:
    wrong = []
    for block in all_blocks():
        if block.kind != "run":
            continue
        test_file = ROOT / block.target
        if not (test_file.name.startswith("test_") and test_file.is_file()):
            wrong.append(f"{block.doc}:{block.line}: no test file {block.target}")
        elif block.doc not in test_file.read_text(encoding="utf-8"):
            wrong.append(f"{block.doc}:{block.line}: {block.target} never names {block.doc}")
    assert not wrong, "\n".join(wrong)


def test_the_parser_reads_markers_and_fences(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "<!-- run: tests/test_x.py -->\n```sh\nmake run\n```\n\n"
        "<!-- not-run: a transcript -->\n\n  ~~~text\n  C: PUSH\n```\n  ~~~\n"
        "Text.\n```python\nprint(1)\n```\n"
    )
    blocks = parse(doc, tmp_path)
    assert [(b.line, b.language, b.kind, b.target) for b in blocks] == [
        (2, "sh", "run", "tests/test_x.py"),
        (8, "text", "not-run", "a transcript"),
        (13, "python", None, ""),
    ]
    assert blocks[0].code == "make run\n"
    assert blocks[1].code == "  C: PUSH\n```\n"
