"""How a stored attachment leaves Parley: the one serving policy for every view that hands out files.

Attachments are whatever customers (and operators) sent: an ``.html`` page, an SVG with script, a
file that claims to be a picture. Served from our origin as they are, a browser would run them with
the operator's session. So nothing under ``MEDIA_ROOT`` is ever served directly (there is no
``/media/`` URL), and every access-checked view answers through :func:`attachment_response`:

* shown in the page (``inline``) only for types a browser renders without running anything:
  raster images, audio and video (:data:`INLINE_TYPES`); everything else is a download
  (``Content-Disposition: attachment``) served as ``application/octet-stream``;
* ``X-Content-Type-Options: nosniff``, so the browser never guesses a runnable type from the bytes;
* ``Content-Security-Policy: sandbox; default-src 'none'``: opened as a document anyway, the file
  runs nothing, loads nothing and gets an opaque origin (media may load only themselves).

docs/security.md ("Attachments") describes the policy.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from django.http import FileResponse
from django.utils.http import content_disposition_header

if TYPE_CHECKING:
    from inbox.models import Attachment

# Rendered by the browser itself, with nothing in them that runs. No SVG (it can carry script), no
# HTML or XML of any kind, no PDF (a viewer with its own scripting).
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif"})
INLINE_TYPES = INLINE_IMAGE_TYPES | frozenset(
    {
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/ogg",
        "audio/opus",
        "audio/wav",
        "audio/x-wav",
        "audio/webm",
        "audio/flac",
        "audio/amr",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "video/3gpp",
    }
)
DOWNLOAD_TYPE = "application/octet-stream"
SANDBOX_CSP = "sandbox; default-src 'none'"
# An inline image, sound or video opened on its own is a document that shows only itself.
MEDIA_CSP = "sandbox; default-src 'none'; img-src 'self'; media-src 'self'"


def _runnable(content_type: str) -> bool:
    """Markup, script and anything a browser might treat as a page of ours."""
    kind = base_type(content_type)
    return not kind or any(word in kind for word in ("html", "xml", "script", "svg", "xsl", "multipart"))


def base_type(content_type: str) -> str:
    """``image/PNG; name=x`` → ``image/png``."""
    return content_type.split(";", 1)[0].strip().lower()


def is_inline(content_type: str) -> bool:
    """Whether a browser may show a file of this type in the page instead of downloading it."""
    return base_type(content_type) in INLINE_TYPES


def storage_name() -> str:
    """The name a new attachment is stored under: random, with no extension of the sender's choosing.

    The customer's file name is kept in ``Attachment.filename`` for the download; on disk a file
    is never ``invoice.html`` that a web server in front might one day serve as a page.
    """
    return f"{secrets.token_hex(16)}.bin"


def serving(attachment: Attachment, *, content_type: str | None = None) -> tuple[str, dict[str, str]]:
    """The type to send ``attachment`` as and the headers that go with it, under the policy above.

    ``content_type`` names a download's type (the Twilio media link tells Twilio a PDF is a PDF)
    unless it is anything a browser would run; an inline type is always sent as stored.
    """
    stored = base_type(attachment.content_type)
    inline = stored in INLINE_TYPES
    named = base_type(content_type or "")
    served = stored if inline else (named if named and not _runnable(named) else DOWNLOAD_TYPE)
    headers = {
        "Content-Disposition": content_disposition_header(not inline, attachment.filename)
        or ("inline" if inline else "attachment"),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": MEDIA_CSP if inline else SANDBOX_CSP,
    }
    return served, headers


def attachment_response(
    attachment: Attachment, *, content_type: str | None = None, cache_control: str = "private, max-age=3600"
) -> FileResponse:
    """The file of ``attachment``, streamed under the serving policy; the caller has checked access."""
    served, headers = serving(attachment, content_type=content_type)
    response = FileResponse(attachment.file.open("rb"), content_type=served)
    for name, value in headers.items():
        response[name] = value
    response["Cache-Control"] = cache_control
    return response
