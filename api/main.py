"""The API: ``/api/v1/``, its OpenAPI description at ``/api/v1/openapi.json`` (docs/api.md).

Built on django-ninja: pydantic schemas validate input and describe output, and the OpenAPI 3
description is generated from the same code, so it cannot drift from what the API does. Every
operation requires a token (:class:`api.auth.BearerToken`) and counts against its rate limit
(:class:`api.throttle.TokenRateThrottle`); every error is a problem (:mod:`api.problems`).
"""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI
from ninja.operation import Operation

from api import problems
from api.auth import BearerToken
from api.endpoints import conversations, customers, directory, knowledge, reports
from api.throttle import TokenRateThrottle

DESCRIPTION = """Parley's REST API: conversations, messages, customers, teams, operators, channels,
saved replies, the knowledge base and reports, with exactly the visibility of the token's operator
in the inbox. Authenticate with `Authorization: Bearer parley_…`; errors are
`application/problem+json`. The guide: docs/api.md in the repository."""


class ParleyAPI(NinjaAPI):
    """Ninja's API, whose description says that errors are ``application/problem+json``."""

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(*args, **kwargs)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for status, answer in operation.get("responses", {}).items():
                    content = answer.get("content", {})
                    if int(status) >= 400 and "application/json" in content:
                        content[problems.CONTENT_TYPE] = content.pop("application/json")
        return schema

    def get_openapi_operation_id(self, operation: Operation) -> str:
        """The view's name (``list_conversations``): stable, and what client generators name methods by."""
        return str(operation.view_func.__name__)


api = ParleyAPI(
    title="Parley API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api-v1",
    auth=BearerToken(),
    throttle=TokenRateThrottle(),
    docs_url=None,  # our own page (api/views.py): vendored Swagger UI under the project's CSP
    openapi_url="/openapi.json",
)
problems.install(api)
api.add_router("", conversations.router)
api.add_router("", customers.router)
api.add_router("", directory.router)
api.add_router("", knowledge.router)
api.add_router("", reports.router)
