"""The translations: every catalog is complete and compiled, and the app shows them.

The catalogs are read with the standard library only (no polib), so this test also tells the
lead which strings are still to translate after re-extracting: run it and read the failures.
"""

from __future__ import annotations

import ast
import gettext
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation

from inbox.services import inbound
from inbox.transport import InboundMessage

LOCALE = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ["ru", "uk", "fa"]
PLURAL_FORMS = {
    "ru": "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);",
    "uk": "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);",
    "fa": "nplurals=2; plural=(n > 1);",
}
FIRST_FORM_NOT_ONLY_ONE = {"ru", "uk"}  # the first plural form is used for 1 and also for 21, 31, …
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%%|%[sd]|\{\w*\}")


@dataclass
class Entry:
    line: int
    flags: set[str] = field(default_factory=set)
    msgctxt: str | None = None
    msgid: str = ""
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"line {self.line}: {self.msgid!r}"


def read_po(path: Path) -> list[Entry]:
    """The entries of a .po file (blocks separated by blank lines), header first; obsolete ones left out."""
    entries = []
    first_line = 1
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = block.strip("\n").splitlines()
        entry = Entry(line=first_line)
        first_line += block.count("\n") + 2
        target = ""
        for line in lines:
            if line.startswith("#,"):
                entry.flags |= {flag.strip() for flag in line[2:].split(",")}
            if line.startswith("#"):
                continue
            if not line.startswith('"'):
                target, _, line = line.partition(" ")
            value = ast.literal_eval(line)
            match = re.fullmatch(r"msgstr\[(\d+)\]", target)
            if target == "msgstr" or match:
                index = int(match.group(1)) if match else 0
                entry.msgstr[index] = entry.msgstr.get(index, "") + value
            elif target in {"msgctxt", "msgid", "msgid_plural"}:
                setattr(entry, target, (getattr(entry, target) or "") + value)
            else:
                raise AssertionError(f"{path}:{entry.line}: unknown keyword {target!r}")
        if entry.msgstr:
            entries.append(entry)
    return entries


def catalog(language: str) -> tuple[Entry, list[Entry]]:
    header, *entries = read_po(LOCALE / language / "LC_MESSAGES" / "django.po")
    assert header.msgid == "", "the catalog starts with its header"
    return header, entries


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_string_is_translated(language):
    header, entries = catalog(language)
    assert len(entries) > 400
    assert "fuzzy" not in header.flags
    assert f"Language: {language}\n" in header.msgstr[0]
    assert f"Plural-Forms: {PLURAL_FORMS[language]}\n" in header.msgstr[0]
    nplurals = int(PLURAL_FORMS[language].split(";")[0].split("=")[1])

    fuzzy = [str(entry) for entry in entries if "fuzzy" in entry.flags]
    untranslated = [str(entry) for entry in entries if not all(entry.msgstr.values())]
    wrong_forms = [
        str(entry)
        for entry in entries
        if sorted(entry.msgstr) != (list(range(nplurals)) if entry.msgid_plural else [0])
    ]
    assert not fuzzy, f"{language}: fuzzy entries:\n" + "\n".join(fuzzy)
    assert not untranslated, f"{language}: untranslated entries:\n" + "\n".join(untranslated)
    assert not wrong_forms, f"{language}: wrong number of plural forms:\n" + "\n".join(wrong_forms)


