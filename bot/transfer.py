"""Knowledge-base files: read and check JSON and CSV, write them back out.

One object (JSON) or one row (CSV) per article::

    id        optional; an article's id here: that article is updated (and may be renamed). An id
              that is not one here is ignored (ids belong to one installation)
    title     required; otherwise the article with this title is updated, else one is created
    answer    required
    language  the article's language code (default "en")
    tags      JSON: a list; CSV: comma-separated
    channels  channel names or ids the article is limited to; empty: every channel may use it
              (JSON: a list; CSV: comma-separated)
    active    true/false, yes/no, 1/0 (default true)
    examples  example questions. JSON: a list of strings or {"text": ..., "language": ...};
              CSV: one question per line inside the cell. "ru: где моя посылка" gives one its own
              language; without a prefix it has the article's language.

Reading never writes: :func:`read` returns the articles and the row-by-row errors, and the caller
stores nothing unless there are none. Rows are counted as a person sees them: in a CSV file the
spreadsheet row (the header is row 1), in a JSON file the article's position (the first is 1).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf.locale import LANG_INFO
from django.utils.translation import gettext as _

from common.cells import cell_text, safe_cell
from inbox.models import Channel

TITLE_MAX = 200
EXAMPLE_MAX = 500
LANGUAGE_MAX = 16
TAG_MAX = 50
COLUMNS = ("id", "title", "language", "answer", "tags", "channels", "active", "examples")
REQUIRED_COLUMNS = ("title", "answer")

_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")
# "ru: где моя посылка": a known language code, a colon, the question.
_PREFIX = re.compile(r"^\s*([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})?)\s*:\s*(\S.*)$", re.DOTALL)
_KNOWN_LANGUAGES = frozenset(code.lower() for code in LANG_INFO)
_TRUE = {"", "1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


@dataclass(frozen=True)
class ExampleInput:
    text: str
    language: str


@dataclass
class ArticleInput:
    """One article as a file or the editor gives it, checked but not yet stored."""

    title: str
    answer: str
    language: str = "en"
    tags: list[str] = field(default_factory=list)
    channels: list[int] = field(default_factory=list)
    examples: list[ExampleInput] = field(default_factory=list)
    is_active: bool = True
    id: int | None = None
    row: int = 0


@dataclass(frozen=True)
class RowError:
    row: int  # 0: the file as a whole
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


class Problems:
    """Errors collected while reading, in the order they were found."""

    def __init__(self) -> None:
        self.errors: list[RowError] = []

    def add(self, row: int, field_name: str, message: str) -> None:
        self.errors.append(RowError(row, field_name, message))

    def __bool__(self) -> bool:
        return bool(self.errors)


# -- single values, shared with the editor's form -----------------------------------------------------


def clean_language(value: Any) -> str:
    """A language code such as ``en`` or ``pt-br``; raises ValueError with a readable message."""
    code = str(value if value is not None else "").strip().lower().replace("_", "-")
    if not code:
        return "en"
    if len(code) > LANGUAGE_MAX or not _LANGUAGE.match(code):
        raise ValueError(
            _("“%(code)s” is not a language code (use one like en, ru, uk, fa or pt-br).") % {"code": code}
        )
    return code


def clean_tags(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    tags: list[str] = []
    for item in items:
        if not isinstance(item, str | int | float):
            raise ValueError(_("Tags must be words, separated by commas."))
        tag = str(item).strip()
        if "," in tag:
            raise ValueError(_("A tag may not contain a comma."))
        if len(tag) > TAG_MAX:
            raise ValueError(_("A tag may have at most %(n)d characters.") % {"n": TAG_MAX})
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def split_example(line: str, default_language: str) -> ExampleInput:
    """``"ru: где моя посылка"`` → a Russian example; a line without a known code prefix keeps ``default_language``."""
    match = _PREFIX.match(line)
    if match and match.group(1).lower() in _KNOWN_LANGUAGES:
        return ExampleInput(match.group(2).strip(), match.group(1).lower())
    return ExampleInput(line.strip(), default_language)


def example_line(example: ExampleInput, article_language: str) -> str:
    """How an example is written in a file: prefixed with its language when it differs (or would be misread)."""
    if example.language != article_language or split_example(example.text, "").language:
        return f"{example.language}: {example.text}"
    return example.text


def check_examples(examples: Iterable[ExampleInput]) -> tuple[list[ExampleInput], list[str]]:
    """Drop blank questions; report over-long, badly tagged and repeated ones (one article may not ask the same twice)."""
    kept: list[ExampleInput] = []
    problems: list[str] = []
    seen: set[str] = set()
    for example in examples:
        text = example.text.strip()
        if not text:
            continue
        if len(text) > EXAMPLE_MAX:
            problems.append(
                _("Example question “%(text)s…” is longer than %(n)d characters.")
                % {"text": text[:40], "n": EXAMPLE_MAX}
            )
            continue
        try:
            language = clean_language(example.language)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if text in seen:
            problems.append(_("Example question “%(text)s” is listed twice.") % {"text": text})
            continue
        seen.add(text)
        kept.append(ExampleInput(text, language))
    return kept, problems


class ChannelNames:
    """Channels by id or (case-insensitive) name, for reading files; names for writing them."""

    def __init__(self, channels: Iterable[Channel] | None = None) -> None:
        rows = list(channels if channels is not None else Channel.objects.order_by("pk"))
        self.by_id = {c.pk: c.name for c in rows}
        self.by_name: dict[str, list[int]] = defaultdict(list)
        for channel in rows:
            self.by_name[channel.name.strip().lower()].append(channel.pk)

    def resolve(self, value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(_("“%(value)s” is not a channel.") % {"value": value})
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            pk = int(value)
            if pk not in self.by_id:
                raise ValueError(_("There is no channel with id %(id)s.") % {"id": pk})
            return pk
        name = str(value).strip().lower()
        found = self.by_name.get(name, [])
        if not found:
            raise ValueError(_("There is no channel named “%(name)s”.") % {"name": str(value).strip()})
        if len(found) > 1:
            raise ValueError(
                _("Several channels are named “%(name)s”: use one of the ids %(ids)s.")
                % {"name": str(value).strip(), "ids": ", ".join(map(str, found))}
            )
        return found[0]

    def label(self, pk: int) -> str:
        """A channel's name when it reads back to the same channel, else its id."""
        name = self.by_id.get(pk)
        if name is None or "," in name or name.strip().isdigit() or len(self.by_name[name.strip().lower()]) != 1:
            return str(pk)
        return name


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(_("Write true or false (or yes or no)."))


