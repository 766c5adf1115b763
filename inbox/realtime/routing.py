from __future__ import annotations

from django.urls import path

from inbox.realtime import consumers

websocket_urlpatterns = [
    path("ws/inbox/", consumers.OperatorConsumer.as_asgi()),
]
