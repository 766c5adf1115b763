"""ASGI entry point: HTTP goes to Django (webhooks to a lean handler), websockets to authenticated,
origin-checked consumers."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

if settings.SERVE_STATIC:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from inbox.realtime.routing import websocket_urlpatterns  # noqa: E402
from inbox.views.webhooks import LeanWebhooks  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Providers' webhooks skip the middleware stack (see inbox.views.webhooks); the rest is Django's.
        "http": LeanWebhooks(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
