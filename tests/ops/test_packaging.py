"""The operations docs and packaging keep up with the settings the server reads."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from werk.server.settings import ENV_KEYS, FEATURE_CHECKS, FEATURE_TABLES, FILE_KEYS, KNOWN_KEYS

ROOT = Path(__file__).resolve().parents[2]


def sample_keys(text: str) -> set[tuple[str, str]]:
    """Return the ``(table, key)`` pairs a sample file sets or shows commented out."""
    found, table = set(), ""
    for line in text.splitlines():
        line = line.lstrip("# ")
        if header := re.match(r"\[+([a-z.]+)\]+", line):
            table = header.group(1)
        elif key := re.match(r"([a-z_]+) *=", line):
            found.add((table, key.group(1)))
    return found


def test_every_key_and_variable_is_documented() -> None:
    doc = (ROOT / "docs" / "reference" / "configuration.md").read_text()
    sample = (ROOT / "packaging" / "conf.d" / "werk.toml").read_text()
    operations = (ROOT / "docs" / "operations.md").read_text()
    shown = sample_keys(sample)
    for table, key in FILE_KEYS:
        assert f"[{table}]" in doc and key in doc, (table, key)
        # "a sample configuration with every key" (operations.md): durability was missing
        assert (table, key) in shown, (table, key)
    for variable, _ in ENV_KEYS:
        assert variable in doc, variable
    assert "packaging/werk.service" in operations and "packaging/conf.d/werk.toml" in doc


def test_systemd_unit_reloads_with_sighup() -> None:
    unit = (ROOT / "packaging" / "werk.service").read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "ExecStart=/usr/bin/werk server" in unit


def tables_read_by_code() -> dict[str, set[Path]]:
    """The conf.d tables the server's code reads by name: ``settings.get("t")``,
    ``settings["t"]`` and ``settings.setdefault("t", ...)`` on the merged document
    (``ServerConfig.settings``), with the modules that read each."""
    read: dict[str, set[Path]] = {}
    for path in (ROOT / "src" / "werk").rglob("*.py"):
        if "contrib" in path.parts:  # Django's settings are another thing
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            target, key = None, None
            if isinstance(node, ast.Subscript):
                target, key = node.value, node.slice
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "setdefault")
                and node.args
            ):
                target, key = node.func.value, node.args[0]
            named = (isinstance(target, ast.Name) and target.id == "settings") or (
                isinstance(target, ast.Attribute) and target.attr == "settings"
            )
            if named and isinstance(key, ast.Constant) and isinstance(key.value, str):
                read.setdefault(key.value, set()).add(path)
    return read


def test_every_table_the_code_reads_is_accepted_and_documented() -> None:
    # The finding: [results] max_bytes was read by werk.manager.features and documented,
    # but the settings check refused the table, so the server would not start with it.
    read = tables_read_by_code()
    assert {"cron", "throttles", "statsd", "results"} <= set(read)  # the scan sees them
    unknown = set(read) - set(KNOWN_KEYS)
    assert not unknown, f"read by code but refused in conf.d: {unknown}; add to FEATURE_TABLES"
    unread = set(FEATURE_TABLES) - set(read)
    assert not unread, f"accepted in conf.d but read by no code: {unread}"
    doc = (ROOT / "docs" / "reference" / "configuration.md").read_text()
    sample = (ROOT / "packaging" / "conf.d" / "werk.toml").read_text()
    for table, keys in FEATURE_TABLES.items():
        assert f"[{table}]" in doc and f"[{table}]" in sample, table
        sources = "".join(path.read_text() for path in read[table])
        for key in keys or ():
            assert f"`{key}`" in doc or f"] {key}`" in doc, (table, key)
            assert f'"{key}"' in sources, f"[{table}] {key} is accepted but not read"
        assert table in FEATURE_CHECKS, f"[{table}] has no check of its values"
