"""The web UI's languages: one JSON catalogue per language, chosen from Accept-Language.

``locales/<code>.json`` maps each English message (as written in the templates' ``_()``
calls and in Python's :func:`N_` marks) to its translation; the file name is the language
code (``de``, ``pt-BR``, ``zh-CN``). Adding a language is adding a file: the list of
languages is read from the directory. A message missing from a catalogue shows in
English. Messages use ``%(name)s`` placeholders, which translations must keep.
"""

from __future__ import annotations

import contextvars
import functools
import json
from importlib import resources
from typing import Any

DEFAULT = "en"
_current: contextvars.ContextVar[str] = contextvars.ContextVar("werk_lang", default=DEFAULT)


def N_(message: str) -> str:
    """Mark a message for the catalogues without translating it here."""
    return message


@functools.cache
def catalogues() -> dict[str, dict[str, str]]:
    """Return every catalogue by language code, read once from ``locales/``."""
    found: dict[str, dict[str, str]] = {}
    for item in resources.files("werk.webui").joinpath("locales").iterdir():
        if item.name.endswith(".json"):
            found[item.name.removesuffix(".json")] = json.loads(item.read_text("utf-8"))
    return found


def choose(accept_language: str) -> str:
    """Return the best catalogue for an ``Accept-Language`` header (``en`` by default).

    Tags are tried by quality; each matches a catalogue exactly (case-insensitively),
    else by its primary language (``pt`` or ``pt-PT`` → ``pt-BR``, ``zh-TW`` → ``zh-CN``).
    """
    codes = {code.lower(): code for code in catalogues()}
    primary: dict[str, str] = {}
    for code in sorted(catalogues()):
        primary.setdefault(code.split("-")[0].lower(), code)
    wanted: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            wanted.append((-quality, index, tag.strip().lower()))
    for _, _, tag in sorted(wanted):
        if tag in codes:
            return codes[tag]
        if tag.split("-")[0] in primary:
            return primary[tag.split("-")[0]]
    return DEFAULT


def use(lang: str) -> contextvars.Token[str]:
    """Make ``lang`` the language of the current request's rendering."""
    return _current.set(lang)


def current() -> str:
    """Return the language of the current request."""
    return _current.get()


def gettext(message: str) -> str:
    """Translate a message into the current language (English when missing)."""
    translated: str = catalogues().get(_current.get(), {}).get(message) or message
    return translated


def ngettext(singular: str, plural: str, n: int) -> str:
    """Translate a message with a count (the catalogues key both forms separately)."""
    return gettext(singular if n == 1 else plural)


def translate(message: str, **params: Any) -> str:
    """Translate a message and fill its ``%(name)s`` placeholders."""
    text = gettext(message)
    return text % params if params else text
