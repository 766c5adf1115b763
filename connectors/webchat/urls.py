"""Included by config/urls.py as ``path("webchat/", include("connectors.webchat.urls"))``."""

from __future__ import annotations

from django.urls import path, re_path

from connectors.webchat import views

app_name = "webchat"

urlpatterns = [
    re_path(r"^parley-webchat\.(?P<version>[0-9]+\.[0-9]+\.[0-9]+)\.js$", views.script, name="script"),
    path("try/", views.try_widget, name="try"),
    path("<str:key>/frames/", views.frames, name="frames"),
    path("<str:key>/poll/", views.poll, name="poll"),
    path("<str:key>/upload/", views.upload, name="upload"),
    path("<str:key>/files/<str:token>/", views.attachment, name="file"),
]
