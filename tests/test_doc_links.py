"""Every relative link in README.md and docs/ points at a file that exists."""

from __future__ import annotations

import re

from tests.docblocks import ROOT, documents

LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_relative_links_point_at_existing_files() -> None:
    broken = []
    for path in documents():
        for target in LINK.findall(path.read_text(encoding="utf-8")):
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            file_part = target.split("#", 1)[0]
            if not (path.parent / file_part).resolve().exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)
