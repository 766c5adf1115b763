"""Attachments, for operators who may see their conversation (served under :mod:`inbox.files`' policy)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from inbox import files
from inbox.models import Attachment
from inbox.selectors.conversations import attachment_for
from inbox.views import base


@require_GET
@login_required
def attachment(request: HttpRequest, pk: int) -> FileResponse:
    """A stored attachment, for operators who may see its conversation (404 for anyone else).

    Served under the one policy of :mod:`inbox.files`: inline only for images, sound and video, a
    sandboxed download for everything else.
    """
    try:
        found = attachment_for(operator=base.operator(request), attachment_id=pk)
    except Attachment.DoesNotExist:
        raise Http404(_("No such attachment.")) from None
    return files.attachment_response(found)
