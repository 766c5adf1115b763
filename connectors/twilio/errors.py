"""Twilio error codes and HTTP failures, sorted into "try again" and "this will never work".

Readable reasons are shown to operators next to a failed message, so they say what happened and
what to do, not just a number. Codes from Twilio's error dictionary (docs/connectors/twilio.md, "Outbound").
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from inbox.transport import PermanentError, TransientError

OPTED_OUT = 21610
OUTSIDE_WHATSAPP_WINDOW = 63016
TOO_MANY_REQUESTS = 20429

# Codes whose cause may pass by itself: the send is retried with backoff.
TRANSIENT_CODES = frozenset({20429, 20500, 20503, 30001, 30008, 30022, 63018, 63038})


def _reasons() -> dict[int, str]:
    return {
        20003: _("Twilio refused the account credentials; check the channel's Account SID and auth token."),
        20404: _("Twilio does not know this resource; check the channel's Account SID."),
        20429: _("Twilio's API is rate limiting us; the message will be retried."),
        21211: _("The number is not a valid phone number."),
        21212: _("The channel's sending number is not valid; check from_number."),
        21408: _("Sending to this country is not enabled on the Twilio account."),
        21606: _("The channel's sending number cannot send messages to this destination."),
        21610: _("The customer replied STOP and has unsubscribed from this number."),
        21612: _("Twilio cannot route a message to this number."),
        21614: _("The number cannot receive SMS (it is probably a landline)."),
        21617: _("The message is longer than 1600 characters."),
        21619: _("The message has no text and no media."),
        21620: _("Twilio could not fetch an attachment (it must be a public URL)."),
        21655: _("Twilio does not know this template (ContentSid); check the channel's templates."),
        21660: _("The channel's sending number does not belong to this Twilio account."),
        21910: _("The sending and receiving addresses are not on the same channel (SMS vs WhatsApp)."),
        30001: _("Twilio's queue overflowed; the message will be retried."),
        30002: _("The Twilio account is suspended."),
        30003: _("The handset is unreachable (switched off or out of coverage)."),
        30004: _("The message was blocked by the recipient or their carrier."),
        30005: _("The number is unknown or no longer in service."),
        30006: _("The number is a landline or its carrier cannot receive SMS."),
        30007: _("The carrier filtered the message as spam."),
        30008: _("Delivery failed for an unknown reason."),
        30032: _("The toll-free sending number is not verified yet; Twilio blocks its messages."),
        30034: _("The message came from an unregistered US number (A2P 10DLC registration needed)."),
        63003: _("The number is not a WhatsApp user."),
        63007: _("Twilio has no WhatsApp sender for the channel's number; check from_number."),
        63016: _(
            "More than 24 hours have passed since the customer last wrote on WhatsApp; "
            "only an approved template can be sent."
        ),
        63018: _("WhatsApp's rate limit for this sender was exceeded; the message will be retried."),
        63024: _("The WhatsApp recipient is not valid."),
        63032: _("The customer has not opted in to marketing templates on WhatsApp."),
        63049: _("Meta chose not to deliver this WhatsApp marketing template to the customer."),
    }


def describe(code: int | str | None, message: str = "") -> str:
    """A sentence for operators about a Twilio error code (and Twilio's own message, if any)."""
    try:
        number = int(code) if code not in (None, "") else None
    except (TypeError, ValueError):
        number = None
    known = _reasons().get(number) if number is not None else None
    if known:
        return _("%(reason)s (Twilio error %(code)s)") % {"reason": known, "code": number}
    if number is not None:
        detail = message or _("see Twilio's error dictionary")
        return _("Twilio error %(code)s: %(detail)s") % {"code": number, "detail": detail}
    return message or _("Twilio reported a failure without a reason.")


def classify(
    *, status: int | None, code: int | str | None, message: str = "", retry_after: float | None = None
) -> TransientError | PermanentError:
    """The error to raise for a failed REST call: transient (retry) or permanent (fail with a reason)."""
    reason = describe(code, message)
    try:
        number = int(code) if code not in (None, "") else None
    except (TypeError, ValueError):
        number = None
    if status == 429 or number in TRANSIENT_CODES:
        return TransientError(reason, retry_after=retry_after)
    if status is not None and status >= 500:
        return TransientError(_("Twilio answered HTTP %(status)s: %(reason)s") % {"status": status, "reason": reason})
    return PermanentError(reason, code=str(number or status or ""))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (Twilio sends seconds); None when absent or odd."""
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 600.0))
    except ValueError:
        return None
