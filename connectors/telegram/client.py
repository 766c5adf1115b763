"""A thin Bot API client over httpx (docs/connectors/telegram.md, "Protocol facts").

Every method is ``POST <base>/bot<token>/<method>`` with a JSON body (or multipart for uploads);
Telegram answers ``{"ok": true, "result": …}`` or ``{"ok": false, "error_code": …, "description":
…, "parameters": {"retry_after": N}}``. The base URL is a channel setting so tests point it at a
local stand-in; nothing here knows about Django.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

API_BASE_URL = "https://api.telegram.org"


@dataclass
class ApiError(Exception):
    """Telegram answered ``ok: false`` (or not JSON, or not at all: ``error_code`` 0)."""

    error_code: int
    description: str
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.error_code} {self.description}"


class BotApi:
    def __init__(self, *, token: str, base_url: str = API_BASE_URL, timeout: float = 10.0) -> None:
        self.token = token
        self.base_url = (base_url or API_BASE_URL).rstrip("/")
        self.timeout = timeout

    def method_url(self, method: str) -> str:
        return f"{self.base_url}/bot{self.token}/{method}"

    def file_url(self, file_path: str) -> str:
        return f"{self.base_url}/file/bot{self.token}/{file_path}"

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call a Bot API method and return its ``result``; raises :class:`ApiError`.

        With ``files`` the call is multipart, and nested parameters (``reply_markup``) are
        JSON-encoded form fields, as the Bot API expects.
        """
        try:
            with httpx.Client(timeout=timeout or self.timeout) as http:
                if files:
                    data = {
                        key: json.dumps(value) if isinstance(value, (dict, list)) else str(value)
                        for key, value in (params or {}).items()
                        if value is not None
                    }
                    response = http.post(self.method_url(method), data=data, files=files)
                else:
                    response = http.post(self.method_url(method), json=params or {})
        except httpx.TimeoutException as exc:
            raise ApiError(0, f"timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise ApiError(0, f"unreachable ({type(exc).__name__})") from exc
        try:
            payload = response.json()
        except ValueError:
            raise ApiError(response.status_code or 0, f"HTTP {response.status_code}, not JSON") from None
        if not isinstance(payload, dict):
            raise ApiError(response.status_code, "the answer is not a JSON object")
        if payload.get("ok") is True:
            return payload.get("result")
        parameters = payload.get("parameters") or {}
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        raise ApiError(
            int(payload.get("error_code") or response.status_code or 0),
            str(payload.get("description") or f"HTTP {response.status_code}"),
            float(retry_after) if isinstance(retry_after, (int, float)) else None,
        )
