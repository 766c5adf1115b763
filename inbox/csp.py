"""The operator UI's Content-Security-Policy (django-csp), and how a page widens it for itself.

The policy itself is ``CONTENT_SECURITY_POLICY`` in ``config/settings.py``: scripts, styles, images,
fonts and connections from this origin only, no inline script or style, no ``eval``, no plugins, no
framing, forms post only here. A page that needs more asks for it while it renders, with
:func:`allow`: the browser phone (``{% softphone %}``) adds Twilio's hosts, so that only operators
who have a phone line get a policy that lets their page talk to Twilio.
"""

from __future__ import annotations

from typing import Any

from csp.middleware import CSPMiddleware, PolicyParts
from django.http import HttpRequest, HttpResponseBase

_EXTRA = "_parley_csp_extra"


def allow(request: HttpRequest, directives: dict[str, list[str]]) -> None:
    """Add sources to this response's enforced policy (e.g. ``{"connect-src": ["wss://x.example"]}``)."""
    extra: dict[str, list[str]] = request.__dict__.setdefault(_EXTRA, {})
    for directive, sources in directives.items():
        known = extra.setdefault(directive, [])
        known.extend(source for source in sources if source not in known)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, plus the sources pages asked for with :func:`allow`."""

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        extra: dict[str, Any] | None = request.__dict__.get(_EXTRA)
        if extra and not report_only:
            update: dict[str, Any] = dict(parts.update or {})
            for directive, sources in extra.items():
                update[directive] = [*update.get(directive, []), *sources]
            parts.update = update
        return parts
