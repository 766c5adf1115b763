"""An SMTP peer on a free loopback port (aiosmtpd) that records what it is given.

``reply_with`` makes it refuse the next messages with a given SMTP reply (``"451 4.3.0 try later"``,
``"550 5.1.1 no such user"``), so error mapping is tested against a real SMTP conversation.

With a server certificate (:mod:`tests.fakes.tls`) it speaks TLS: ``tls="starttls"`` offers STARTTLS
and refuses mail before it, ``tls="ssl"`` is implicit TLS from the first byte.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

import pytest

from tests.fakes.tls import ServerCert


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class Recorder:
    messages: list[Received] = field(default_factory=list)
    reply_with: str = ""
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.reply_with and self.reply_with.startswith("550"):
            return self.reply_with
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reply_with:
            return self.reply_with
        with self.arrived:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
            self.arrived.notify_all()
        return "250 OK"


class SMTPPeer:
    def __init__(self, *, tls: Literal["none", "starttls", "ssl"] = "none", cert: ServerCert | None = None) -> None:
        from aiosmtpd.controller import Controller

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.tls = tls
        self.recorder = Recorder()
        assert (tls == "none") == (cert is None), "TLS needs a server certificate, plain text none"
        options: dict[str, Any] = {}
        if tls == "starttls" and cert is not None:
            options = {"tls_context": cert.server_context(), "require_starttls": True}
        elif tls == "ssl" and cert is not None:
            options = {"ssl_context": cert.server_context()}
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port, **options)

    @property
    def messages(self) -> list[Received]:
        return self.recorder.messages

    def reply_with(self, reply: str) -> None:
        self.recorder.reply_with = reply

    def settings(self) -> dict[str, str]:
        return {"smtp_host": "127.0.0.1", "smtp_port": str(self.port), "smtp_tls": self.tls}

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        with self.recorder.arrived:
            self.recorder.arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
        assert len(self.messages) >= count, f"{len(self.messages)} of {count} messages arrived"
        return self.messages


@pytest.fixture
def smtp_peer() -> Iterator[SMTPPeer]:
    peer = SMTPPeer()
    peer.controller.start()
    try:
        yield peer
    finally:
        peer.controller.stop()
