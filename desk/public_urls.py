"""The public pages of the manager's tools: the satisfaction survey's signed email link (no login)."""

from __future__ import annotations

from django.urls import path

from desk import views

app_name = "csat"

urlpatterns = [
    path("<str:token>/", views.csat_answer, name="answer"),
]
