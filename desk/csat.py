"""Customer satisfaction (CSAT): ask when a conversation is resolved, record the answer.

- **Asking** (:func:`ask`, in the worker after the "resolved" event commits): when the team has it
  on, and unless only the bot handled the conversation (a team setting, on by default), one survey
  per conversation goes out on the channel of the customer's last message, through the way out
  (``inbox.services.outbound.reply``). Channels with buttons get the question with five choices
  (the transport's choices contract); the others a numbered text ("Reply with a number from 1 to
  5"); email a signed link per score. A :class:`~desk.models.CsatResponse` row is claimed first, so
  a re-delivered event or resolve → reopen → resolve asks once.
- **Answering** (:func:`hold`, an inbound hold the way in asks inside its transaction): a tapped
  choice, or a bare "1".."5" or face within :data:`ANSWER_WINDOW` of the question, is the score; the
  customer's next free text within :data:`COMMENT_WINDOW` of the score is its comment. Either stays
  in the thread without reopening the conversation or waking the bot. Anything else is an ordinary
  message (it reopens the conversation as always).
- **Email**: :func:`email_token` signs (answer id, score) with ``django.core.signing``; the public
  page ``/csat/<token>/`` records the score on the click and offers a comment box.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from common import db
from desk.models import CsatResponse, TeamSettings
from inbox.models import Channel, Conversation, Message
from inbox.services import activity, outbound
from inbox.services.conversations import ReplyRefused
from inbox.transport import connector_for

logger = logging.getLogger(__name__)

# How long after the question a bare "4" still counts as its answer (a tapped choice: as long).
ANSWER_WINDOW = timedelta(hours=24)
# How long after the score the customer's next free text is taken as its comment.
COMMENT_WINDOW = timedelta(minutes=10)
# A signed email link stays valid this long.
EMAIL_LINK_MAX_AGE = timedelta(days=7)
MAX_COMMENT = 2000
SIGNING_SALT = "parley.desk.csat"

SCALE = {1: "😞", 2: "🙁", 3: "😐", 4: "🙂", 5: "😀"}
CHOICE_PREFIX = "csat:"


def choices() -> list[dict[str, str]]:
    """The five choices of the survey, best first (as peers show them)."""
    return [{"id": f"{CHOICE_PREFIX}{score}", "title": f"{SCALE[score]} {score}"} for score in range(5, 0, -1)]


def question_for(team_settings: TeamSettings) -> str:
    return team_settings.csat_question.strip() or _("How would you rate our help?")


def numbered_text(question: str) -> str:
    return "\n".join(
        [
            question,
            _("Reply with a number from 1 to 5: 1 very bad, 2 bad, 3 okay, 4 good, 5 very good."),
        ]
    )


def email_text(question: str, response: CsatResponse, base_url: str) -> str:
    lines = [question, _("Click one of the links to answer:"), ""]
    labels = {1: _("very bad"), 2: _("bad"), 3: _("okay"), 4: _("good"), 5: _("very good")}
    for score in range(5, 0, -1):
        url = base_url + reverse("csat:answer", args=[email_token(response.pk, score)])
        lines.append(f"{score} ({labels[score]}): {url}")
    return "\n".join(lines)


# -- asking ----------------------------------------------------------------------------------------


def bot_only(conversation: Conversation) -> bool:
    """The bot handled it alone: it still owns it and no operator ever wrote to the customer."""
    if conversation.handler != Conversation.Handler.BOT:
        return False
    return not Message.objects.filter(
        conversation=conversation, direction=Message.Direction.OUTBOUND, sender=Message.Sender.OPERATOR
    ).exists()


def last_inbound_channel(conversation: Conversation) -> Channel | None:
    last = (
        Message.objects.filter(
            conversation=conversation, direction=Message.Direction.INBOUND, sender=Message.Sender.CUSTOMER
        )
        .exclude(channel=None)
        .select_related("channel")
        .order_by("-created_at", "-pk")
        .first()
    )
    return last.channel if last is not None else None


def responsible_operator_id(conversation: Conversation) -> int | None:
    if conversation.assignee_id:
        return conversation.assignee_id
    return (
        Message.objects.filter(
            conversation=conversation, direction=Message.Direction.OUTBOUND, sender=Message.Sender.OPERATOR
        )
        .exclude(author=None)
        .order_by("-created_at", "-pk")
        .values_list("author_id", flat=True)
        .first()
    )


def ask(*, conversation_id: int) -> CsatResponse | None:
    """Send the survey of a resolved conversation, once; None when it is not asked (off, the bot
    alone handled it, reopened meanwhile, asked already, no channel)."""
    conversation = Conversation.objects.select_related("customer").filter(pk=conversation_id).first()
    if conversation is None or conversation.status != Conversation.Status.RESOLVED or conversation.team_id is None:
        return None
    team_settings = TeamSettings.objects.filter(team_id=conversation.team_id, csat_enabled=True).first()
    if team_settings is None:
        return None
    if team_settings.csat_skip_bot_only and bot_only(conversation):
        return None
    channel = last_inbound_channel(conversation)
    if channel is None:
        return None
    with transaction.atomic():
        response = CsatResponse(
            conversation=conversation,
            team_id=conversation.team_id,
            channel=channel,
            operator_id=responsible_operator_id(conversation),
            asked_at=timezone.now(),
        )
        if not db.insert(response, conflict=db.on_conflict("conversation_id")):
            return None  # asked already (a re-delivered event, or resolved before)
        connector = connector_for(channel)
        with translation.override(conversation.customer.language or settings.LANGUAGE_CODE):
            question = question_for(team_settings)
            metadata: dict[str, Any] = {"csat": response.pk}
            if channel.medium == Channel.Medium.EMAIL:
                text = email_text(question, response, connector.public_base_url())
            elif connector.offers_choices():
                text = question
                metadata["choices"] = choices()
            else:
                text = numbered_text(question)
        try:
            with transaction.atomic():
                survey = outbound.reply(
                    conversation=conversation,
                    text=text,
                    by=None,
                    sender=Message.Sender.SYSTEM,
                    channel=channel,
                    metadata=metadata,
                )
        except ReplyRefused as exc:
            # The customer opted out, the window closed...: nothing is sent, and it is not tried again.
            CsatResponse.objects.filter(pk=response.pk).update(skipped=str(exc.reason)[:300])
            activity.record_activity(
                conversation=conversation, action="csat_not_sent", by=None, data={"reason": str(exc.reason)}
            )
            logger.info("CSAT survey of conversation %s not sent: %s", conversation.pk, exc.reason)
            return response
        CsatResponse.objects.filter(pk=response.pk).update(survey=survey)
        response.survey = survey
    return response


# -- answering -------------------------------------------------------------------------------------


def score_of(text: str, metadata: Any) -> int | None:
    """The score a customer's message gives: a tapped choice, a bare digit 1-5, a face of the scale
    or a choice's title typed back; None for anything else."""
    choice = str((metadata or {}).get("choice", "")) if isinstance(metadata, dict) else ""
    if choice.startswith(CHOICE_PREFIX):
        value = choice.removeprefix(CHOICE_PREFIX)
        return int(value) if value in {"1", "2", "3", "4", "5"} else None
    stripped = text.strip().rstrip(".!").strip()
    # Any script's digit: a Persian customer types "۳", an Arabic keyboard "٣" (int() reads both).
    if len(stripped) == 1 and stripped.isdecimal() and 1 <= int(stripped) <= 5:
        return int(stripped)
    for score, face in SCALE.items():
        if stripped in (face, f"{face} {score}", f"{score} {face}"):
            return score
    return None