def _article(raw: dict[str, Any], row: int, channels: ChannelNames, problems: Problems) -> ArticleInput | None:
    """One article from a JSON object or a CSV row (CSV cells are strings, JSON values may be lists)."""
    before = len(problems.errors)

    def text(name: str) -> str:
        value = raw.get(name)
        if value is None:
            return ""
        if not isinstance(value, str | int | float):
            problems.add(row, name, _("Expected text."))
            return ""
        return str(value).strip()

    article_id: int | None = None
    raw_id = raw.get("id")
    if raw_id not in (None, ""):
        if isinstance(raw_id, bool) or not str(raw_id).strip().isdigit():
            problems.add(row, "id", _("An id is a whole number; leave it empty for a new article."))
        else:
            article_id = int(str(raw_id).strip())
    title, answer = text("title"), text("answer")
    if not title:
        problems.add(row, "title", _("A title is required."))
    elif len(title) > TITLE_MAX:
        problems.add(row, "title", _("A title may have at most %(n)d characters.") % {"n": TITLE_MAX})
    if not answer:
        problems.add(row, "answer", _("An answer is required."))
    language = "en"
    try:
        language = clean_language(raw.get("language"))
    except ValueError as exc:
        problems.add(row, "language", str(exc))
    tags: list[str] = []
    try:
        tags = clean_tags(raw.get("tags"))
    except ValueError as exc:
        problems.add(row, "tags", str(exc))
    channel_ids: list[int] = []
    raw_channels = raw.get("channels")
    items = raw_channels if isinstance(raw_channels, list) else str(raw_channels or "").split(",")
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        try:
            pk = channels.resolve(item)
        except ValueError as exc:
            problems.add(row, "channels", str(exc))
        else:
            if pk not in channel_ids:
                channel_ids.append(pk)
    is_active = True
    try:
        is_active = _bool(raw.get("active"))
    except ValueError as exc:
        problems.add(row, "active", str(exc))
    examples: list[ExampleInput] = []
    raw_examples = raw.get("examples")
    if isinstance(raw_examples, str):
        examples = [split_example(line, language) for line in raw_examples.splitlines()]
    elif isinstance(raw_examples, list):
        for item in raw_examples:
            if isinstance(item, str):
                examples.append(split_example(item, language))
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                examples.append(ExampleInput(item["text"], str(item.get("language") or language)))
            else:
                problems.add(row, "examples", _("Each example is a text or an object with “text” and “language”."))
    elif raw_examples is not None:
        problems.add(row, "examples", _("Examples are a list of questions."))
    examples, example_problems = check_examples(examples)
    for message in example_problems:
        problems.add(row, "examples", message)
    if len(problems.errors) > before:
        return None
    return ArticleInput(
        title=title,
        answer=answer,
        language=language,
        tags=tags,
        channels=channel_ids,
        examples=examples,
        is_active=is_active,
        id=article_id,
        row=row,
    )


