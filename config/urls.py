from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from inbox import webhooks

urlpatterns = [
    path("healthz", webhooks.healthz, name="healthz"),
    path("hooks/<str:key>/<str:endpoint>/", webhooks.webhook, name="webhook"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("customers/", include("customers.urls")),
    path("simulator/", include("connectors.urls")),
    path("twilio/", include("connectors.twilio.urls")),
    path("webchat/", include("connectors.webchat.urls")),
    path("kb/", include("inbox.triage.urls")),
    path("", include("inbox.urls")),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
