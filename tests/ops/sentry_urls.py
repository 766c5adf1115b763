"""A URLconf for the Sentry test: one view that fails the way a bug would."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path


def broken(request: HttpRequest) -> HttpResponse:
    raise ZeroDivisionError("a bug in a view")


urlpatterns = [path("broken/", broken)]
