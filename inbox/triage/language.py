"""A small script-based language guess, enough to pick a calibration: en, ru, uk, fa.

Calibrations are per language because cross-language similarities run lower; this only has to
tell the scripts (and Ukrainian from Russian) apart, not every language in the world.
"""

from __future__ import annotations

import re
import unicodedata

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


def detect_language(text: str, *, default: str = "en") -> str:
    """The language a message is most likely in; ``default`` for Latin script or when unsure."""
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
    return default
