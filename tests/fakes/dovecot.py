"""A real Dovecot (IMAP + LMTP) on free loopback ports, in a temp dir, for one test session.

Any user ``<name>@example.test`` logs in with :data:`PASSWORD` and gets a fresh Maildir, so each test
takes its own mailbox (:meth:`Dovecot.new_mailbox`) and never sees another test's mail. Mail is
delivered the way an MTA hands it over, through LMTP. Skips the tests when Dovecot is not installed
(``scripts/install-test-deps`` installs it).

:func:`dovecot_tls` is a second instance with a certificate from the session's test CA
(:mod:`tests.fakes.tls`): implicit TLS on :attr:`Dovecot.imaps_port`, STARTTLS on the plain port.
:func:`dovecot_oauth` is a third that also accepts XOAUTH2, checking bearer tokens against the fake
OAuth provider (:mod:`tests.fakes.oauth`) with Dovecot's own ``oauth2`` passdb.
"""

from __future__ import annotations

import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.fakes.oauth import FakeOAuth
from tests.fakes.tls import CA, LOOPBACK, ServerCert

PASSWORD = "s3cret"
DOMAIN = "example.test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Dovecot:
    def __init__(self, root: Path, *, tls: ServerCert | None = None, introspection_url: str = "") -> None:
        self.root = root
        self.tls = tls
        self.introspection_url = introspection_url
        self.imap_port = _free_port()
        self.imaps_port = _free_port() if tls else 0
        self.lmtp_port = _free_port()
        self.config = root / "dovecot.conf"

    def start(self) -> None:
        for name in ("run", "state", "mail"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        shutil.chown(self.root / "mail", "nobody", "nogroup")
        tls_config = f"ssl = yes\nssl_cert = <{self.tls.cert}\nssl_key = <{self.tls.key}" if self.tls else "ssl = no"
        mechanisms, oauth2_passdb, static_mechanisms = "plain login", "", ""
        if self.introspection_url:
            # Bearer tokens (XOAUTH2, OAUTHBEARER) are checked with the provider's introspection
            # endpoint (RFC 7662): the token must be active and belong to the user who logs in.
            oauth2_config = self.root / "dovecot-oauth2.conf.ext"
            oauth2_config.write_text(
                f"introspection_mode = post\n"
                f"introspection_url = {self.introspection_url}\n"
                "force_introspection = yes\n"
                "username_attribute = username\n"
                "active_attribute = active\n"
                "active_value = true\n",
                encoding="utf-8",
            )
            mechanisms = "plain login xoauth2 oauthbearer"
            oauth2_passdb = (
                f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {oauth2_config}\n}}"
            )
            # The test password is for the helpers' PLAIN logins only, never taken as a token.
            static_mechanisms = "mechanisms = plain login"
            # Refused tokens are part of these tests: no growing delay for loopback after each one.
            oauth2_passdb += "\nservice anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}"
        self.config.write_text(
            f"""
base_dir = {self.root}/run
state_dir = {self.root}/state
instance_name = parley-test-{self.imap_port}
protocols = imap lmtp
listen = 127.0.0.1
{tls_config}
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
log_path = {self.root}/dovecot.log
mail_location = maildir:~/Maildir
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
# Tests and benches need no durability from the peer: fsync per delivered mail is the slow part.
mail_fsync = never
{oauth2_passdb}
passdb {{
  driver = static
  args = password={PASSWORD}
  {static_mechanisms}
}}
# Every user exists (no passdb is asked: the oauth2 one cannot answer a lookup without a token).
userdb {{
  driver = static
  args = allow_all_users=yes home={self.root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
protocol lmtp {{
  postmaster_address = postmaster@{DOMAIN}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
""",
            encoding="utf-8",
        )
        # The daemon keeps inherited pipes open: give it no pipes to wait on.
        subprocess.run(
            ["dovecot", "-c", str(self.config)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                smtplib.LMTP("127.0.0.1", self.lmtp_port).quit()
                for port in (self.imap_port, self.imaps_port) if self.tls else (self.imap_port,):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not start:\n" + self.log())

    def stop(self) -> None:
        subprocess.run(
            ["dovecot", "-c", str(self.config), "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def logins(self, address: str) -> list[str]:
        """The SASL mechanism of every successful IMAP login of ``address``, in order (from the log)."""
        import re

        path = self.root / "dovecot.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return re.findall(rf"imap-login: Info: Login: user=<{re.escape(address)}>, method=([A-Z0-9-]+)", text)

    # -- helpers for tests -------------------------------------------------------------------

    def new_mailbox(self) -> str:
        """A fresh, empty mailbox address of its own."""
        return f"support-{uuid.uuid4().hex[:10]}@{DOMAIN}"

    def channel_settings(self, address: str, **extra: str) -> dict[str, str]:
        return {
            "address": address,
            "imap_host": "127.0.0.1",
            "imap_port": str(self.imap_port),
            "imap_user": address,
            "imap_password": PASSWORD,
            "imap_tls": "none",
            **extra,
        }

    def deliver(self, raw: bytes | EmailMessage, *, to: str, sender: str = "sender@customer.test") -> None:
        """Deliver one message into ``to``'s INBOX through LMTP, as an MTA would."""
        data = raw.as_bytes() if isinstance(raw, EmailMessage) else raw
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
            refused = lmtp.sendmail(sender, [to], data)
        assert not refused, refused

    def deliver_many(self, messages: list[bytes], *, to: str, sender: str = "sender@customer.test") -> None:
        """Many messages over one LMTP session (for big mailboxes)."""
        lmtp = smtplib.LMTP("127.0.0.1", self.lmtp_port)
        try:
            for data in messages:
                lmtp.sendmail(sender, [to], data)
        finally:
            lmtp.quit()

    def drop_into_maildir(self, messages: list[bytes], *, to: str) -> None:
        """Many messages at once, written as Maildir files the way a local delivery agent does.

        LMTP costs a round trip and an index update per message; for a 10 000-message mailbox
        the files are dropped into ``new/`` and Dovecot indexes them on the next SELECT.
        """
        import os

        uid, gid = self._nobody
        home = self.root / "mail" / to
        for path in (home, home / "Maildir", *(home / "Maildir" / sub for sub in ("cur", "new", "tmp"))):
            path.mkdir(exist_ok=True)
            os.chown(path, uid, gid)
        new = home / "Maildir" / "new"
        stamp = int(time.time())
        for n, data in enumerate(messages):
            path = new / f"{stamp}.M{n}P{os.getpid()}.parley,S={len(data)}"
            path.write_bytes(data)
            os.chown(path, uid, gid)

    def message_files(self, address: str) -> list[Path]:
        """The Maildir files of ``address``'s INBOX, oldest delivery first."""
        import re

        def delivered(path: Path) -> tuple[int, int, str]:
            # Maildir names start "<seconds>.M<microseconds>P<pid>": the microseconds are not padded.
            match = re.match(r"(\d+)\.M(\d+)", path.name)
            return (int(match.group(1)), int(match.group(2)), path.name) if match else (0, 0, path.name)

        maildir = self.root / "mail" / address / "Maildir"
        return sorted([*maildir.glob("new/*"), *maildir.glob("cur/*")], key=delivered)

    @property
    def _nobody(self) -> tuple[int, int]:
        import grp
        import pwd

        return pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid

    def change_uidvalidity(self, address: str, folder: str = "INBOX") -> int:
        """Give a folder a new UIDVALIDITY (as a restored backup or a rebuilt index does); returns it."""
        import imaplib

        current = self.status(address, folder)["UIDVALIDITY"]
        new = current + 1000
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        subprocess.run(
            [doveadm, "-c", str(self.config), "mailbox", "update", "-u", address, "--uid-validity", str(new), folder],
            check=True,
            capture_output=True,
        )
        assert self.status(address, folder)["UIDVALIDITY"] == new, imaplib
        return new

    def status(self, address: str, folder: str = "INBOX") -> dict[str, int]:
        from imapclient import IMAPClient

        with IMAPClient("127.0.0.1", port=self.imap_port, ssl=False) as client:
            client.login(address, PASSWORD)
            if not client.folder_exists(folder):
                return {}
            values = client.folder_status(folder, ["MESSAGES", "UIDVALIDITY", "UIDNEXT", "UNSEEN"])
        return {k.decode(): int(v) for k, v in values.items()}

    def flags(self, address: str, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        from imapclient import IMAPClient

        with IMAPClient("127.0.0.1", port=self.imap_port, ssl=False) as client:
            client.login(address, PASSWORD)
            client.select_folder(folder, readonly=True)
            return {uid: data[b"FLAGS"] for uid, data in client.fetch(client.search(), ["FLAGS"]).items()}


def _running(tls: ServerCert | None = None, introspection_url: str = "") -> Iterator[Dovecot]:
    if shutil.which("dovecot") is None:
        pytest.skip("Dovecot is not installed (scripts/install-test-deps installs it)")
    root = Path(tempfile.mkdtemp(prefix="parley-dovecot-"))
    server = Dovecot(root, tls=tls, introspection_url=introspection_url)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    yield from _running()


@pytest.fixture(scope="session")
def dovecot_tls(tls_ca: CA) -> Iterator[Dovecot]:
    """Dovecot with ``ssl = yes``: IMAPS on ``imaps_port``, STARTTLS offered on ``imap_port``."""
    yield from _running(tls_ca.issue(*LOOPBACK))


@pytest.fixture(scope="session")
def dovecot_oauth(oauth_server: FakeOAuth) -> Iterator[Dovecot]:
    """Dovecot that also takes XOAUTH2/OAUTHBEARER: its ``oauth2`` passdb asks the fake provider's
    introspection endpoint whether a bearer token is live and whose it is (PLAIN still works for
    the helpers)."""
    yield from _running(introspection_url=oauth_server.introspection_url)
