"""WhatsApp through Meta's Cloud API (``whatsapp-cloud``; docs/connectors/meta.md, "WhatsApp").

Settings (``channel add whatsapp-cloud --set key=value``; secrets also as ``key_env`` / ``key_file``):
``phone_number_id`` (required: routes callbacks and sends), ``access_token`` (required, secret: a
system user's token), ``app_secret`` (required, secret: signs callbacks), ``verify_token`` (what the
Meta app's dashboard asks for; made up when not given and printed by ``channel add``), ``waba_id``
(the WhatsApp Business Account, to sync its templates), ``templates`` (approved templates configured
by hand, a JSON list), ``mark_read`` (``reply`` — default: the customer's messages show as read when
an operator answers — or ``off``), ``graph_base_url``, ``graph_version``, ``http_timeout``.

A customer is known by their phone number (``wa_id``, as E.164: one identity with SMS, voice and
Twilio's WhatsApp) and, where Meta sends it, by their business-scoped user id (BSUID, identity kind
``whatsapp``); a customer who withholds their number is known by the BSUID alone.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar

from django.conf import settings
from django.utils.translation import gettext as _

from connectors.meta import errors, services
from connectors.meta.callbacks import as_dict
from connectors.meta.common import STANDARD_WINDOW, MetaConnector, unix_time
from connectors.meta.graph import media_allowed
from customers.models import Identity
from customers.services import InvalidAddress, normalise_phone
from inbox.models import Conversation, Message
from inbox.services import outbound
from inbox.transport import (
    MAX_CHOICE_ID,
    ConfigurationError,
    InboundAttachment,
    InboundMessage,
    InvalidRequest,
    MessageTemplate,
    NotYet,
    Parsed,
    PermanentError,
    SendResult,
    StatusUpdate,
    TemplateVariable,
    choices_of,
    register,
)

logger = logging.getLogger(__name__)

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
STATUS_MAP = {"sent": "sent", "delivered": "delivered", "read": "read", "played": "read", "failed": "failed"}
MAX_TEXT = 4096
MAX_CAPTION = 1024
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
# What the Cloud API takes as each media type (anything else goes as a document).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})
VIDEO_TYPES = frozenset({"video/mp4", "video/3gpp"})
AUDIO_TYPES = frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"})
REFERRAL_KEYS = (
    "source_url",
    "source_type",
    "source_id",
    "headline",
    "body",
    "media_type",
    "image_url",
    "video_url",
    "thumbnail_url",
    "ctwa_clid",
)


def parse_templates(raw: Any) -> list[dict[str, Any]]:
    """Templates configured on the channel: a JSON list of ``{"name", "language", "body",
    "variables"}`` where a variable is where its value comes from (``"customer.first_name"``, ''
    to ask the operator) or ``{"label": "Order number", "fill": ""}``."""
    if not raw:
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"templates is not valid JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise ConfigurationError("templates must be a JSON list")
    specs = []
    for spec in raw:
        if not isinstance(spec, dict) or not str(spec.get("name", "")).strip():
            raise ConfigurationError("every template needs a name (as approved in WhatsApp Manager)")
        if not str(spec.get("language", "")).strip():
            raise ConfigurationError(f"template {spec['name']!r} needs its language code (en_US, es, …)")
        specs.append(spec)
    return specs


def template_from_spec(spec: dict[str, Any]) -> MessageTemplate:
    name, language = str(spec["name"]).strip(), str(spec["language"]).strip()
    body = str(spec.get("body", ""))
    declared = spec.get("variables") or {}
    if isinstance(declared, list):
        declared = {str(item.get("key", "")): item for item in declared if isinstance(item, dict)}
    if not isinstance(declared, dict):
        declared = {}
    keys = list(dict.fromkeys([*PLACEHOLDER.findall(body), *(str(k) for k in declared)]))
    variables = []
    for key in keys:
        value = declared.get(key, "")
        if isinstance(value, dict):
            variables.append(
                TemplateVariable(key=key, label=str(value.get("label", "")), fill=str(value.get("fill", "")))
            )
        else:
            variables.append(TemplateVariable(key=key, fill=str(value or "")))
    return MessageTemplate(key=f"{name}:{language}", name=f"{name} ({language})", body=body, variables=tuple(variables))


def synced_template(item: dict[str, Any]) -> dict[str, Any]:
    """One template of the Business Account's list as we keep it; ``usable`` is False (with the
    reason) when it needs more than body text variables, which the reply box cannot fill."""
    body, problem = "", ""
    for component in item.get("components") or []:
        kind = str(component.get("type", "")).upper()
        if kind == "BODY":
            body = str(component.get("text", ""))
        elif kind == "HEADER" and (
            component.get("format", "TEXT") != "TEXT" or PLACEHOLDER.search(str(component.get("text", "")))
        ):
            problem = "its header needs media or a variable"
        elif kind == "BUTTONS" and any(
            PLACEHOLDER.search(str(b.get("url", ""))) for b in component.get("buttons") or [] if isinstance(b, dict)
        ):
            problem = "a button needs a variable"
    return {
        "id": str(item.get("id", "")),
        "name": str(item.get("name", "")),
        "language": str(item.get("language", "")),
        "status": str(item.get("status", "")).upper(),
        "category": str(item.get("category", "")),
        "body": body,
        "usable": not problem,
        "problem": problem,
    }


@register
class WhatsAppCloudConnector(MetaConnector):
    kind = "whatsapp-cloud"
    label = "WhatsApp (Meta Cloud API)"
    medium = "whatsapp"
    identity_kind = "phone"
    object_type = "whatsapp_business_account"
    route_setting = "phone_number_id"
    credential_setting = "access_token"
    required_settings: ClassVar[tuple[str, ...]] = ("phone_number_id",)
    secret_settings: ClassVar[tuple[str, ...]] = ("access_token", "app_secret")

    @classmethod
    def validate_settings(cls, channel_settings: Any) -> None:
        super().validate_settings(channel_settings)
        parse_templates(channel_settings.get("templates"))
        if str(channel_settings.get("mark_read", "reply")) not in ("reply", "off"):
            raise ConfigurationError("mark_read is reply or off")

    # -- templates -------------------------------------------------------------------------

    def templates(self) -> list[MessageTemplate]:
        """Configured templates, then the Business Account's approved ones as last synced."""
        found = {t.key: t for t in map(template_from_spec, parse_templates(self.channel.settings.get("templates")))}
        for item in (self.channel.state.get("meta") or {}).get("templates") or []:
            if item.get("status") == "APPROVED" and item.get("usable") and item.get("name") and item.get("language"):
                template = template_from_spec(item)
                found.setdefault(template.key, template)
        return list(found.values())

    def sync_templates(self) -> list[dict[str, Any]]:
        """Fetch the Business Account's templates (every page) and keep them on the channel."""
        waba_id = self.setting("waba_id")
        if not waba_id:
            raise ConfigurationError("set waba_id (the WhatsApp Business Account id) to sync its templates")
        graph = self.graph()
        params = {"fields": "id,name,language,status,category,components", "limit": "100"}
        kept: list[dict[str, Any]] = []
        for _page in range(50):
            answer = graph.call("GET", f"{waba_id}/message_templates", params=params)
            kept.extend(synced_template(item) for item in answer.get("data") or [] if isinstance(item, dict))
            after = ((answer.get("paging") or {}).get("cursors") or {}).get("after")
            if not (answer.get("paging") or {}).get("next") or not after:
                break
            params = {**params, "after": str(after)}
        services.store_templates(channel=self.channel, templates=kept)
        return kept

    def refusal(self, *, conversation: Conversation, address: str) -> str:
        """Free-form messages go out only within 24 hours of the customer's last WhatsApp message."""
        if self.within(conversation, STANDARD_WINDOW):
            return ""
        reason = _(
            "The customer last wrote on WhatsApp more than 24 hours ago; WhatsApp only allows an approved template now."
        )
        if self.templates():
            return (
                reason + " " + _("Send one of the channel's approved templates instead, or reply on another channel.")
            )
        return reason + " " + _("Reply on another channel, or configure an approved template on this channel.")

    # -- inbound ---------------------------------------------------------------------------

    def parse_item(self, item: dict[str, Any]) -> Iterable[Parsed]:
        if isinstance(item.get("message"), dict):
            yield from self._message(item)
        elif isinstance(item.get("status"), dict):
            yield from self._status(item["status"])
        elif item.get("errors"):
            logger.warning("WhatsApp reported errors on channel %s: %s", self.channel.pk, item["errors"])
        elif item.get("field") == "message_template_status_update":
            services.record_template_status(channel=self.channel, update=item.get("value") or {})
        else:
            logger.info("WhatsApp %s update on channel %s kept, not shown", item.get("field"), self.channel.pk)

    def _sender(self, item: dict[str, Any]) -> tuple[str, str, tuple[tuple[str, str], ...], str]:
        """(address, its identity kind or '' for a phone, further identities, name)."""
        message = item["message"]
        contact = (item.get("contacts") or [{}])[0]
        sender = str(message.get("from", "")).strip()
        wa_id = str(contact.get("wa_id", "") or (sender if sender.isdigit() else "")).strip()
        bsuid = str(
            contact.get("user_id", "") or message.get("from_user_id", "") or (sender if not sender.isdigit() else "")
        )
        name = str((contact.get("profile") or {}).get("name", ""))
        if not wa_id and not bsuid:
            raise InvalidRequest("the message names no sender")
        if not wa_id:
            return bsuid, Identity.Kind.WHATSAPP, (), name
        try:
            phone = normalise_phone("+" + wa_id.lstrip("+"))
        except InvalidAddress:
            if bsuid:
                return bsuid, Identity.Kind.WHATSAPP, (), name
            raise
        if not bsuid:
            return phone, "", (), name
        known = set(
            Identity.objects.filter(kind=Identity.Kind.WHATSAPP, value=bsuid).values_list("kind", flat=True)
        ) | set(Identity.objects.filter(kind=Identity.Kind.PHONE, value=phone).values_list("kind", flat=True))
        if Identity.Kind.WHATSAPP in known and Identity.Kind.PHONE not in known:
            # Known by their user id before they shared their number: keep them one customer.
            return bsuid, Identity.Kind.WHATSAPP, ((Identity.Kind.PHONE, phone),), name
        extra = () if Identity.Kind.WHATSAPP in known else ((Identity.Kind.WHATSAPP, bsuid),)
        return phone, "", extra, name

    def _message(self, item: dict[str, Any]) -> Iterable[Parsed]:
        message = item["message"]
        provider_id = str(message["id"])
        kind = str(message.get("type", ""))
        address, identity_kind, extra, name = self._sender(item)
        if kind == "reaction":
            yield from self._reaction(message, address, identity_kind, name)
            return
        details: dict[str, Any] = {}
        text = ""
        choice = ""
        attachments: list[InboundAttachment] = []
        body = as_dict(message.get(kind))
        if kind == "text":
            text = str(body.get("body", ""))
        elif kind in MEDIA_TYPES:
            media_id = str(body.get("id", ""))
            content_type = str(body.get("mime_type", "") or "application/octet-stream")
            text = str(body.get("caption", ""))
            extension = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ""
            filename = str(body.get("filename", "") or f"{kind}-{media_id}{extension}")
            if body.get("voice") or kind == "sticker":
                details[kind if kind == "sticker" else "voice"] = True
            if media_id and media_allowed(content_type):
                attachments.append(
                    InboundAttachment(filename=filename, content_type=content_type, url=self.media_ref(media_id))
                )
            elif media_id:
                details["skipped_media"] = {"filename": filename, "content_type": content_type}
        elif kind == "location":
            details["location"] = location = {
                k: body[k] for k in ("latitude", "longitude", "name", "address", "url") if body.get(k) not in (None, "")
            }
            place = " ".join(str(location.get(k, "")) for k in ("name", "address")).strip()
            text = _("Shared a location: %(place)s %(lat)s, %(lon)s") % {
                "place": place,
                "lat": location.get("latitude", "?"),
                "lon": location.get("longitude", "?"),
            }
        elif kind == "contacts":
            cards = [c for c in message.get("contacts") or [] if isinstance(c, dict)]
            details["contacts"] = cards
            lines = []
            for card in cards:
                card_name = str((card.get("name") or {}).get("formatted_name", ""))
                reach = [str(p.get("phone", "")) for p in card.get("phones") or [] if isinstance(p, dict)]
                reach += [str(e.get("email", "")) for e in card.get("emails") or [] if isinstance(e, dict)]
                lines.append(" ".join(filter(None, [card_name, ", ".join(filter(None, reach))])))
            text = _("Shared a contact: %(contacts)s") % {"contacts": "; ".join(lines)}
        elif kind == "interactive":
            chosen = as_dict(body.get(str(body.get("type", ""))))
            details["interactive"] = {
                "type": str(body.get("type", "")),
                **{k: chosen[k] for k in ("id", "title", "description") if k in chosen},
            }
            text = "\n".join(filter(None, [str(chosen.get("title", "")), str(chosen.get("description", ""))]))
            if body.get("type") in ("button_reply", "list_reply") and chosen.get("id"):
                choice = str(chosen["id"])[:MAX_CHOICE_ID]  # a tapped choice (the transport's contract)
            if not text and chosen.get("response_json"):  # a WhatsApp Flow's answer
                text = _("Answered a form: %(answer)s") % {"answer": chosen["response_json"]}
        elif kind == "button":
            details["button"] = {"text": str(body.get("text", "")), "payload": str(body.get("payload", ""))}
            text = str(body.get("text", ""))
        elif kind == "order":
            items = [p for p in body.get("product_items") or [] if isinstance(p, dict)]
            details["order"] = body
            text = _("Sent an order of %(count)s item(s). %(note)s") % {
                "count": len(items),
                "note": body.get("text", ""),
            }
        elif kind == "system":
            details["system"] = body
            text = str(body.get("body", "")) or _("WhatsApp system message")
        else:
            details["unsupported"] = {"type": kind, "errors": message.get("errors") or []}
            text = _("(A WhatsApp message of type %(type)s that Parley cannot show.)") % {"type": kind or "?"}
        replies_to: tuple[str, ...] = ()
        context = as_dict(message.get("context"))
        if context.get("id"):
            replies_to = (str(context["id"]),)
            details["reply_to"] = self.quote(str(context["id"]))
        if context.get("forwarded") or context.get("frequently_forwarded"):
            details["forwarded"] = "frequently" if context.get("frequently_forwarded") else "once"
        referral = as_dict(message.get("referral"))
        if referral:
            details["referral"] = {k: referral[k] for k in REFERRAL_KEYS if referral.get(k)}
        metadata: dict[str, Any] = {"meta": details} if details else {}
        if choice:
            metadata["choice"] = choice
        yield InboundMessage(
            provider_id=provider_id,
            address=address,
            identity_kind=identity_kind,
            extra_identities=extra,
            text=text,
            name=name,
            sent_at=unix_time(message.get("timestamp")),
            attachments=tuple(attachments),
            replies_to=replies_to,
            metadata=metadata,
        )

    def quote(self, provider_id: str) -> dict[str, Any]:
        """What a reply quotes: the message's id and, when we know it, the start of its text."""
        quoted = (
            Message.objects.filter(channel=self.channel, provider_id=provider_id).values("text", "direction").first()
        )
        if quoted is None:
            return {"id": provider_id}
        return {
            "id": provider_id,
            "text": quoted["text"][:200],
            "ours": quoted["direction"] == Message.Direction.OUTBOUND,
        }

    def _reaction(self, message: dict[str, Any], address: str, identity_kind: str, name: str) -> Iterable[Parsed]:
        reaction = as_dict(message.get("reaction"))
        emoji = str(reaction.get("emoji", ""))
        target = (
            Message.objects.filter(channel=self.channel, provider_id=str(reaction.get("message_id", "")))
            .values_list("pk", flat=True)
            .first()
        )
        if target is None:
            # A message we never stored (sent before Parley, or elsewhere): the reaction still shows.
            text = _("Reacted %(emoji)s to a message") % {"emoji": emoji} if emoji else _("Removed a reaction")
            yield InboundMessage(
                provider_id=str(message["id"]),
                address=address,
                identity_kind=identity_kind,
                name=name,
                text=text,
                metadata={"meta": {"reaction_to": str(reaction.get("message_id", ""))}},
            )
            return
        set_reaction(target, emoji)

    def _status(self, status: dict[str, Any]) -> Iterable[Parsed]:
        ours = STATUS_MAP.get(str(status.get("status", "")).lower())
        if ours is None:
            return
        provider_id = str(status["id"])
        # Our own id, echoed back (biz_opaque_callback_data): the core finds by it a message whose
        # send's answer is late (the event waits for it) or was lost (the message takes this id).
        public_id = our_public_id(str(status.get("biz_opaque_callback_data", "")))
        if not Message.objects.filter(channel=self.channel, provider_id=provider_id).exists():
            ours_here = Message.objects.filter(channel=self.channel, direction=Message.Direction.OUTBOUND)
            if public_id is not None:
                known = ours_here.filter(public_id=public_id).exists()
            else:  # sent without our id: a send to this number still waiting for its answer
                recipient = str(status.get("recipient_id", ""))
                if ours_here.filter(
                    status__in=["queued", "sending"], address__in=[recipient, "+" + recipient]
                ).exists():
                    raise NotYet(f"status {ours} for {provider_id} came before its send's answer")
                known = False
            if not known:
                logger.info("WhatsApp status %s for a message Parley did not send (%s)", ours, provider_id)
                return
        reason = ""
        if ours == "failed":
            problems = [e for e in status.get("errors") or [] if isinstance(e, dict)]
            if problems:
                first = problems[0]
                data = as_dict(first.get("error_data"))
                reason = errors.describe(
                    first.get("code"),
                    str(first.get("title") or first.get("message") or ""),
                    details=str(data.get("details", "")),
                )
                title = str(first.get("title") or "")
                if title and title not in reason:
                    reason = f"{title}: {reason}"
            else:
                reason = _("WhatsApp reported the message as failed.")
        yield StatusUpdate(
            provider_id=provider_id,
            status=ours,
            reason=reason,
            at=unix_time(status.get("timestamp")),
            public_id=public_id,
        )

    def media_ref(self, media_id: str) -> str:
        """Where the worker finds an inbound media: the Graph API's media node."""
        base = (self.setting("graph_base_url") or "https://graph.facebook.com").rstrip("/")
        return f"{base}/{self.setting('graph_version') or 'v25.0'}/{media_id}"

    def fetch_attachment(self, attachment: InboundAttachment) -> tuple[bytes, str]:
        """``GET /{media-id}`` for the short-lived URL, then the bytes; both with the token."""
        graph = self.graph()
        media_id = attachment.url.rstrip("/").rsplit("/", 1)[-1]
        if not media_id or attachment.url != self.media_ref(media_id):
            raise PermanentError(_("Refused to download media from %(url)s.") % {"url": attachment.url})
        limit = settings.PARLEY_MAX_ATTACHMENT_BYTES
        node = graph.call("GET", media_id)
        size = node.get("file_size")
        if isinstance(size, int | str) and str(size).isdigit() and int(size) > limit:
            raise PermanentError(_("The media is larger than %(limit)s bytes.") % {"limit": limit})
        url = str(node.get("url", ""))
        if not url:
            raise PermanentError(_("Meta gave no download link for the media."))
        content, content_type = graph.download(url, limit=limit, authorised=True)
        return content, content_type or str(node.get("mime_type", "")) or attachment.content_type

    # -- outbound --------------------------------------------------------------------------

    def offers_choices(self) -> bool:
        """Interactive messages: reply buttons for up to three choices, a list beyond (see
        :func:`interactive`); a tap comes back as an ``interactive`` message with its id."""
        return True

    def send(self, message: Message, address: str) -> SendResult:
        to = address[1:] if address.startswith("+") else address
        graph = self.graph()
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "biz_opaque_callback_data": str(message.public_id),
        }
        try:
            payload.update(self._content(message, graph))
            quoted = str(message.metadata.get("reply_to_provider_id", ""))
            if quoted:
                payload["context"] = {"message_id": quoted}
            self._mark_read(message, graph)
            answer = graph.call("POST", f"{self.route_id}/messages", json=payload, sends=True)
        except ConfigurationError as exc:
            services.note_problem(channel=self.channel, problem=str(exc))
            raise
        services.clear_problem(channel=self.channel)
        sent = [m for m in answer.get("messages") or [] if isinstance(m, dict) and m.get("id")]
        if not sent:
            raise PermanentError(_("Meta accepted the message but gave no id for it."))
        return SendResult(provider_id=str(sent[0]["id"]), status="sent")

    def _content(self, message: Message, graph: Any) -> dict[str, Any]:
        template = message.metadata.get("template")
        if template:
            return self._template(template if isinstance(template, dict) else {})
        files = list(message.attachments.all())
        text = message.text
        if len(files) > 1:
            raise PermanentError(_("WhatsApp carries one attachment per message; send them one by one."))
        if not files:
            if not text:
                raise PermanentError(_("The message is empty."))
            if len(text) > MAX_TEXT:
                raise PermanentError(_("WhatsApp takes at most 4096 characters per message."))
            choices = choices_of(message)
            if choices and len(text) <= MAX_INTERACTIVE_BODY:
                return interactive(text, choices)
            return {"type": "text", "text": {"body": text, "preview_url": "http" in text}}
        attachment = files[0]
        content_type = (attachment.content_type or "application/octet-stream").split(";")[0].strip().lower()
        if content_type in IMAGE_TYPES:
            kind = "image"
        elif content_type in VIDEO_TYPES:
            kind = "video"
        elif content_type in AUDIO_TYPES:
            kind = "audio"
        elif content_type == "image/webp":
            kind = "sticker"
        else:
            kind = "document"
        if text and kind in ("audio", "sticker"):
            raise PermanentError(_("WhatsApp shows no text with audio or stickers; send the text on its own."))
        if len(text) > MAX_CAPTION:
            raise PermanentError(_("A caption on WhatsApp is at most 1024 characters."))
        with attachment.file.open("rb") as handle:
            content = handle.read()
        uploaded = graph.call(
            "POST",
            f"{self.route_id}/media",
            data={"messaging_product": "whatsapp", "type": content_type},
            files={"file": (attachment.filename, content, content_type)},
        )
        if not uploaded.get("id"):
            raise PermanentError(_("Meta accepted the attachment but gave no id for it."))
        media: dict[str, Any] = {"id": str(uploaded["id"])}
        if text:
            media["caption"] = text
        if kind == "document":
            media["filename"] = attachment.filename
        return {"type": kind, kind: media}

    def _template(self, spec: dict[str, Any]) -> dict[str, Any]:
        key = str(spec.get("key") or spec.get("content_sid") or "")
        chosen = next((t for t in self.templates() if t.key == key), None)
        if chosen is None:
            raise PermanentError(
                _("This channel no longer has the template %(name)s.") % {"name": spec.get("name") or key}
            )
        name, _sep, language = chosen.key.rpartition(":")
        values = spec.get("variables") or {}
        parameters = []
        for variable in chosen.variables:
            parameter = {"type": "text", "text": str(values.get(variable.key, ""))}
            if not variable.key.isdigit():
                parameter["parameter_name"] = variable.key
            parameters.append(parameter)
        template: dict[str, Any] = {"name": name, "language": {"code": language}}
        if parameters:
            template["components"] = [{"type": "body", "parameters": parameters}]
        return {"type": "template", "template": template}

    def _mark_read(self, message: Message, graph: Any) -> None:
        """Show the customer their last message was read, as an operator answers it (setting)."""
        if self.setting("mark_read", "reply") == "off" or message.sender != Message.Sender.OPERATOR:
            return
        last = (
            Message.objects.filter(
                conversation_id=message.conversation_id, channel=self.channel, direction=Message.Direction.INBOUND
            )
            .exclude(provider_id="")
            .order_by("-created_at")
            .values_list("provider_id", flat=True)
            .first()
        )
        if not last:
            return
        try:
            graph.call(
                "POST",
                f"{self.route_id}/messages",
                json={"messaging_product": "whatsapp", "status": "read", "message_id": last},
            )
        except ConfigurationError:
            raise  # the reply cannot go out either
        except Exception as exc:  # a read receipt is a courtesy: the reply goes out without it
            logger.info("could not mark %s as read on channel %s: %s", last, self.channel.pk, exc)


