"""The product's URLs plus ``/bench/trivial/``: the floor a Django view costs on the same server."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as product


@csrf_exempt
def trivial(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


urlpatterns = [path("bench/trivial/", trivial), *product]
