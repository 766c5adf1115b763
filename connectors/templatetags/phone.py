"""``{% softphone %}``: the operator's browser phone, rendered only when they have a voice line.

Operators with no phone line set up for their teams get neither the widget nor Twilio's SDK
(300 KB), and their browsers do not ask for a token they cannot have.
"""

from __future__ import annotations

from typing import Any

from django import template

from connectors.twilio.voice import voice_line_for
from inbox import csp
from inbox.models import Operator

register = template.Library()

TWILIO_SOURCES = {
    "connect-src": ["https://*.twilio.com", "wss://*.twilio.com"],
    "media-src": ["https://sdk.twilio.com", "blob:"],
}


@register.inclusion_tag("connectors/twilio/softphone.html", takes_context=True)
def softphone(context: template.Context) -> dict[str, Any]:
    user = context.get("user")
    line = voice_line_for(user) if isinstance(user, Operator) and user.is_active else None
    request = context.get("request")
    if line is not None and request is not None:
        # The SDK signals over wss://voice-js.<edge>.twilio.com, reports to eventgw.twilio.com and
        # plays its ringtones from sdk.twilio.com: only pages with the phone may talk to Twilio.
        csp.allow(request, TWILIO_SOURCES)
    return {"line": line}
