"""Realtime: operators' browsers see every change as it happens, over one websocket each.

``groups`` names the channel layer's groups; ``publish`` is the only module that broadcasts (always
after commit); ``consumers`` holds the operator's socket, which turns events into htmx fragments;
``routing`` its URL; ``access`` tells open sockets when what an operator may see changes.
"""

from __future__ import annotations
