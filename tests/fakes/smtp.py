"""An SMTP peer on a free loopback port (aiosmtpd) that records what it is given.

``reply_with`` makes it refuse the next messages with a given SMTP reply (``"451 4.3.0 try later"``,
``"550 5.1.1 no such user"``), so error mapping is tested against a real SMTP conversation.

With a server certificate (:mod:`tests.fakes.tls`) it speaks TLS: ``tls="starttls"`` offers STARTTLS
and refuses mail before it, ``tls="ssl"`` is implicit TLS from the first byte.

With an OAuth provider (:func:`smtp_oauth_peer`, :mod:`tests.fakes.oauth`) it offers ``AUTH XOAUTH2``
only, refuses mail until a client logged in, and takes a bearer token only while the provider says it
is live and belongs to the user who logs in; a refused token gets Gmail's answer (a ``334`` challenge
carrying the JSON error, the client's empty line, then ``535``).
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

import pytest

from tests.fakes.oauth import FakeOAuth
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


@dataclass
class OAuthRecorder(Recorder):
    """A peer that takes mail only after ``AUTH XOAUTH2`` with a token the provider vouches for."""

    oauth: FakeOAuth | None = None
    # (user, accepted) for every XOAUTH2 attempt, in order.
    logins: list[tuple[str, bool]] = field(default_factory=list)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: Any) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication Required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:
        from aiosmtpd.smtp import MISSING, AuthResult

        assert self.oauth is not None
        if len(args) == 2:
            blob = base64.b64decode(args[1])
        else:  # no initial response: ask for it
            answer = await server.challenge_auth("")
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
            blob = answer
        fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        accepted = bool(user) and self.oauth.user_of(token) == user
        self.logins.append((user, accepted))
        if accepted:
            return AuthResult(success=True, auth_data=user)
        error = json.dumps({"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"})
        await server.challenge_auth(error)  # the client answers with an empty line
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted.")


class SMTPPeer:
    def __init__(
        self,
        *,
        tls: Literal["none", "starttls", "ssl"] = "none",
        cert: ServerCert | None = None,
        oauth: FakeOAuth | None = None,
    ) -> None:
        from aiosmtpd.controller import Controller

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.tls = tls
        self.recorder = Recorder() if oauth is None else OAuthRecorder(oauth=oauth)
        assert (tls == "none") == (cert is None), "TLS needs a server certificate, plain text none"
        options: dict[str, Any] = {}
        if oauth is not None:
            # Only the bearer mechanism, and on loopback without TLS (the token is the test's own).
            options = {"auth_require_tls": False, "auth_exclude_mechanism": ["PLAIN", "LOGIN"]}
        if tls == "starttls" and cert is not None:
            options |= {"tls_context": cert.server_context(), "require_starttls": True}
        elif tls == "ssl" and cert is not None:
            options |= {"ssl_context": cert.server_context()}
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port, **options)

    @property
    def messages(self) -> list[Received]:
        return self.recorder.messages

    @property
    def logins(self) -> list[tuple[str, bool]]:
        """Every XOAUTH2 attempt as (user, accepted)."""
        assert isinstance(self.recorder, OAuthRecorder)
        return self.recorder.logins

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


@pytest.fixture
def smtp_oauth_peer(oauth: FakeOAuth) -> Iterator[SMTPPeer]:
    """An SMTP peer that takes mail only after ``AUTH XOAUTH2`` with a live token from ``oauth``."""
    peer = SMTPPeer(oauth=oauth)
    peer.controller.start()
    try:
        yield peer
    finally:
        peer.controller.stop()
