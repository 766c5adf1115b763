"""Which language a customer's message is in, enough to pick a calibration and the bot's phrases.

Calibrations are per language because cross-language similarities run lower. The script tells
Cyrillic (Ukrainian from Russian by their letters and common words) and Persian apart. Latin-script
and other messages are told apart only among the languages the knowledge base has text in
(``known``), by langid.py's naive Bayes model (``py3langid``, shipped in its wheel): restricted to
a few candidates it is right on short questions where it is not on 97 languages, and a message it
is unsure of gets the default. With one such language (an English-only knowledge base) nothing is
asked of the model and it is never loaded.
"""

from __future__ import annotations

import copy
import re
import threading
import unicodedata
from collections.abc import Collection
from typing import Any

_UKRAINIAN_ONLY = set("іїєґ")
_RUSSIAN_ONLY = set("ыэъё")
# Common words that are spelt differently in the two languages, for sentences without those letters.
_UKRAINIAN_WORDS = frozenset(
    [
        "чи",
        "як",
        "який",
        "яка",
        "яке",
        "які",
        "що",
        "це",
        "цей",
        "ця",
        "мій",
        "мого",
        "моєму",
        "мене",
        "тебе",
        "хто",
        "коли",
        "чому",
        "скільки",
        "можна",
        "можу",
        "будь",
        "ласка",
        "знайди",
        "замов",
        "наступна",
        "наступний",
        "наступне",
        "когось",
        "зараз",
        "тут",
        "ні",
    ]
)
_RUSSIAN_WORDS = frozenset(
    [
        "ли",
        "как",
        "какой",
        "какая",
        "какое",
        "какие",
        "что",
        "это",
        "этот",
        "эта",
        "мой",
        "моего",
        "меня",
        "тебя",
        "кто",
        "когда",
        "почему",
        "сколько",
        "можно",
        "могу",
        "пожалуйста",
        "найди",
        "закажи",
        "следующая",
        "следующий",
        "кого-нибудь",
        "сейчас",
        "здесь",
        "да",
        "нет",
    ]
)


# Languages the script rules below decide; the model is asked only about the others.
SCRIPT_LANGUAGES = frozenset({"ru", "uk", "fa"})
# Below this probability among the candidates the message keeps the default language: a greeting
# such as "hola" or "hi" says too little (measured: 0.5-0.84 for those, 0.95-1.0 for questions).
MIN_PROBABILITY = 0.9

_lock = threading.Lock()
_model: Any = None
_restricted: dict[frozenset[str], Any] = {}


def _loaded_model() -> Any:
    global _model
    with _lock:
        if _model is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier  # type: ignore[import-untyped]

            _model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _model


def _identifier(languages: frozenset[str]) -> Any:
    """langid.py restricted to ``languages``: a shallow copy of the one loaded model per set."""
    model = _loaded_model()
    with _lock:
        found = _restricted.get(languages)
        if found is None:
            found = _restricted[languages] = copy.copy(model)
            found.set_languages(sorted(languages))  # new arrays on the copy; the model stays whole
        return found


def _by_model(text: str, *, default: str, known: Collection[str]) -> str:
    """The most likely of the known languages the script does not decide, or ``default``."""
    by_base: dict[str, str] = {}
    for code in sorted({*known, default}):
        base = code.split("-")[0].lower()
        if base not in SCRIPT_LANGUAGES:
            by_base.setdefault(base, code)  # "pt-br" in the knowledge base: answer "pt-br", not "pt"
    if len(by_base) < 2:
        return default  # one candidate: nothing to tell apart, no model loaded
    labels = set(_loaded_model().labels)
    candidates = frozenset(base for base in by_base if base in labels)
    if len(candidates) < 2:
        return default
    language, probability = _identifier(candidates).classify(text)
    return by_base[language] if probability >= MIN_PROBABILITY else default


def detect_language(text: str, *, default: str = "en", known: Collection[str] = ()) -> str:
    """The language a message is most likely in: by script for ru, uk and fa; else among ``known``.

    ``known`` is the knowledge base's languages (``knowledge.languages()``); without two of them
    that the script does not decide, a Latin-script message is in ``default``.
    """
    lowered = text.lower()
    cyrillic = arabic = latin = 0
    for char in lowered:
        if not char.isalpha():
            continue
        name = unicodedata.name(char, "")
        if name.startswith("CYRILLIC"):
            cyrillic += 1
        elif name.startswith(("ARABIC", "PERSIAN")):
            arabic += 1
        elif name.startswith("LATIN"):
            latin += 1
    if cyrillic > latin and cyrillic >= arabic:
        letters = set(lowered)
        if letters & _UKRAINIAN_ONLY and not letters & _RUSSIAN_ONLY:
            return "uk"
        if letters & _RUSSIAN_ONLY:
            return "ru"
        words = set(re.findall(r"\w+", lowered))
        return "uk" if len(words & _UKRAINIAN_WORDS) > len(words & _RUSSIAN_WORDS) else "ru"
    if arabic > latin:
        return "fa"  # the one Arabic-script language Parley speaks
    if not known or not any(char.isalpha() for char in lowered):
        return default
    return _by_model(text, default=default, known=known)
