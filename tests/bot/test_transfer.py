"""Knowledge-base files: what a spreadsheet cell or a JSON value means."""

from __future__ import annotations

import csv

import pytest

from bot import transfer
from bot.transfer import ArticleRecord, ChannelNames, ExampleInput
from inbox.models import Channel

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("where is my parcel", ExampleInput("where is my parcel", "en")),
        ("ru: где моя посылка", ExampleInput("где моя посылка", "ru")),
        ("PT-BR:cadê meu pedido", ExampleInput("cadê meu pedido", "pt-br")),
        ("re: my order", ExampleInput("re: my order", "en")),  # not a language code
        ("order 12: where is it", ExampleInput("order 12: where is it", "en")),
    ],
)
def test_an_example_line_may_start_with_its_language(line, expected):
    assert transfer.split_example(line, "en") == expected


def test_an_example_that_looks_prefixed_is_written_so_that_it_reads_back_the_same():
    tricky = ExampleInput("de: is that german?", "en")

    line = transfer.example_line(tricky, "en")

    assert line == "en: de: is that german?"
    assert transfer.split_example(line, "en") == tricky


def test_channels_are_written_by_name_unless_the_name_would_not_read_back(support):
    sms = Channel.objects.create(kind="simulator", name="SMS", team=support)
    twin_a = Channel.objects.create(kind="simulator", name="Twin", team=support)
    Channel.objects.create(kind="simulator", name="Twin", team=support)
    comma = Channel.objects.create(kind="simulator", name="Sales, EU", team=support)
    names = ChannelNames()
    record = ArticleRecord(1, "T", "A", "en", [], [sms.pk, twin_a.pk, comma.pk], True, [])

    [row] = list(csv.DictReader(transfer.to_csv([record]).splitlines()))

    assert row["channels"] == f"SMS, {twin_a.pk}, {comma.pk}"
    articles, errors = transfer.read(transfer.to_csv([record]), "csv", channels=names)
    assert errors == []
    assert articles[0].channels == [sms.pk, twin_a.pk, comma.pk]


def test_a_row_with_more_cells_than_columns_is_an_error():
    articles, errors = transfer.read('title,answer\nA,B,C\nD,"E"\n', "csv")

    assert [a.title for a in articles] == ["D"]
    assert [(e.row, e.message) for e in errors] == [(2, "This row has more cells than the header has columns.")]