def hold(conversation: Conversation, message: Message) -> str:
    """The inbound hold (:mod:`inbox.extensions`): keep a score or its comment as such.

    Costs no query for a message to an open conversation that is no tapped choice, nor for one to
    a conversation resolved longer ago than a survey's answer and comment could take.
    """
    tapped = str((message.metadata or {}).get("choice", "")).startswith(CHOICE_PREFIX)
    if not tapped:
        if conversation.status != Conversation.Status.RESOLVED or conversation.resolved_at is None:
            return ""
        if conversation.resolved_at < timezone.now() - ANSWER_WINDOW - COMMENT_WINDOW - timedelta(hours=1):
            return ""
    response = (
        CsatResponse.objects.select_for_update()
        .filter(conversation=conversation, survey__isnull=False)
        .select_related("survey")
        .first()
    )
    if response is None:
        return ""
    response.conversation = conversation
    now = timezone.now()
    score = score_of(message.text, message.metadata)
    if score is not None and (tapped or now - response.asked_at <= ANSWER_WINDOW):
        return record_score(response=response, score=score, message=message)
    if (
        score is None
        and response.score is not None
        and not response.comment
        and response.answered_at is not None
        and now - response.answered_at <= COMMENT_WINDOW
        and conversation.status == Conversation.Status.RESOLVED
        and message.text.strip()
    ):
        record_comment(response=response, comment=message.text)
        return "csat_comment"
    return ""