def edges(text: str) -> tuple[str, str]:
    return text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_placeholders_markup_and_edges(language):
    _, entries = catalog(language)
    problems = []
    for entry in entries:
        for index, text in entry.msgstr.items():
            source = entry.msgid_plural if entry.msgid_plural and index > 0 else entry.msgid
            allowed = [sorted(PLACEHOLDER.findall(source))]
            if entry.msgid_plural and index == 0 and language in FIRST_FORM_NOT_ONLY_ONE:
                # In ru/uk the first form also serves 21, 31, …: it must show the count, as in the
                # plural msgid (msgfmt --check-format, run by compilemessages, insists on it too).
                allowed.append(sorted(PLACEHOLDER.findall(entry.msgid_plural)))
            if sorted(PLACEHOLDER.findall(text)) not in allowed:
                problems.append(f"{entry} [{index}]: placeholders differ: {text!r}")
            if sorted(re.findall(r"</?\w+", text)) != sorted(re.findall(r"</?\w+", source)):
                problems.append(f"{entry} [{index}]: HTML tags differ: {text!r}")
            if edges(text) != edges(source):
                problems.append(f"{entry} [{index}]: leading or trailing whitespace differs: {text!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalog_matches_the_po_file(language):
    """A fresh clone needs no gettext tools: the committed .mo must be compiled from this .po."""
    _, entries = catalog(language)
    with (LOCALE / language / "LC_MESSAGES" / "django.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    stale = []
    for entry in entries:
        msgid = entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"
        if entry.msgid_plural:
            forms = {index: compiled._catalog.get((msgid, index)) for index in entry.msgstr}  # type: ignore[attr-defined]
            if forms != entry.msgstr:
                stale.append(str(entry))
        elif compiled._catalog.get(msgid) != entry.msgstr[0]:  # type: ignore[attr-defined]
            stale.append(str(entry))
    assert not stale, f"{language}: run `manage.py compilemessages`; stale in the .mo:\n" + "\n".join(stale)


def test_plural_forms_follow_each_language():
    msgid, plural = "%(counter)s conversation", "%(counter)s conversations"
    with translation.override("ru"):
        forms = [translation.ngettext(msgid, plural, n) % {"counter": n} for n in (1, 3, 5, 11, 21, 112)]
    assert forms == ["1 диалог", "3 диалога", "5 диалогов", "11 диалогов", "21 диалог", "112 диалогов"]
    with translation.override("uk"):
        forms = [translation.ngettext(msgid, plural, n) % {"counter": n} for n in (1, 4, 7)]
    assert forms == ["1 розмова", "4 розмови", "7 розмов"]
    with translation.override("fa"):
        assert translation.ngettext(msgid, plural, 2) % {"counter": 2} == "2 گفتگو"


LOGIN_PAGE = {
    "ru": ["Войдите, чтобы отвечать клиентам.", "Имя пользователя", "Пароль", "Войти"],
    "uk": ["Увійдіть, щоб відповідати клієнтам.", "Ім'я користувача", "Пароль", "Увійти"],
    "fa": ["برای پاسخ به مشتریان وارد شوید.", "نام کاربری", "گذرواژه", "ورود"],
}
INBOX_PAGE = {
    "ru": ["Входящие", "Клиенты", "Выйти", "Мои", "Без назначения", "Сочетания клавиш"],
    "uk": ["Вхідні", "Клієнти", "Вийти", "Мої", "Без призначення", "Сполучення клавіш"],
    "fa": ["صندوق ورودی", "مشتریان", "خروج", "مربوط به من", "واگذارنشده", "میان‌برهای صفحه‌کلید"],
}


def in_language(client: Client, language: str) -> Client:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    return client


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_login_page_speaks_the_chosen_language(client, language):
    page = in_language(client, language).get(reverse("login"))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'lang="{language}"' in html
    assert f'dir="{"rtl" if language == "fa" else "ltr"}"' in html
    for text in LOGIN_PAGE[language]:
        assert text in html, f"{text!r} missing from the {language} login page"
    assert "Log in to answer your customers." not in html


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_inbox_speaks_the_chosen_language(client, alice, sms, language):
    inbound.receive_message(
        channel=sms,
        inbound=InboundMessage(provider_id="in-i18n", address="+15005550006", text="My parcel is late", name="Dora"),
    )
    client.force_login(alice)
    page = in_language(client, language).get(reverse("inbox:index"))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'dir="{"rtl" if language == "fa" else "ltr"}"' in html
    for text in INBOX_PAGE[language]:
        assert text in html, f"{text!r} missing from the {language} inbox"
    assert "Dora" in html
    assert ">Knowledge base<" not in html
