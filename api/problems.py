"""Errors as ``application/problem+json`` (RFC 9457), with the fields that were wrong.

Every answer that is not a success is one of these::

    {"type": "https://parley.invalid/problems/validation", "title": "Invalid request", "status": 422,
     "detail": "…", "errors": [{"field": "body.text", "message": "Field required", "code": "missing"}]}

``type`` names the kind of problem (its last segment is stable: ``validation``, ``unauthorized``,
``forbidden``, ``not-found``, ``conflict``, ``rate-limited``, ``bad-request``, ``unavailable``,
``server-error``);
``detail`` is for people, in the request's language; ``errors`` lists fields for validation
problems. Views raise :class:`Problem` or one of the exceptions handled in :func:`install`.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError

from common import overload
from customers.crm import CrmConflict
from inbox.selectors.cursors import InvalidCursor
from inbox.services.conversations import ReplyRefused

if TYPE_CHECKING:
    from ninja import NinjaAPI

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://parley.invalid/problems/"
KINDS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    422: "validation",
    429: "rate-limited",
    500: "server-error",
    503: "unavailable",
}
# The error statuses every operation declares in the OpenAPI description.
ERROR_STATUSES = frozenset({400, 401, 403, 404, 409, 422, 429, 503})


class FieldError(Schema):
    field: str
    message: str
    code: str = ""


class ProblemOut(Schema):
    """An RFC 9457 problem."""

    type: str
    title: str
    status: int
    detail: str = ""
    errors: list[FieldError] = []


class Problem(Exception):
    """Raise to answer with a problem: ``raise Problem(409, _("…"))``."""

    def __init__(self, status: int, detail: str = "", *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


def _titles() -> dict[int, str]:
    return {
        400: _("Bad request"),
        401: _("Unauthorized"),
        403: _("Forbidden"),
        404: _("Not found"),
        405: _("Method not allowed"),
        409: _("Conflict"),
        422: _("Invalid request"),
        429: _("Too many requests"),
        500: _("Server error"),
        503: _("Service unavailable"),
    }


def problem_response(status: int, detail: str = "", *, errors: list[dict[str, str]] | None = None) -> HttpResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + KINDS.get(status, "error"),
        "title": _titles().get(status, _("Error")),
        "status": status,
        "detail": detail,
        "errors": errors or [],
    }
    return HttpResponse(json.dumps(body), status=status, content_type=CONTENT_TYPE)


def field_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Pydantic's errors (``loc``, ``msg``, ``type``) as ``field``/``message``/``code``."""
    out = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        if len(location) >= 3 and location[0] in {"body", "query"}:
            location.pop(1)  # the view's parameter name (``payload``): not the client's business
        out.append(
            {
                "field": ".".join(location) or "body",
                "message": str(error.get("msg", "")),
                "code": str(error.get("type", "")),
            }
        )
    return out


def install(api: NinjaAPI) -> None:
    """Answer every error of ``api`` as a problem."""

    def validation(request: HttpRequest, exc: Any) -> HttpResponse:
        return problem_response(422, _("Some fields are not valid."), errors=field_errors(list(exc.errors)))

    def unauthorized(request: HttpRequest, exc: Any) -> HttpResponse:
        response = problem_response(401, _("Send a valid API token: Authorization: Bearer parley_…"))
        response["WWW-Authenticate"] = 'Bearer realm="parley"'
        return response

    def http_error(request: HttpRequest, exc: Any) -> HttpResponse:
        # Ninja's own errors: an unreadable body (400), the rate limit (429, Retry-After set by ninja).
        detail = _("Slow down: this token sent too many requests.") if exc.status_code == 429 else str(exc)
        return problem_response(exc.status_code, detail)

    def problem(request: HttpRequest, exc: Any) -> HttpResponse:
        return problem_response(exc.status, exc.detail, errors=exc.errors)

    def not_found(request: HttpRequest, exc: Any) -> HttpResponse:
        return problem_response(404, _("No such object, or not one this token may see."))

    def forbidden(request: HttpRequest, exc: Any) -> HttpResponse:
        return problem_response(403, str(exc) or _("This token may not do that."))

    def refused(request: HttpRequest, exc: Any) -> HttpResponse:
        return problem_response(409, exc.reason)

    def bad_cursor(request: HttpRequest, exc: Any) -> HttpResponse:
        return problem_response(400, _("Unknown cursor: pass back a next_cursor exactly as it came."))

    def invalid(request: HttpRequest, exc: Any) -> HttpResponse:
        # A service's ValidationError that no view turned into a problem of its own.
        errors = [
            {"field": f"body.{key}", "message": str(message), "code": "invalid"}
            for key, messages in getattr(exc, "message_dict", {"body": exc.messages}).items()
            for message in messages
        ]
        return problem_response(
            409 if isinstance(exc, CrmConflict) else 422, _("Some fields are not valid."), errors=errors
        )

    def server_error(request: HttpRequest, exc: Any) -> HttpResponse:
        if overload.is_overload(exc):  # no database connection to be had: retry, not a bug (common/overload.py)
            overload.log_overload(request, exc)
            response = problem_response(503, _("The server is busy; try again in a few seconds."))
            response["Retry-After"] = str(overload.RETRY_AFTER)
            return response
        logger.exception("API error on %s %s", request.method, request.path, exc_info=exc)
        return problem_response(500, _("Something went wrong on our side; it was logged."))

    api.add_exception_handler(Exception, server_error)
    api.add_exception_handler(ValidationError, validation)
    api.add_exception_handler(AuthenticationError, unauthorized)
    api.add_exception_handler(HttpError, http_error)
    api.add_exception_handler(Problem, problem)
    api.add_exception_handler(Http404, not_found)
    api.add_exception_handler(ObjectDoesNotExist, not_found)
    api.add_exception_handler(PermissionDenied, forbidden)
    api.add_exception_handler(ReplyRefused, refused)
    api.add_exception_handler(InvalidCursor, bad_cursor)
    api.add_exception_handler(DjangoValidationError, invalid)


def declared(*extra: int) -> dict[frozenset[int], type[ProblemOut]]:
    """The problem responses an operation declares (``response={200: Out, **declared()}`` cannot
    take a frozenset key, so callers merge: ``{200: Out} | declared()``)."""
    return {ERROR_STATUSES | frozenset(extra): ProblemOut}


def reject_unknown_query(request: HttpRequest, schema: type[Schema]) -> None:
    """A 422 naming every query parameter the operation does not know (``?stauts=open`` is a typo
    to report, not a filter to drop silently)."""
    known = {field.alias or name for name, field in schema.model_fields.items()}
    unknown = sorted(set(request.GET) - known)
    if unknown:
        raise Problem(
            422,
            _("Unknown query parameters: %(names)s.") % {"names": ", ".join(unknown)},
            errors=[
                {"field": f"query.{name}", "message": _("Unknown parameter."), "code": "unknown"} for name in unknown
            ],
        )