# An interactive message's body holds at most 1024 characters (a longer text goes as plain text).
MAX_INTERACTIVE_BODY = 1024
MAX_REPLY_BUTTONS = 3


def interactive(text: str, choices: list[dict[str, str]]) -> dict[str, Any]:
    """Choices as WhatsApp shows them. WhatsApp allows at most three reply buttons, so up to three
    choices are buttons under the text, and more (the satisfaction survey's five) a list message:
    one button ("Choose") that opens the list of them, up to ten. Both come back the same way."""
    if len(choices) <= MAX_REPLY_BUTTONS:
        buttons = [{"type": "reply", "reply": {"id": c["id"], "title": c["title"]}} for c in choices]
        return {
            "type": "interactive",
            "interactive": {"type": "button", "body": {"text": text}, "action": {"buttons": buttons}},
        }
    rows = [{"id": c["id"], "title": c["title"]} for c in choices]
    return {
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": text},
            "action": {"button": _("Choose")[:20], "sections": [{"rows": rows}]},
        },
    }


def our_public_id(value: str) -> uuid.UUID | None:
    """Our message's public id from ``biz_opaque_callback_data`` (None when it is not one)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def set_reaction(message_id: int, emoji: str) -> None:
    """Show (or, with '', take away) the customer's reaction on a message of the thread."""

    def change(metadata: dict[str, Any]) -> tuple[dict[str, Any], None]:
        meta = dict(metadata.get("meta") or {})
        if emoji:
            meta["reaction"] = emoji
        else:
            meta.pop("reaction", None)
        return {**metadata, "meta": meta}, None

    outbound.update_message(message_id=message_id, change=change)
