"""Languages: every message of every template (and every ``N_`` mark in the web UI's
Python) is in every catalogue with the same placeholders; pages follow Accept-Language."""

from __future__ import annotations

import ast
import json
import re
from importlib import resources
from pathlib import Path

import jinja2
import pytest

from tests.conftest import SQLITE_ONLY
from tests.webui.conftest import Web
from werk.webui import i18n

WEBUI = Path(i18n.__file__).parent
REQUIRED = {"en", "de", "fr", "es", "pt-BR", "ja", "zh-CN"}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def template_messages() -> set[str]:
    """Every message the templates pass to ``_()`` (found by Jinja's own extractor)."""
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    found: set[str] = set()
    for path in sorted((WEBUI / "templates").glob("*.html")):
        for _, _, message in env.extract_translations(path.read_text("utf-8")):
            text = message[0] if isinstance(message, tuple) else message
            if text is not None:  # _(variable): a message marked N_() in Python
                found.add(text)
    return found


TREES = {path: ast.parse(path.read_text("utf-8")) for path in sorted(WEBUI.glob("*.py"))}
"""The web UI modules' syntax trees, read while pytest collects (as tests/test_layout.py
does, for the same Python 3.11 ``ast`` bug)."""


def python_messages() -> set[str]:
    """Every message marked with ``N_("...")`` in the web UI's modules."""
    found: set[str] = set()
    for path, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "N_":
                (arg,) = node.args
                assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), path.name
                found.add(arg.value)
    return found


def test_the_extractors_find_what_they_should() -> None:
    templates, python = template_messages(), python_messages()
    assert {"Find a job by JID", "Page %(page)s of %(pages)s", "Enqueue now"} <= templates
    assert {"Moved %(n)s job(s) to their queues.", "Retry now", "%(span)s ago"} <= python
    assert len(templates | python) > 200


def test_every_message_is_in_every_catalogue() -> None:
    messages = template_messages() | python_messages()
    catalogues = i18n.catalogues()
    assert REQUIRED <= set(catalogues)
    for lang, catalogue in catalogues.items():
        missing = sorted(messages - set(catalogue))
        assert not missing, f"{lang}.json lacks {missing}"
        stale = sorted(set(catalogue) - messages)
        assert not stale, f"{lang}.json has messages no page uses: {stale}"
        for message, text in catalogue.items():
            assert text.strip(), f"{lang}: empty translation of {message!r}"
            wanted = sorted(PLACEHOLDER.findall(message))
            assert sorted(PLACEHOLDER.findall(text)) == wanted, f"{lang}: {message!r}"
            assert text.count("<code>") == message.count("<code>"), f"{lang}: {message!r}"


def test_catalogues_are_plain_json_files_found_by_name() -> None:
    # Adding a language is adding locales/<code>.json: the list is read from the directory
    files = {
        item.name.removesuffix(".json")
        for item in resources.files("werk.webui").joinpath("locales").iterdir()
        if item.name.endswith(".json")
    }
    assert files == set(i18n.catalogues())
    for item in resources.files("werk.webui").joinpath("locales").iterdir():
        assert isinstance(json.loads(item.read_text("utf-8")), dict)


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("", "en"),
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("fr-CA", "fr"),
        ("pt", "pt-BR"),
        ("pt-br", "pt-BR"),
        ("zh-TW,zh;q=0.9", "zh-CN"),
        ("ja", "ja"),
        ("xx, es;q=0.5", "es"),
        ("en;q=0.2, de;q=0.9", "de"),
        ("de;q=0, fr", "fr"),
        ("tlh", "en"),
        ("*", "en"),
    ],
)
def test_language_from_accept_language(header: str, lang: str) -> None:
    assert i18n.choose(header) == lang


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("header", "lang", "words"),
    [
        ("de-DE,de;q=0.9", "de", ["Warteschlangen", "Job per JID finden", "Wiederholungen"]),
        ("fr", "fr", ["Files", "Trouver un job par JID", "Nouvelles tentatives"]),
        ("es", "es", ["Colas", "Buscar un trabajo por JID", "Reintentos"]),
        ("pt-BR", "pt-BR", ["Filas", "Encontrar um job pelo JID", "Novas tentativas"]),
        ("ja", "ja", ["キュー", "JID でジョブを検索", "リトライ"]),
        ("zh-CN", "zh-CN", ["队列", "按 JID 查找任务", "重试"]),
        ("en-GB", "en", ["Queues", "Find a job by JID", "Retries"]),
    ],
)
async def test_pages_follow_accept_language(
    web: Web, header: str, lang: str, words: list[str]
) -> None:
    await web.fail("retry-00001")
    for path in ("/", "/queues", "/retries", "/retries/retry-00001", "/batches", "/cron"):
        response = await web.client.get(path, headers={"Accept-Language": header})
        assert response.status_code == 200
        assert f'<html lang="{lang}">' in response.text
        for word in words:
            assert word in response.text, (path, word)
    missing = await web.client.get("/queues/nope", headers={"Accept-Language": header})
    assert missing.status_code == 404 and f'<html lang="{lang}">' in missing.text


@SQLITE_ONLY
async def test_notices_and_relative_times_are_translated(web: Web) -> None:
    await web.fail("retry-00001")
    token = await web.token()
    response = await web.client.post(
        "/retries",
        data={"csrf_token": token, "action": "retry", "jid": "retry-00001"},
        headers={"Accept-Language": "de"},
    )
    page = await web.client.get(response.headers["location"], headers={"Accept-Language": "de"})
    assert "1 Job(s) in ihre Warteschlangen verschoben." in page.text
    busy = await web.client.get("/queues/default", headers={"Accept-Language": "ja"})
    assert " 前" in busy.text  # "… ago"
