"""ASGI entry point: HTTP goes to Django (webhooks to a lean handler), websockets to authenticated,
origin-checked consumers. The website chat's sockets come from the sites that embed it: they skip
the host and session checks, and its consumer checks the channel's own allowed origins."""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

from common.asgi import SyncViews  # noqa: E402

# A sync view's request runs in one thread; an async view's (the website chat's long poll) in Django's handler.
django_asgi_app = SyncViews(fallback=django_asgi_app)

if settings.SERVE_STATIC:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from connectors.webchat.routing import websocket_urlpatterns as webchat_urlpatterns  # noqa: E402
from inbox.realtime.routing import websocket_urlpatterns  # noqa: E402
from inbox.views.webhooks import LeanWebhooks  # noqa: E402
from ops.requestid import RequestIdASGI  # noqa: E402
from ops.sockets import CountedSockets  # noqa: E402

operators = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
webchat = URLRouter(webchat_urlpatterns)


async def websockets(scope: dict[str, Any], receive: Any, send: Any) -> None:
    app = webchat if scope["path"].startswith("/ws/webchat/") else operators
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        # Providers' webhooks skip the middleware stack (see inbox.views.webhooks); the rest is Django's.
        # Every HTTP request gets its id around both (ops.requestid); open sockets are counted (ops.sockets).
        "http": RequestIdASGI(LeanWebhooks(django_asgi_app)),
        "websocket": CountedSockets(websockets),
    }
)
