from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from inbox.urls import customer_urls
from inbox.views import webhooks

urlpatterns = [
    path("healthz", webhooks.healthz, name="healthz"),
    path("", include("ops.urls")),
    path("hooks/<str:key>/<str:endpoint>/", webhooks.webhook, name="webhook"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("audit/", include("audit.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("customers/", include(customer_urls)),
    path("simulator/", include("connectors.urls")),
    path("twilio/", include("connectors.twilio.urls")),
    path("webchat/", include("connectors.webchat.urls")),
    path("reports/", include("reports.urls")),
    path("desk/", include("desk.urls")),
    path("csat/", include("desk.public_urls")),
    path("", include("bot.urls")),
    path("", include("inbox.urls")),
]

# No URL serves MEDIA_ROOT (attachments), not even with DEBUG: files leave only through the
# access-checked attachment view and the Twilio media link, under inbox.files' policy.
