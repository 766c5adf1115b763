from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from inbox.models import Channel


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_channel_add_prints_its_id_kind_and_absolute_webhook_urls(db, settings):
    settings.PUBLIC_BASE_URL = "https://support.example.test"
    printed = json.loads(
        run("channel", "add", "simulator", "--name", "Lab SMS", "--team", "Support", "--set", "medium=sms")
    )
    channel = Channel.objects.get(pk=printed["id"])
    assert printed["kind"] == "simulator"
    assert channel.team.name == "Support"
    assert printed["webhooks"]["inbound"] == f"https://support.example.test/hooks/{channel.key}/inbound/"
    assert printed["settings"]["secret"] == "***"


def test_channel_list_prints_every_channel(db):
    run("channel", "add", "simulator", "--name", "A", "--set", "medium=sms")
    run("channel", "add", "simulator", "--name", "B", "--set", "medium=email")
    lines = [json.loads(line) for line in run("channel", "list").splitlines()]
    assert [line["name"] for line in lines] == ["A", "B"]


def test_channel_add_refuses_an_unknown_kind(db):
    with pytest.raises(CommandError, match="no connector for kind"):
        run("channel", "add", "carrier-pigeon", "--name", "X")


def test_channel_add_refuses_a_malformed_setting(db):
    with pytest.raises(CommandError, match="key=value"):
        run("channel", "add", "simulator", "--name", "X", "--set", "medium")
