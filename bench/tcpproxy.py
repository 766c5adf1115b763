"""A TCP proxy to cut on purpose: what PostgreSQL or Redis "going away" looks like to Parley.

The machine's PostgreSQL (and often its Redis) are shared with other work, so the fault bench and
the reliability tests never stop them. They put this proxy in front instead and point Parley's
``DATABASE_URL`` / ``REDIS_URL`` at it: :meth:`TcpProxy.cut` closes the listening socket and every
open connection (new connections are refused, as with a stopped server; open ones see a reset, as
with a restart), :meth:`TcpProxy.restore` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator


class TcpProxy:
    """Forward ``127.0.0.1:port`` to ``target``; runs its own event loop in a daemon thread."""

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port or _free_port()
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        threading.Thread(target=self.loop.run_forever, name="tcpproxy", daemon=True).start()

    @property
    def up(self) -> bool:
        return self.server is not None

    def restore(self) -> TcpProxy:
        """Listen (again) on ``port``."""
        return self._call(self._listen())

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        self._call(self._cut())

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)

    def _call(self, coroutine: object) -> TcpProxy:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)  # type: ignore[arg-type]
        return self

    async def _listen(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()
        for writer in list(self.writers):
            with contextlib.suppress(Exception):
                transport = writer.transport
                sock = transport.get_extra_info("socket")
                if sock is not None:  # a reset, not a polite FIN: what a killed server gives
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                transport.abort()
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self.writers.update((writer, up_writer))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)
        self.writers.difference_update((writer, up_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def proxy_to(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    """A listening proxy for the ``with`` block; closed after it."""
    proxy = TcpProxy(target_host, target_port).restore()
    try:
        yield proxy
    finally:
        proxy.close()
