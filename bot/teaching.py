"""Teaching the bot from operators' answers: the question an answer replied to becomes an example.

An operator who answered what the bot could not picks (or accepts) the article the question belongs
to, or, as staff, makes the answer a new article. The bot embeds only the new example text on its
next turn (:mod:`bot.knowledge` caches vectors by text).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.translation import gettext as _

from bot import knowledge
from bot.encoders import get_encoder
from bot.models import Article, BotDecision, ExampleQuestion, KnownOutOfScope
from bot.services import customer_messages
from inbox.models import Message, Operator
from inbox.services.activity import record_activity
from inbox.services.conversations import ReplyRefused, can_see
from inbox.services.outbound import update_message

logger = logging.getLogger(__name__)

# A question's home is offered by default when the bot ranked that article first with at least this
# share of the confidence it needs to answer (the bot nearly knew; a person showed it the way).
SUGGEST_SHARE = 0.4


class PickAnArticle(ReplyRefused):
    """No article is close enough to be the default, and the operator may not create one: they pick."""


@dataclass(frozen=True)
class ExampleSuggestion:
    """Where an operator's answer could teach the bot: the question it answered and candidate articles."""

    question: Message
    text: str
    language: str
    candidates: list[tuple[Article, float]]  # active articles the bot ranks for the question, best first
    default: Article | None  # close enough to be the one-click choice


def _is_operator_answer(message: Message) -> bool:
    return (
        message.direction == Message.Direction.OUTBOUND
        and message.sender == Message.Sender.OPERATOR
        and message.kind == Message.Kind.MESSAGE
        and bool(message.text.strip())
    )


def _ranked_for(question: Message, text: str, language: str) -> tuple[list[tuple[int, float]], float | None]:
    """(article id, confidence) best first, and the threshold the bot held them to (None: uncalibrated).

    The bot's own ranking when it decided on this question (what it "ranked first"), else a fresh one.
    """
    decision = BotDecision.objects.filter(message=question).first()
    scores = decision.scores if decision is not None else {}
    if scores.get("candidates"):
        ranked = [(int(c["article_id"]), float(c["confidence"])) for c in scores["candidates"]]
        threshold = scores.get("threshold")
        return ranked, float(threshold) if threshold is not None else None

    encoder = get_encoder()
    snapshot = knowledge.current_snapshot(encoder=encoder)
    ranking = snapshot.index.rank(text, allowed=snapshot.allowed(question.channel_id), language=language)
    found = knowledge.operating_point(encoder=encoder, language=language)
    threshold = found[0].threshold if found is not None and math.isfinite(found[0].threshold) else None
    return [(c.article_id, c.confidence) for c in ranking.candidates], threshold


def suggest_example(*, message: Message) -> ExampleSuggestion:
    """The customer question an operator's answer replied to, and the articles it could teach.

    The question is the latest customer message before the answer in its conversation. Raises
    ``ReplyRefused`` when ``message`` is not an operator's answer or no question comes before it.
    """
    if not _is_operator_answer(message):
        raise ReplyRefused(_("Only an operator's answer to the customer can become an example question."))
    question = (
        customer_messages(message.conversation)
        .filter(kind=Message.Kind.MESSAGE, created_at__lte=message.created_at)
        .exclude(pk=message.pk)
        .exclude(text="")
        .order_by("-created_at", "-pk")
        .first()
    )
    text = " ".join(question.text.split()) if question is not None else ""
    if question is None or not text:
        raise ReplyRefused(_("No customer question comes before this answer."))
    if len(text) > MAX_EXAMPLE_LENGTH:
        raise ReplyRefused(
            _("The customer's message is too long to be an example question (at most %(limit)d characters).")
            % {"limit": MAX_EXAMPLE_LENGTH}
        )

    language = knowledge.message_language(text)
    ranked, threshold = _ranked_for(question, text, language)
    articles = Article.objects.active().in_bulk([pk for pk, _confidence in ranked])
    candidates = [(articles[pk], confidence) for pk, confidence in ranked if pk in articles]
    default = None
    if candidates and threshold is not None and candidates[0][1] >= SUGGEST_SHARE * threshold:
        default = candidates[0][0]
    return ExampleSuggestion(question, text, language, candidates, default)


