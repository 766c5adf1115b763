from __future__ import annotations

from django.urls import path

from api import views
from api.main import api

urlpatterns = [
    path("v1/docs/", views.docs, name="api-docs"),
    path("tokens/", views.token_settings, name="api-tokens"),
    path("tokens/<int:pk>/revoke/", views.revoke, name="api-token-revoke"),
    path("v1/", api.urls),
]
