"""Graph API errors sorted into "try again", "this will never work" and "the channel needs fixing".

A Graph API error answers ``{"error": {"message", "type", "code", "error_subcode", "error_data":
{"details"}, "fbtrace_id"}}`` (WhatsApp puts the same fields in a failed status's ``errors[]``).
Reasons are shown to operators next to a failed message, so they say what happened and what to do.
Codes: docs/connectors/meta.md ("Errors").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext as _

from inbox.transport import ConfigurationError, PermanentError, TransientError

RE_ENGAGEMENT = 131047
INVALID_TOKEN = 190
OUTSIDE_WINDOW_SUBCODE = 2018278

# Rate limits and outages: the send is retried with backoff (honouring any hint Meta gives).
TRANSIENT_CODES = frozenset(
    {
        1,  # API unknown
        2,  # API service: temporarily unavailable
        4,  # application request limit reached
        17,  # user request limit reached
        32,  # page request limit reached
        613,  # calls within one hour exceeded
        80007,  # WhatsApp Business Account rate limit
        130429,  # WhatsApp Cloud API throughput reached
        131000,  # something went wrong
        131016,  # service unavailable
        131048,  # spam rate limit hit
        131056,  # pair rate limit: too many messages to the same user
        133004,  # server temporarily unavailable
        1200,  # Messenger: temporary send message failure
        2022,  # Messenger: too many sends
    }
)
# The channel's credentials or permissions are wrong: every send fails until an admin fixes them.
CONFIGURATION_CODES = frozenset({INVALID_TOKEN, 3, 10, 102, 200, 230, 131031, 131045, 133010})


def _reasons() -> dict[int, str]:
    return {
        4: _("Meta's rate limit for the app was reached; the message will be retried."),
        17: _("Meta's rate limit for the account was reached; the message will be retried."),
        32: _("Meta's rate limit for the Page was reached; the message will be retried."),
        613: _("Meta's rate limit was reached; the message will be retried."),
        80007: _("The WhatsApp Business Account's rate limit was reached; the message will be retried."),
        130429: _("WhatsApp's throughput limit for this number was reached; the message will be retried."),
        131056: _("Too many messages to this customer in a short time; the message will be retried."),
        131048: _("WhatsApp limited this number for spam; the message will be retried."),
        INVALID_TOKEN: _(
            "Meta refused the channel's access token (invalid or expired); update it in the channel's settings."
        ),
        10: _("The Meta app lacks a permission this message needs; check the app's permissions."),
        200: _("The Meta app lacks a permission this message needs; check the app's permissions."),
        230: _("The Page has not granted the pages_messaging permission to the app."),
        131031: _("The WhatsApp Business Account is locked."),
        131045: _("The WhatsApp number's certificate is not valid; register the number again."),
        133010: _("The WhatsApp number is not registered with the Cloud API."),
        RE_ENGAGEMENT: _(
            "More than 24 hours have passed since the customer last wrote on WhatsApp; "
            "only an approved template can be sent."
        ),
        131026: _(
            "WhatsApp could not deliver the message: the number is not on WhatsApp, has blocked this business, "
            "or uses an app too old to receive it."
        ),
        131049: _("Meta chose not to deliver this marketing template to the customer now."),
        131050: _("The customer stopped marketing messages from this business."),
        131051: _("WhatsApp does not support this kind of message."),
        131052: _("WhatsApp could not download the customer's media."),
        131053: _("WhatsApp could not use the attachment (its type or size is not accepted)."),
        131021: _("The recipient is the sending number itself."),
        131030: _("The number is not on the test number's list of allowed recipients."),
        131008: _("A required parameter is missing from the message."),
        131009: _("A parameter of the message is not valid."),
        132000: _("The template's variables do not match the approved template."),
        132001: _("WhatsApp does not know this template in this language; sync the templates again."),
        132005: _("The template's text with its variables is too long."),
        132007: _("The template's text breaks WhatsApp's formatting policy."),
        132012: _("A template variable has the wrong format."),
        132015: _("The template is paused for low quality."),
        132016: _("The template was disabled for low quality."),
        368: _("The WhatsApp number is temporarily blocked for policy violations."),
        551: _("The customer is not available on Messenger now (they blocked the Page or deactivated)."),
        100: _("Meta refused a parameter of the message."),
    }


def _subcode_reasons() -> dict[int, str]:
    return {
        OUTSIDE_WINDOW_SUBCODE: _(
            "More than 24 hours have passed since the customer last wrote; Meta only allows a tagged message now."
        ),
        1545041: _("The customer is not available on Messenger now (they blocked the Page or deactivated)."),
        2018001: _("Meta knows no such user for this Page."),
        2018108: _("The customer cannot be reached from this Page."),
        2534022: _("The customer is outside the window in which Instagram allows a reply."),
    }


def describe(code: Any, message: str = "", *, subcode: Any = None, details: str = "") -> str:
    """A sentence for operators about a Graph API error (and Meta's own words, if any)."""
    number, sub = _int(code), _int(subcode)
    known = _subcode_reasons().get(sub) if sub is not None else None
    known = known or (_reasons().get(number) if number is not None else None)
    if known:
        return _("%(reason)s (Meta error %(code)s)") % {"reason": known, "code": number}
    detail = details or message or _("no reason given")
    if number is not None:
        return _("Meta error %(code)s: %(detail)s") % {"code": number, "detail": detail}
    return detail


def classify(
    *, status: int | None, error: Mapping[str, Any] | None, retry_after: float | None = None
) -> TransientError | PermanentError | ConfigurationError:
    """The error to raise for a failed Graph API call."""
    error = error or {}
    code, subcode = _int(error.get("code")), _int(error.get("error_subcode"))
    data = error.get("error_data")
    details = str(data.get("details", "")) if isinstance(data, Mapping) else ""
    reason = describe(code, str(error.get("message", "")), subcode=subcode, details=details)
    if code in CONFIGURATION_CODES and subcode not in _subcode_reasons():
        return ConfigurationError(reason)
    if status == 429 or code in TRANSIENT_CODES or error.get("is_transient") is True:
        return TransientError(reason, retry_after=retry_after)
    if status is not None and status >= 500:
        return TransientError(_("Meta answered HTTP %(status)s: %(reason)s") % {"status": status, "reason": reason})
    return PermanentError(reason, code=str(code or status or ""))


def retry_hint(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``Retry-After``, else from the Business Use Case usage header's
    ``estimated_time_to_regain_access`` (minutes); None when neither says. Capped at 10 minutes."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value:
        try:
            return max(0.0, min(float(value), 600.0))
        except ValueError:
            pass
    usage = headers.get("x-business-use-case-usage") or headers.get("X-Business-Use-Case-Usage")
    if usage:
        try:
            parsed = json.loads(usage)
        except ValueError:
            return None
        minutes = [
            float(item.get("estimated_time_to_regain_access") or 0)
            for items in (parsed.values() if isinstance(parsed, dict) else [])
            if isinstance(items, list)
            for item in items
            if isinstance(item, dict)
        ]
        if minutes and max(minutes) > 0:
            return min(max(minutes) * 60.0, 600.0)
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
