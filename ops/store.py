"""Where the operations numbers live across processes: Redis, through one small client per process.

Web processes, workers and the scheduler may run on several machines; what one of them counts must
be readable by whichever web process answers the scrape. Redis is the one thing they all share that
is cheap to write to (a database write per webhook would cost more than the webhook). Every call
here fails fast (short timeouts) and callers treat Redis being down as "no numbers", never as an
error of the request they serve.
"""

from __future__ import annotations

import os
import threading

import redis
from django.conf import settings

from common import redisconn

TIMEOUT_SECONDS = 0.5

_lock = threading.Lock()
_clients: dict[int, redis.Redis] = {}


def client() -> redis.Redis:
    """This process's client (a forked worker makes its own: a connection must not cross a fork)."""
    pid = os.getpid()
    with _lock:
        found = _clients.get(pid)
        if found is None:
            found = redisconn.client(socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS)
            _clients.clear()
            _clients[pid] = found
        return found


def key(name: str) -> str:
    """A Redis key of ours, apart from other installations sharing the server (the channel prefix)."""
    return f"{settings.PARLEY_CHANNEL_PREFIX}:ops:{name}"
