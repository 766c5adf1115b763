from __future__ import annotations

from django.urls import path

from connectors.webchat import consumers

websocket_urlpatterns = [
    path("ws/webchat/<str:key>/", consumers.WebchatConsumer.as_asgi()),
]
