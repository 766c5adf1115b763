"""Facebook Messenger (``messenger``) and Instagram direct messages (``instagram``): the Messenger
Platform's webhook events and Send API (docs/connectors/meta.md, "Messenger and Instagram").

Messenger settings: ``page_id`` (required), ``page_token`` (required, secret), ``app_secret``
(required, secret), ``verify_token`` (made up when not given), ``app_id`` (the Meta app's id: echoes
of its own sends are ours), ``human_agent`` (``1`` when the app has the Human Agent permission:
replies up to 7 days after the customer's last message, tagged ``HUMAN_AGENT``), ``graph_base_url``,
``graph_version``, ``http_timeout``. Instagram takes ``instagram_id`` (the professional account's
id, which its callbacks name) and ``access_token`` instead of ``page_id`` and ``page_token``, and
``page_id`` when it sends through the Page it is linked to.

Customers are known by their page-scoped id (PSID, identity ``messenger``) or Instagram-scoped id
(IGSID, identity ``instagram``); their profile (name, picture) is fetched once and cached.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext as _

from connectors.meta import services
from connectors.meta.callbacks import as_dict
from connectors.meta.common import STANDARD_WINDOW, MetaConnector, unix_time
from connectors.meta.graph import Graph
from connectors.meta.whatsapp import set_reaction
from customers.models import Identity
from customers.services import InvalidAddress, normalise_address, normalise_phone
from inbox.models import Conversation, Message
from inbox.services import outbound
from inbox.transport import (
    MAX_CHOICE_ID,
    ConfigurationError,
    InboundAttachment,
    InboundMessage,
    NotYet,
    Parsed,
    PermanentError,
    SendResult,
    StatusUpdate,
    TransientError,
    choices_of,
    register,
)

logger = logging.getLogger(__name__)

HUMAN_AGENT_WINDOW = timedelta(days=7)
DOWNLOADED_TYPES = ("image", "video", "audio", "file")
# A thumbs-up sent with the "like" button arrives as this sticker.
LIKE_STICKER = "369239263222822"
PROFILE_TTL = 7 * 24 * 3600
SENT_TTL = 7 * 24 * 3600
CONTACT_REPLIES = {"email": "user_email", "phone": "user_phone_number"}


def sent_key(channel_key: str, mid: str) -> str:
    return f"meta:sent:{channel_key}:{mid}"


def profile_key(channel_key: str, user_id: str) -> str:
    return f"meta:profile:{channel_key}:{user_id}"


@register
class MessengerConnector(MetaConnector):
    kind = "messenger"
    label = "Facebook Messenger"
    medium = "messenger"
    identity_kind = "messenger"
    object_type = "page"
    route_setting = "page_id"
    credential_setting = "page_token"
    required_settings: ClassVar[tuple[str, ...]] = ("page_id",)
    secret_settings: ClassVar[tuple[str, ...]] = ("page_token", "app_secret")
    max_text = 2000
    profile_fields = "first_name,last_name,profile_pic"
    network = "Messenger"

    @property
    def send_node(self) -> str:
        return self.route_id

    # -- the window ------------------------------------------------------------------------

    def human_agent(self) -> bool:
        return self.setting("human_agent").strip().lower() in ("1", "true", "yes", "on")

    def messaging_type(self, conversation_customer_id: int) -> dict[str, str]:
        """How a reply may go out now: a response within 24 hours, a HUMAN_AGENT tag within 7 days
        (when the app has that permission); otherwise it is refused with the reason."""
        last = self.last_customer_message_at(conversation_customer_id)
        age = timezone.now() - last if last is not None else None
        if age is not None and age < STANDARD_WINDOW:
            return {"messaging_type": "RESPONSE"}
        if age is not None and age < HUMAN_AGENT_WINDOW and self.human_agent():
            return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
        raise PermanentError(self.window_reason())

    def window_reason(self) -> str:
        if self.human_agent():
            return _(
                "The customer last wrote on %(network)s more than 7 days ago; %(network)s allows no reply now. "
                "Reply on another channel."
            ) % {"network": self.network}
        return _(
            "The customer last wrote on %(network)s more than 24 hours ago; %(network)s allows no reply now "
            "(with the Human Agent permission, set human_agent=1 on the channel to reply for up to 7 days). "
            "Reply on another channel."
        ) % {"network": self.network}

    def refusal(self, *, conversation: Conversation, address: str) -> str:
        try:
            self.messaging_type(conversation.customer_id)
        except PermanentError as exc:
            return exc.reason
        return ""

    # -- inbound ---------------------------------------------------------------------------

    def parse_item(self, item: dict[str, Any]) -> Iterable[Parsed]:
        if "event" not in item:
            logger.info("%s %s change on channel %s kept, not shown", self.network, item.get("field"), self.channel.pk)
            return
        event = item["event"] if isinstance(item["event"], dict) else {}
        sender = str((event.get("sender") or {}).get("id", ""))
        recipient = str((event.get("recipient") or {}).get("id", ""))
        standby = item.get("source") == "standby"
        message = event.get("message")
        if isinstance(message, dict):
            if message.get("is_echo"):
                self._echo(message, recipient)
            elif message.get("is_deleted"):
                self._unsent(str(message.get("mid", "")))
            else:
                yield self._customer_message(event, message, sender, standby=standby)
        elif isinstance(event.get("postback"), dict):
            yield self._postback(event, event["postback"], sender, standby=standby)
        elif isinstance(event.get("delivery"), dict):
            yield from self._delivery(event["delivery"], sender)
        elif isinstance(event.get("read"), dict):
            yield from self._read(event["read"], sender)
        elif isinstance(event.get("reaction"), dict):
            yield from self._reaction(event, event["reaction"], sender)
        else:
            logger.info("%s event on channel %s kept, not shown: %s", self.network, self.channel.pk, sorted(event))

    def _customer_message(
        self, event: dict[str, Any], message: dict[str, Any], sender: str, *, standby: bool
    ) -> InboundMessage:
        details: dict[str, Any] = {}
        text = str(message.get("text", ""))
        attachments: list[InboundAttachment] = []
        links: list[dict[str, str]] = []
        for index, attachment in enumerate(message.get("attachments") or []):
            if not isinstance(attachment, dict):
                continue
            kind = str(attachment.get("type", ""))
            payload = as_dict(attachment.get("payload"))
            url = str(payload.get("url", ""))
            if str(payload.get("sticker_id", "")) == LIKE_STICKER:
                text = text or "👍"
                continue
            if kind in DOWNLOADED_TYPES and url:
                name = urlsplit(url).path.rsplit("/", 1)[-1] or f"{kind}-{index + 1}"
                guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
                attachments.append(InboundAttachment(filename=name[:200], content_type=guessed, url=url))
            elif kind == "location" or payload.get("coordinates"):
                coordinates = payload.get("coordinates") or {}
                details["location"] = {"latitude": coordinates.get("lat"), "longitude": coordinates.get("long")}
                text = text or _("Shared a location: %(lat)s, %(lon)s") % {
                    "lat": coordinates.get("lat", "?"),
                    "lon": coordinates.get("long", "?"),
                }
            elif url or payload.get("title"):
                # Fallbacks, shares, story mentions, reels and posts are shown as links.
                links.append(
                    {"type": kind, "url": url, "title": str(payload.get("title", "") or attachment.get("title", ""))}
                )
        if links:
            details["links"] = links
            if not text:
                mention = any(link["type"] == "story_mention" for link in links)
                text = _("Mentioned you in their story") if mention else _("Shared a link")
        quick = as_dict(message.get("quick_reply"))
        extra: tuple[tuple[str, str], ...] = ()
        choice = ""
        if quick.get("payload"):
            details["quick_reply"] = str(quick["payload"])
            extra = self._confirmed_contact(str(quick["payload"]), text)
            if not extra:  # a tapped choice of ours (the transport's contract), not a confirmed address
                choice = str(quick["payload"])[:MAX_CHOICE_ID]
        replies_to: tuple[str, ...] = ()
        reply_to = as_dict(message.get("reply_to"))
        if reply_to.get("mid"):
            replies_to = (str(reply_to["mid"]),)
            details["reply_to"] = self.quote(str(reply_to["mid"]))
        story = as_dict(reply_to.get("story"))
        if story.get("url"):
            details["story_reply"] = str(story["url"])
        referral = message.get("referral") or event.get("referral")
        if isinstance(referral, dict):
            details["referral"] = {k: str(v) for k, v in referral.items() if isinstance(v, str | int)}
        if standby:
            details["standby"] = True
        profile = self.profile(sender)
        if profile.get("picture"):
            details["profile_pic"] = profile["picture"]
        if not text and not attachments:
            text = _("(A %(network)s message Parley cannot show.)") % {"network": self.network}
        return InboundMessage(
            provider_id=str(message.get("mid", "")),
            address=sender,
            text=text,
            name=profile.get("name", ""),
            sent_at=unix_time(event.get("timestamp"), milliseconds=True),
            attachments=tuple(attachments),
            replies_to=replies_to,
            extra_identities=extra,
            metadata={**({"meta": details} if details else {}), **({"choice": choice} if choice else {})},
        )

    def _confirmed_contact(self, payload: str, text: str) -> tuple[tuple[str, str], ...]:
        """An answer to our ``user_email`` / ``user_phone_number`` quick reply: the address the
        customer confirmed (prefilled from their account, tapped by them) is theirs."""
        if payload.strip() != text.strip():
            return ()
        try:
            if "@" in payload:
                return ((Identity.Kind.EMAIL, normalise_address(Identity.Kind.EMAIL, payload)),)
            return ((Identity.Kind.PHONE, normalise_phone(payload)),)
        except InvalidAddress:
            return ()

    def quote(self, provider_id: str) -> dict[str, Any]:
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

    def _postback(
        self, event: dict[str, Any], postback: dict[str, Any], sender: str, *, standby: bool
    ) -> InboundMessage:
        details: dict[str, Any] = {
            "postback": {"title": str(postback.get("title", "")), "payload": str(postback.get("payload", ""))}
        }
        if standby:
            details["standby"] = True
        provider_id = str(postback.get("mid", "") or f"postback:{sender}:{event.get('timestamp', '')}")
        profile = self.profile(sender)
        return InboundMessage(
            provider_id=provider_id,
            address=sender,
            text=str(postback.get("title", "") or postback.get("payload", "")),
            name=profile.get("name", ""),
            sent_at=unix_time(event.get("timestamp"), milliseconds=True),
            metadata={"meta": details},
        )

    def _echo(self, message: dict[str, Any], customer: str) -> None:
        """Our own sends come back as echoes (skipped); a reply typed in Meta's inbox is recorded as
        ours in the thread, once."""
        mid = str(message.get("mid", ""))
        if not mid or Message.objects.filter(channel=self.channel, provider_id=mid).exists():
            return
        if cache.get(sent_key(self.channel.key, mid)):
            return
        app_id = str(message.get("app_id", ""))
        if app_id and app_id == self.setting("app_id"):
            return
        if self.pending_send_to(customer):
            raise NotYet(f"echo {mid} may be of a send whose answer is not stored yet")
        text = str(message.get("text", ""))
        if not text:
            kinds = [str(a.get("type", "")) for a in message.get("attachments") or [] if isinstance(a, dict)]
            text = _("Sent %(what)s from Meta's inbox") % {"what": ", ".join(kinds) or _("a message")}
        outbound.record_outbound_entry(
            channel=self.channel,
            address=customer,
            kind=Message.Kind.MESSAGE,
            provider_id=mid,
            text=text,
            metadata={"meta": {"echo": True, **({"app_id": app_id} if app_id else {})}},
            by=None,
        )

    def _unsent(self, mid: str) -> None:
        target = Message.objects.filter(channel=self.channel, provider_id=mid).values_list("pk", flat=True).first()
        if target is None:
            return

        def change(metadata: dict[str, Any]) -> tuple[dict[str, Any], None]:
            return {**metadata, "meta": {**(metadata.get("meta") or {}), "unsent": True}}, None

        outbound.update_message(message_id=target, change=change)

    def _known(self, mids: list[str], customer: str) -> list[str]:
        known = list(
            Message.objects.filter(
                channel=self.channel, provider_id__in=mids, direction=Message.Direction.OUTBOUND
            ).values_list("provider_id", flat=True)
        )
        if len(known) < len(mids) and self.pending_send_to(customer):
            raise NotYet("a delivery names a message whose send's answer is not stored yet")
        return known

    def _delivery(self, delivery: dict[str, Any], customer: str) -> Iterable[Parsed]:
        mids = [str(m) for m in delivery.get("mids") or []]
        if mids:
            for mid in self._known(mids, customer):
                yield StatusUpdate(provider_id=mid, status="delivered")
            return
        yield from self._up_to(delivery.get("watermark"), customer, "delivered", ["sent"])

    def _read(self, read: dict[str, Any], customer: str) -> Iterable[Parsed]:
        if read.get("mid"):  # Instagram names the message seen
            for mid in self._known([str(read["mid"])], customer):
                yield StatusUpdate(provider_id=mid, status="read")
            return
        yield from self._up_to(read.get("watermark"), customer, "read", ["sent", "delivered"])

    def _up_to(self, watermark: Any, customer: str, status: str, before: list[str]) -> Iterable[Parsed]:
        """Every message of ours to the customer sent up to the watermark (milliseconds) moves on."""
        until = unix_time(watermark, milliseconds=True)
        if until is None:
            return
        mids = (
            Message.objects.filter(
                channel=self.channel,
                address=customer,
                direction=Message.Direction.OUTBOUND,
                status__in=before,
                created_at__lte=until,
            )
            .exclude(provider_id="")
            .values_list("provider_id", flat=True)
        )
        for mid in mids:
            yield StatusUpdate(provider_id=mid, status=status, at=until)

    def _reaction(self, event: dict[str, Any], reaction: dict[str, Any], sender: str) -> Iterable[Parsed]:
        mid = str(reaction.get("mid", ""))
        emoji = (
            "" if reaction.get("action") == "unreact" else str(reaction.get("emoji") or reaction.get("reaction") or "")
        )
        target = Message.objects.filter(channel=self.channel, provider_id=mid).values_list("pk", flat=True).first()
        if target is not None:
            set_reaction(target, emoji)
            return
        if emoji:
            yield InboundMessage(
                provider_id=f"reaction:{mid}:{event.get('timestamp', '')}",
                address=sender,
                text=_("Reacted %(emoji)s to a message") % {"emoji": emoji},
                metadata={"meta": {"reaction_to": mid}},
            )

    # -- profile ---------------------------------------------------------------------------

    def profile(self, user_id: str) -> dict[str, str]:
        """The customer's name and picture, fetched once per customer and cached (a failure only
        leaves the name out; the message is never held up by it)."""
        key = profile_key(self.channel.key, user_id)
        cached = cache.get(key)
        if isinstance(cached, dict):
            return cached
        if Identity.objects.filter(kind=self.identity_kind, value=user_id).exclude(customer__name="").exists():
            cache.set(key, {}, PROFILE_TTL)
            return {}
        try:
            answer = self.graph().call("GET", user_id, params={"fields": self.profile_fields})
        except (TransientError, PermanentError, ConfigurationError) as exc:
            logger.info("no %s profile for %s on channel %s: %s", self.network, user_id, self.channel.pk, exc)
            return {}
        profile = self.profile_from(answer)
        cache.set(key, profile, PROFILE_TTL)
        return profile

    def profile_from(self, answer: dict[str, Any]) -> dict[str, str]:
        name = " ".join(str(answer.get(k, "")).strip() for k in ("first_name", "last_name")).strip()
        return {"name": name, "picture": str(answer.get("profile_pic", ""))}

    def fetch_attachment(self, attachment: InboundAttachment) -> tuple[bytes, str]:
        """Attachments are links on Meta's CDN, signed in themselves: fetched without our token."""
        graph = Graph(base_url="", version="", token="", timeout=float(self.setting("http_timeout") or 10))
        return graph.download(attachment.url, limit=settings.PARLEY_MAX_ATTACHMENT_BYTES, authorised=False)

    # -- outbound --------------------------------------------------------------------------

    def offers_choices(self) -> bool:
        """Quick replies under the text (up to thirteen); a tap comes back with its payload."""
        return True

    def send(self, message: Message, address: str) -> SendResult:
        how = self.messaging_type(message.customer_id)
        graph = self.graph()
        files = list(message.attachments.all())
        if len(message.text) > self.max_text:
            raise PermanentError(
                _("%(network)s takes at most %(n)s characters per message.")
                % {"network": self.network, "n": self.max_text}
            )
        mids: list[str] = []
        try:
            for attachment in files:
                mids.append(self._send_attachment(graph, address, how, attachment))
            if message.text or not files:
                body: dict[str, Any] = {"recipient": {"id": address}, **how, "message": {"text": message.text}}
                asks = [CONTACT_REPLIES[a] for a in message.metadata.get("ask_contact") or [] if a in CONTACT_REPLIES]
                choices = choices_of(message)
                if asks:
                    body["message"]["quick_replies"] = [{"content_type": a} for a in asks]
                elif choices:
                    body["message"]["quick_replies"] = [
                        {"content_type": "text", "title": c["title"], "payload": c["id"]} for c in choices
                    ]
                mids.append(self._sent(graph.call("POST", f"{self.send_node}/messages", json=body, sends=True)))
        except ConfigurationError as exc:
            services.note_problem(channel=self.channel, problem=str(exc))
            raise
        services.clear_problem(channel=self.channel)
        return SendResult(provider_id=mids[-1], status="sent")

    def _sent(self, answer: dict[str, Any]) -> str:
        mid = str(answer.get("message_id", ""))
        if not mid:
            raise PermanentError(_("Meta accepted the message but gave no id for it."))
        # Its echo and delivery may come before the worker stores the id: they know it from here.
        cache.set(sent_key(self.channel.key, mid), 1, SENT_TTL)
        return mid

    def _send_attachment(self, graph: Graph, address: str, how: dict[str, str], attachment: Any) -> str:
        content_type = (attachment.content_type or "application/octet-stream").split(";")[0].strip().lower()
        kind = next((k for k in ("image", "video", "audio") if content_type.startswith(k + "/")), "file")
        with attachment.file.open("rb") as handle:
            content = handle.read()
        message = {"attachment": {"type": kind, "payload": {"is_reusable": False}}}
        data = {"recipient": json.dumps({"id": address}), "message": json.dumps(message), **how}
        answer = graph.call(
            "POST",
            f"{self.send_node}/messages",
            data=data,
            files={"filedata": (attachment.filename, content, content_type)},
            sends=True,
        )
        return self._sent(answer)


@register
class InstagramConnector(MessengerConnector):
    kind = "instagram"
    label = "Instagram direct messages"
    medium = "instagram"
    identity_kind = "instagram"
    object_type = "instagram"
    route_setting = "instagram_id"
    credential_setting = "access_token"
    required_settings: ClassVar[tuple[str, ...]] = ("instagram_id",)
    secret_settings: ClassVar[tuple[str, ...]] = ("access_token", "app_secret")
    max_text = 1000
    profile_fields = "name,username,profile_pic"
    network = "Instagram"

    @property
    def send_node(self) -> str:
        return self.setting("page_id") or self.route_id

    def profile_from(self, answer: dict[str, Any]) -> dict[str, str]:
        name = str(answer.get("name", "") or answer.get("username", "")).strip()
        return {"name": name, "picture": str(answer.get("profile_pic", ""))}

    def _send_attachment(self, graph: Graph, address: str, how: dict[str, str], attachment: Any) -> str:
        raise PermanentError(_("Parley cannot send attachments on Instagram yet; send a link instead."))