MAX_EXAMPLE_LENGTH = 500  # ExampleQuestion.text


def _title_from(question: str) -> str:
    title = question.strip()
    if len(title) > 200:
        title = title[:199].rsplit(" ", 1)[0] + "…"
    return title[:1].upper() + title[1:]


def add_example_question(
    *, message: Message, by: Operator, article: Article | None = None, new_article: bool = False
) -> ExampleQuestion:
    """Teach the bot from an operator's answer: the question it answered becomes an example question.

    It goes to ``article``; else to the article the bot ranked first for the question when that
    was close enough; else (``new_article``, or nothing close) to a new article whose answer is the
    operator's text, titled from the question. Operators of the conversation's team may add
    examples to existing articles; a new article (the bot will say it to every customer who asks)
    needs staff. Who added what stays in the thread. Picking again moves the example (and drops an
    article this answer created that nothing else uses). The bot's vector cache embeds only the new
    text on its next turn. Raises ``PickAnArticle`` when no article is close and ``by`` may not
    create one, ``ReplyRefused`` for a message that cannot teach, ``PermissionDenied`` otherwise.
    """

    conversation = message.conversation
    if not can_see(by, conversation):
        raise PermissionDenied(_("This conversation belongs to another team."))
    suggestion = suggest_example(message=message)
    if article is None and not new_article:
        article = suggestion.default
        if article is None:
            if not by.is_staff:
                raise PickAnArticle(_("No article is close to this question: pick the one it belongs to."))
            new_article = True
    if new_article and not by.is_staff:
        raise PermissionDenied(_("Only staff can add articles to the knowledge base; pick an existing article."))
    if article is not None and not new_article and not article.is_active:
        raise ReplyRefused(_("That article is switched off."))
    with transaction.atomic():
        if new_article:
            article = Article.objects.create(
                title=_title_from(suggestion.text), answer=message.text.strip(), language=suggestion.language
            )
        assert article is not None  # noqa: S101 - set above
        example, created = ExampleQuestion.objects.get_or_create(
            article=article, text=suggestion.text, defaults={"language": suggestion.language}
        )
        _drop_previous_example(message, keep=example)
        # A question people answered is no longer one the bot must leave alone.
        KnownOutOfScope.objects.filter(text=suggestion.text).delete()
        record = {
            "article_id": article.pk,
            "article_title": article.title,
            "example_id": example.pk,
            "question_id": suggestion.question.pk,
            "new_article": new_article,
            "by": by.pk,
        }
        update_message(message_id=message.pk, change=lambda metadata: ({**metadata, "example": record}, None))
        record_activity(
            conversation=conversation,
            action="example_added",
            by=by,
            data={
                "article": article.pk,
                "title": article.title,
                "question": suggestion.text,
                "language": suggestion.language,
                "example": example.pk,
                "new_article": new_article,
                "created": created,
            },
        )
    logger.info("operator %s taught example %s to article %s", by.pk, example.pk, article.pk)
    return example


def _drop_previous_example(message: Message, *, keep: ExampleQuestion) -> None:
    """Picking another article moves the example this answer made (and its own new article, if unused)."""
    previous = (Message.objects.filter(pk=message.pk).values_list("metadata", flat=True).first() or {}).get("example")
    if not previous or previous.get("example_id") == keep.pk:
        return
    ExampleQuestion.objects.filter(pk=previous.get("example_id"), text=keep.text).delete()
    if previous.get("new_article") and previous.get("article_id") != keep.article_id:
        Article.objects.filter(pk=previous.get("article_id"), examples__isnull=True).delete()
