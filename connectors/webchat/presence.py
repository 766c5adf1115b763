"""Who has the widget open: sockets per network address (capped) and per visitor (for the email fallback).

Counted in Redis, shared by every web process: a socket adds one when it opens and takes it back
when it closes. A process that dies without closing its sockets leaves its counts behind; every key
expires ``COUNT_TTL`` after its last change, so such a leftover at worst delays an email fallback
(the reply then goes after ``email_after_minutes`` instead of at once) or holds one address's
sockets below the cap for that long. A visitor on the HTTP fallback counts as here while they poll.
"""

from __future__ import annotations

from django.conf import settings

from connectors.webchat.ratelimit import aclient, client, key_prefix

COUNT_TTL = 2 * 3600  # seconds a count outlives its last change
POLL_TTL = 60  # a long poll lasts 25 s: a visitor who has not polled for a minute is gone

# Close code of a socket over the per-address cap (4000-4999: the application's own).
TOO_MANY_SOCKETS = 4429


def _address_key(channel_id: int, address: str) -> str:
    return f"{key_prefix()}:sock:a:{channel_id}:{address}"


def _visitor_key(channel_id: int, visitor: str) -> str:
    return f"{key_prefix()}:sock:v:{channel_id}:{visitor}"


def _poll_key(channel_id: int, visitor: str) -> str:
    return f"{key_prefix()}:poll:{channel_id}:{visitor}"


def sockets_per_address() -> int:
    return int(settings.PARLEY_WEBCHAT_SOCKETS_PER_ADDRESS)


async def open_socket(channel_id: int, address: str) -> bool:
    """Count a new socket of ``address`` on the channel; False (and not counted) past the cap."""
    key = _address_key(channel_id, address)
    async with aclient().pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, COUNT_TTL)
        count = int((await pipe.execute())[0])
    if count > sockets_per_address():
        await aclient().decr(key)
        return False
    return True


async def close_socket(channel_id: int, address: str) -> None:
    await _decrement(_address_key(channel_id, address))


async def visitor_here(channel_id: int, visitor: str) -> None:
    key = _visitor_key(channel_id, visitor)
    async with aclient().pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, COUNT_TTL)
        await pipe.execute()


async def visitor_left(channel_id: int, visitor: str) -> None:
    await _decrement(_visitor_key(channel_id, visitor))


async def polled(channel_id: int, visitor: str) -> None:
    await aclient().set(_poll_key(channel_id, visitor), 1, ex=POLL_TTL)


async def _decrement(key: str) -> None:
    async with aclient().pipeline() as pipe:
        pipe.decr(key)
        pipe.expire(key, COUNT_TTL)
        left = int((await pipe.execute())[0])
    if left <= 0:
        await aclient().delete(key)


def visitor_connected(channel_id: int, visitor: str) -> bool:
    """Whether any tab of the visitor holds a socket (or polls) on the channel now."""
    sockets, poll = client().mget([_visitor_key(channel_id, visitor), _poll_key(channel_id, visitor)])
    return int(sockets or 0) > 0 or poll is not None