def record_score(*, response: CsatResponse, score: int, message: Message | None = None) -> str:
    """Store a score (a later one replaces it: the customer changed their mind); the first one is
    thanked, on the channel it came on, with an invitation to say more."""
    if not 1 <= score <= 5:
        raise ValueError("a score is 1 to 5")
    first = response.score is None
    now = timezone.now()
    response.score = score
    response.answered_at = now
    CsatResponse.objects.filter(pk=response.pk).update(score=score, answered_at=now)
    conversation = response.conversation
    activity.record_activity(conversation=conversation, action="csat_rated", by=None, data={"score": score})
    if first and message is not None and message.channel_id:
        try:
            with transaction.atomic():
                outbound.reply(
                    conversation=conversation,
                    text=_("Thank you! If you like, tell us in one message what we could do better."),
                    by=None,
                    sender=Message.Sender.SYSTEM,
                    channel=message.channel,
                    metadata={"csat": response.pk},
                )
        except ReplyRefused as exc:
            logger.info("CSAT thanks in conversation %s not sent: %s", conversation.pk, exc.reason)
    return "csat_score"


def record_comment(*, response: CsatResponse, comment: str) -> None:
    comment = comment.strip()[:MAX_COMMENT]
    now = timezone.now()
    response.comment = comment
    response.commented_at = now
    CsatResponse.objects.filter(pk=response.pk).update(comment=comment, commented_at=now)
    activity.record_activity(
        conversation=response.conversation, action="csat_comment", by=None, data={"comment": comment[:300]}
    )


# -- the email link --------------------------------------------------------------------------------


class BadToken(Exception):
    """A link that is forged, damaged (400) or too old (410)."""

    def __init__(self, reason: str, *, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def email_token(response_id: int, score: int) -> str:
    return signing.dumps({"r": response_id, "s": score}, salt=SIGNING_SALT, compress=True)


def read_token(token: str) -> tuple[CsatResponse, int]:
    """The answer row and the score a signed link names; :class:`BadToken` for a forged, damaged or
    expired one, or one whose conversation is gone."""
    try:
        data = signing.loads(token, salt=SIGNING_SALT, max_age=EMAIL_LINK_MAX_AGE)
        response_id, score = int(data["r"]), int(data["s"])
    except signing.SignatureExpired as exc:
        raise BadToken(_("This link has expired."), status=410) from exc
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise BadToken(_("This link is not valid.")) from exc
    response = CsatResponse.objects.select_related("conversation").filter(pk=response_id).first()
    if response is None or not 1 <= score <= 5:
        raise BadToken(_("This link is not valid."))
    return response, score


def answer_from_link(*, token: str) -> CsatResponse:
    """The click on an email's score link: record that score (again: the same score changes nothing)."""
    response, score = read_token(token)
    with transaction.atomic():
        response = CsatResponse.objects.select_for_update().select_related("conversation").get(pk=response.pk)
        if response.score != score:
            record_score(response=response, score=score)
    return response


def comment_from_link(*, token: str, comment: str) -> CsatResponse:
    response, _score = read_token(token)
    with transaction.atomic():
        response = CsatResponse.objects.select_for_update().select_related("conversation").get(pk=response.pk)
        if comment.strip():
            record_comment(response=response, comment=comment)
    return response
