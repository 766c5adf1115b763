"""Attachments stored with a message, on the way in and on the way out."""

from __future__ import annotations

from django.core.files.base import ContentFile

from inbox import files
from inbox.models import Attachment, Message
from inbox.transport import InboundAttachment


def store_attachment(*, message: Message, attachment: InboundAttachment) -> Attachment:
    """Store a file of a message (a customer's or an operator's); call inside the message's transaction."""
    content = attachment.content or b""
    name = attachment.filename or "attachment"
    stored = Attachment(
        message=message,
        filename=name[:255],
        content_type=attachment.content_type[:127] or "application/octet-stream",
        size=len(content),
        content_id=attachment.content_id[:255],
        inline=attachment.inline,
    )
    # Stored under a random name: the customer's name is for the download, never a path on disk.
    stored.file.save(files.storage_name(), ContentFile(content), save=False)
    stored.save()
    return stored
