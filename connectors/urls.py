"""The simulator page; included by config/urls.py as ``path("simulator/", include("connectors.urls"))``."""

from __future__ import annotations

from django.urls import path

from connectors import views

app_name = "simulator"

urlpatterns = [
    path("", views.simulator_page, name="page"),
    path("outbox/", views.outbox, name="outbox"),
]
