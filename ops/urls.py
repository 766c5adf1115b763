from __future__ import annotations

from django.urls import path

from ops import views

urlpatterns = [
    path("metrics", views.metrics_view, name="metrics"),
    path("healthz/deep", views.deep_health, name="healthz-deep"),
]