def _check_duplicates(articles: Sequence[ArticleInput], problems: Problems) -> None:
    ids: dict[int, int] = {}
    titles: dict[str, int] = {}
    for article in articles:
        if article.id is not None:
            if article.id in ids:
                problems.add(
                    article.row,
                    "id",
                    _("Id %(id)s is also on row %(row)s.") % {"id": article.id, "row": ids[article.id]},
                )
            ids.setdefault(article.id, article.row)
        else:
            key = article.title.casefold()
            if key in titles:
                problems.add(
                    article.row,
                    "title",
                    _("“%(title)s” is also on row %(row)s; an import updates articles by title.")
                    % {"title": article.title, "row": titles[key]},
                )
            titles.setdefault(key, article.row)


def decode(data: bytes) -> str:
    """The file's text: UTF-8, with or without the byte-order mark spreadsheets write; ValueError otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(_("The file is not UTF-8 text. Save it as “CSV UTF-8” or JSON and try again.")) from None


def read(content: str, fmt: str, *, channels: ChannelNames | None = None) -> tuple[list[ArticleInput], list[RowError]]:
    """The articles in a file, and every problem found in it (nothing is stored either way)."""
    channels = channels or ChannelNames()
    problems = Problems()
    articles: list[ArticleInput] = []
    rows: list[tuple[int, dict[str, Any]]] = []
    if fmt == "json":
        rows = _json_rows(content, problems)
    elif fmt == "csv":
        rows = _csv_rows(content, problems)
    else:
        problems.add(0, "", _("Choose a JSON or CSV file."))
    if not problems and not rows:
        problems.add(0, "", _("The file has no articles."))
    for row, raw in rows:
        article = _article(raw, row, channels, problems)
        if article is not None:
            articles.append(article)
    _check_duplicates(articles, problems)
    return articles, problems.errors


def _json_rows(content: str, problems: Problems) -> list[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        problems.add(
            0, "", _("This is not valid JSON: %(error)s (line %(line)d).") % {"error": exc.msg, "line": exc.lineno}
        )
        return []
    if isinstance(data, dict):
        data = data.get("articles")
    if not isinstance(data, list):
        problems.add(0, "", _("Expected a list of articles, or an object with an “articles” list."))
        return []
    rows = []
    for position, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            problems.add(position, "", _("Each article is an object with a title and an answer."))
            continue
        unknown = sorted(set(item) - set(COLUMNS))
        if unknown:
            problems.add(position, "", _unknown_message(unknown))
            continue
        rows.append((position, item))
    return rows


def _csv_rows(content: str, problems: Problems) -> list[tuple[int, dict[str, Any]]]:
    first_line = content.split("\n", 1)[0]
    try:
        dialect: Any = csv.Sniffer().sniff(first_line, delimiters=",;\t")
        # A header line has no quotes to tell by, and the sniffer then guesses "no doubled quotes":
        # a cell with a quote in it ("") would break its row. Spreadsheets and to_csv double them.
        dialect.doublequote = True
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(content, newline=""), dialect)
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        problems.add(1, "", _("The header row cannot be read: %(error)s") % {"error": exc})
        return []
    names = [name.strip().lower() for name in header]
    unknown = sorted({name for name in names if name and name not in COLUMNS})
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if unknown:
        problems.add(1, "", _unknown_message(unknown))
    if missing:
        problems.add(1, "", _("The header row needs the columns: %(columns)s.") % {"columns": ", ".join(missing)})
    if unknown or missing:
        return []
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        for values in reader:
            row = len(rows) + 2  # the spreadsheet row (a cell may span several lines of the file)
            if not any(value.strip() for value in values):
                rows.append((row, {}))
                continue
            if len(values) > len(names):
                problems.add(row, "", _("This row has more cells than the header has columns."))
                rows.append((row, {}))
                continue
            # A cell our export made safe for spreadsheets ('=…) reads back as it was written (=…).
            rows.append((row, dict(zip(names, map(cell_text, values), strict=False))))
    except csv.Error as exc:
        problems.add(len(rows) + 2, "", _("This row cannot be read: %(error)s") % {"error": exc})
    return [(row, raw) for row, raw in rows if raw]


def _unknown_message(unknown: list[str]) -> str:
    return _("Unknown columns: %(unknown)s. The columns are: %(columns)s.") % {
        "unknown": ", ".join(unknown),
        "columns": ", ".join(COLUMNS),
    }


# -- writing --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArticleRecord:
    """An article as it is exported (read from the database by the selectors)."""

    id: int
    title: str
    answer: str
    language: str
    tags: list[str]
    channels: list[int]
    is_active: bool
    examples: list[ExampleInput]


def to_json(articles: Iterable[ArticleRecord], *, channels: ChannelNames | None = None) -> str:
    channels = channels or ChannelNames()
    payload = {
        "format": "parley-knowledge-base",
        "version": 1,
        "articles": [
            {
                "id": a.id,
                "title": a.title,
                "language": a.language,
                "answer": a.answer,
                "tags": a.tags,
                "channels": [_json_channel(channels, pk) for pk in a.channels],
                "active": a.is_active,
                "examples": [{"text": e.text, "language": e.language} for e in a.examples],
            }
            for a in articles
        ],
    }
    return json.dumps(payload, ensure_ascii=False, indent=2) + "\n"


def _json_channel(channels: ChannelNames, pk: int) -> str | int:
    label = channels.label(pk)
    return pk if label == str(pk) else label


def to_csv(articles: Iterable[ArticleRecord], *, channels: ChannelNames | None = None) -> str:
    """One row per article; a cell a spreadsheet would run as a formula gets an apostrophe before it
    (:func:`common.cells.safe_cell`), which reading the file back takes off again."""
    channels = channels or ChannelNames()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for a in articles:
        writer.writerow(
            [
                a.id,
                safe_cell(a.title),
                safe_cell(a.language),
                safe_cell(a.answer),
                safe_cell(", ".join(a.tags)),
                safe_cell(", ".join(channels.label(pk) for pk in a.channels)),
                "yes" if a.is_active else "no",
                safe_cell("\n".join(example_line(e, a.language) for e in a.examples)),
            ]
        )
    return out.getvalue()
