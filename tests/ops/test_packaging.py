"""The operations docs and packaging keep up with the settings the server reads."""

from __future__ import annotations

from pathlib import Path

from werk.server.settings import ENV_KEYS, FILE_KEYS

ROOT = Path(__file__).resolve().parents[2]


def test_every_key_and_variable_is_documented() -> None:
    doc = (ROOT / "docs" / "reference" / "configuration.md").read_text()
    sample = (ROOT / "packaging" / "conf.d" / "werk.toml").read_text()
    operations = (ROOT / "docs" / "operations.md").read_text()
    for table, key in FILE_KEYS:
        assert f"[{table}]" in doc and key in doc, (table, key)
        assert f"[{table}]" in sample or f"# [{table}]" in sample, table
    for variable, _ in ENV_KEYS:
        assert variable in doc, variable
    assert "packaging/werk.service" in operations and "packaging/conf.d/werk.toml" in doc


def test_systemd_unit_reloads_with_sighup() -> None:
    unit = (ROOT / "packaging" / "werk.service").read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "ExecStart=/usr/bin/werk server" in unit
