# ruff: noqa: RUF001 -- the bot speaks Russian, Ukrainian and Persian: those letters are meant.
"""The bot's turn: after a customer message commits, answer, ask, or hand the conversation to people.

Policy, in order (the first that applies wins):

1. Stay silent on anything that is not the customer's latest real message in a conversation the
   bot owns: auto-replies, messages already decided (a retried task), messages a newer one
   follows, conversations a person owns. The bot only ever reacts to inbound customer messages,
   so it cannot answer itself into a loop.
2. Hand off on an explicit request for a person (en, ru, uk, fa), on a rule (a VIP customer, a
   label or a keyword the channel lists, a message that is not text), after two unhelpful
   answers in a row, or after too many bot turns without a person.
3. Otherwise rank the knowledge base: answer when confident, ask "did you mean A or B?" when the
   best two are close, hand off below the calibrated threshold or without a calibration. With
   ``BOT_BACKEND=llm`` the best-ranked articles and the conversation go to a language model
   instead (:mod:`bot.llm`), which answers from them or hands off; rules 1, 2 and the
   "same article twice" rule apply to it unchanged.

Any error or timeout hands off (fail open: to people, never to silence). The bot sends through
the core's ``reply`` service and leaves its context in the thread with ``record_activity``.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from bot import hours, knowledge, llm
from bot.encoders import get_encoder
from bot.engine import Action, Verdict
from bot.models import Article, BotDecision
from common.events import send_on_commit
from inbox import signals
from inbox.models import Channel, Conversation, Message, Operator
from inbox.realtime import publish
from inbox.services.activity import record_activity
from inbox.services.conversations import ReplyRefused, can_see
from inbox.services.outbound import reply

logger = logging.getLogger(__name__)

# Bot turns (answers and questions) in a row without a person before the bot steps aside anyway.
MAX_BOT_TURNS = 6
UNHELPFUL_LIMIT = 2

_PERSON_WORDS = {
    "en": r"operator|human|real person|a person|live agent|agent|representative|someone real|manager|support staff|talk to someone|speak to someone",
    "ru": r"оператор\w*|человек\w*|живо\w+ человек\w*|менеджер\w*|специалист\w*|сотрудник\w*",
    "uk": r"оператор\w*|людин\w*|живо\w+ людин\w*|менеджер\w*|спеціаліст\w*|працівник\w*",
    "fa": r"اپراتور|اوپراتور|انسان|کارشناس|پشتیبان|آدم واقعی|یک نفر",
    # Western European languages (told apart among the knowledge base's languages, language.py).
    "es": r"operador\w*|una persona|persona real|humano|agente|asesor\w*|hablar con alguien",
    "pt": r"atendente|operador\w*|uma pessoa|pessoa real|humano|falar com alguém",
    "de": r"mitarbeiter\w*|mensch\w*|echte person|berater\w*|kundendienst\w*|mit jemandem sprechen",
    "fr": r"opérat(?:eur|rice)\w*|un humain|une personne|une vraie personne|un conseiller|une conseillère|parler à quelqu'un",
    "it": r"operat(?:ore|rice)|una persona|persona reale|umano|parlare con qualcuno",
}
_PERSON = re.compile(r"(?<!\w)(?:" + "|".join(_PERSON_WORDS.values()) + r")(?!\w)", re.IGNORECASE)

_NOT_HELPFUL_WORDS = (
    r"no|nope|wrong|not helpful|didn'?t help|doesn'?t help|not what i (?:asked|meant|need)|that'?s not it|useless"
    r"|нет|не то|не помогл\w*|не помог|бесполезно"
    r"|ні|не те|не допомогл\w*|не допоміг|марно"
    r"|نه|کمکی نکرد|کمک نکرد|اشتباه"
    r"|no me ayud\w*|no sirve|no es eso|incorrecto|inútil"
    r"|não|nao|não ajudou|não é isso|errado"
    r"|nein|falsch|hilft nicht|hat nicht geholfen|nicht hilfreich|das ist es nicht|nutzlos"
    r"|non|faux|ça n'aide pas|pas utile|ce n'est pas ça|inutile"
    r"|sbagliato|non aiuta|non mi ha aiutato|non è questo"
)
_NOT_HELPFUL = re.compile(r"(?<!\w)(?:" + _NOT_HELPFUL_WORDS + r")(?!\w)", re.IGNORECASE)

_PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "clarify": "Did you mean:\n1. {first}\n2. {second}\nReply 1 or 2, or tell me more.",
        "handoff": "I am passing you to a colleague, who will answer here as soon as possible.",
    },
    "ru": {
        "clarify": "Вы имели в виду:\n1. {first}\n2. {second}\nОтветьте 1 или 2 или расскажите подробнее.",
        "handoff": "Передаю ваш вопрос коллеге: он ответит здесь, как только сможет.",
    },
    "uk": {
        "clarify": "Ви мали на увазі:\n1. {first}\n2. {second}\nВідповідайте 1 або 2 чи розкажіть докладніше.",
        "handoff": "Передаю ваше питання колезі: він відповість тут, щойно зможе.",
    },
    "fa": {
        "clarify": "منظورتان این بود؟\n۱. {first}\n۲. {second}\nبا ۱ یا ۲ پاسخ دهید یا بیشتر توضیح دهید.",
        "handoff": "گفتگو را به یکی از همکارانم می‌سپارم؛ او در همین‌جا در اولین فرصت پاسخ می‌دهد.",
    },
    "es": {
        "clarify": "¿Se refiere a…?\n1. {first}\n2. {second}\nResponda 1 o 2, o cuénteme más.",
        "handoff": "Le paso con un compañero, que le responderá aquí lo antes posible.",
    },
    "pt": {
        "clarify": "Você quis dizer:\n1. {first}\n2. {second}\nResponda 1 ou 2, ou conte-me mais.",
        "handoff": "Vou passar você para um colega, que responderá aqui o mais breve possível.",
    },
    "de": {
        "clarify": "Meinten Sie:\n1. {first}\n2. {second}\nAntworten Sie mit 1 oder 2, oder erzählen Sie mir mehr.",
        "handoff": "Ich gebe Ihr Anliegen an das Team weiter; wir antworten hier so bald wie möglich.",
    },
    "fr": {
        "clarify": "Vouliez-vous dire :\n1. {first}\n2. {second}\nRépondez 1 ou 2, ou dites-m’en plus.",
        "handoff": "Je vous passe à un collègue, qui vous répondra ici dès que possible.",
    },
    "it": {
        "clarify": "Intendeva:\n1. {first}\n2. {second}\nRisponda 1 o 2, oppure mi dica di più.",
        "handoff": "La passo a un collega, che le risponderà qui il prima possibile.",
    },
}
_CHOICE = {
    "1": 0,
    "2": 1,
    "۱": 0,
    "۲": 1,
    "first": 0,
    "second": 1,
    "первое": 0,
    "второе": 1,
    "перше": 0,
    "друге": 1,
    "primero": 0,
    "segundo": 1,
    "primeiro": 0,
    "erste": 0,
    "zweite": 1,
    "premier": 0,
    "deuxième": 1,
    "primo": 0,
    "secondo": 1,
}


def wants_a_person(text: str) -> bool:
    """An explicit request for a person: English, Russian, Ukrainian, Persian, Spanish, Portuguese, German, French, Italian."""
    return bool(_PERSON.search(text))


def says_not_helpful(text: str) -> bool:
    """A short reply that says the last answer did not help ("no", "не то", "نه"...)."""
    return len(text.split()) <= 6 and bool(_NOT_HELPFUL.search(text))


def phrase(key: str, language: str, **values: str) -> str:
    """The bot's own sentence in ``language`` (``pt-br``: Portuguese), else in English."""
    phrases = _PHRASES.get(language) or _PHRASES.get(language.split("-")[0]) or _PHRASES["en"]
    return phrases[key].format(**values)


@dataclass
class Plan:
    """What the bot is about to do with one message (computed before anything is written)."""

    action: str  # a BotDecision.Action value
    reason: str
    language: str = "en"
    article_id: int | None = None
    offered: list[int] = field(default_factory=list)
    verdict: Verdict | None = None
    encoder: str = ""
    unhelpful: bool = False  # this message shows the bot's previous answer did not help
    text: str = ""  # the bot's own words for an answer (the LLM backend); else the article's answer
    log: dict[str, Any] = field(default_factory=dict)  # more to keep in BotDecision.scores

    def scores(self) -> dict[str, Any]:
        return {**(self.verdict.as_log() if self.verdict is not None else {}), **self.log}


def _last_decisions(conversation: Conversation, limit: int) -> list[BotDecision]:
    return list(BotDecision.objects.filter(conversation=conversation).order_by("-created_at", "-pk")[:limit])


def _bot_turns_in_a_row(conversation: Conversation) -> tuple[int, int]:
    """(answers and questions since the last hand-off or person, of which unhelpful in a row at the end)."""
    turns = unhelpful = 0
    counting_unhelpful = True
    for decision in _last_decisions(conversation, MAX_BOT_TURNS + 1):
        if decision.action == BotDecision.Action.HANDOFF:
            break
        if decision.action in (BotDecision.Action.ANSWER, BotDecision.Action.CLARIFY):
            turns += 1
        if counting_unhelpful and decision.scores.get("unhelpful"):
            unhelpful += 1
        elif decision.action != BotDecision.Action.SKIP:
            counting_unhelpful = False
    return turns, unhelpful


def _rule(message: Message, conversation: Conversation, channel: Channel | None) -> str:
    """The reason a channel or customer rule hands this message to people ('' when none does)."""
    rules: dict[str, Any] = (channel.settings.get("bot") if channel is not None else None) or {}
    customer = conversation.customer
    if customer.is_vip and rules.get("hand_off_vip", True):
        return "rule_vip"
    labels = set(rules.get("hand_off_labels", ["human-only"]))
    if labels & set(customer.labels or []) or labels & set(conversation.labels or []):
        return "rule_label"
    keywords = [str(k).lower() for k in rules.get("hand_off_keywords", [])]
    text = message.text.lower()
    if any(keyword and keyword in text for keyword in keywords):
        return "rule_keyword"
    if message.kind != Message.Kind.MESSAGE:
        return "rule_not_text"
    return ""


def _picked_offer(text: str, previous: BotDecision | None) -> int | None:
    """The article the customer picked after "did you mean A or B?" ("1", "2", "first"...)."""
    if previous is None or previous.action != BotDecision.Action.CLARIFY or len(previous.offered) < 2:
        return None
    choice = _CHOICE.get(text.strip().strip(".!) ").lower())
    return previous.offered[choice] if choice is not None else None


def plan_reply(*, message: Message) -> Plan:
    """Decide what to do with ``message`` without writing anything (errors propagate)."""

    conversation = message.conversation
    text = message.text.strip()
    language = knowledge.message_language(text) if text else (conversation.customer.language or "en")
    if wants_a_person(text):
        return Plan(BotDecision.Action.HANDOFF, "asked_for_person", language)
    rule = _rule(message, conversation, message.channel)
    if rule:
        return Plan(BotDecision.Action.HANDOFF, rule, language)
    if not text:
        return Plan(BotDecision.Action.HANDOFF, "no_text", language)
    previous = next(iter(_last_decisions(conversation, 1)), None)
    turns, streak = _bot_turns_in_a_row(conversation)
    bot_spoke_last = previous is not None and previous.action in (BotDecision.Action.ANSWER, BotDecision.Action.CLARIFY)
    said_no = bot_spoke_last and says_not_helpful(text)
    if said_no and streak + 1 >= UNHELPFUL_LIMIT:
        return Plan(BotDecision.Action.HANDOFF, "unhelpful_twice", language, unhelpful=True)
    if turns >= MAX_BOT_TURNS:
        return Plan(BotDecision.Action.HANDOFF, "too_many_turns", language)
    picked = _picked_offer(text, previous)
    if picked is not None and Article.objects.active().filter(pk=picked).exists():
        return Plan(BotDecision.Action.ANSWER, "picked_from_offer", language, article_id=picked)

    if llm.enabled():
        plan = _plan_with_llm(message, text, language)
    else:
        encoder = get_encoder()
        verdict = knowledge.triage_text(text=text, channel_id=message.channel_id, encoder=encoder, language=language)
        plan = Plan(BotDecision.Action.HANDOFF, verdict.reason, language, verdict=verdict, encoder=encoder.name)
        if verdict.action is Action.ANSWER:
            plan.action, plan.article_id = BotDecision.Action.ANSWER, verdict.article_ids[0]
        elif verdict.action is Action.CLARIFY:
            plan.action, plan.offered = BotDecision.Action.CLARIFY, verdict.article_ids
    # The last answer did not help when the customer says so, or asks for the same article again.
    repeated = (
        previous is not None
        and previous.action == BotDecision.Action.ANSWER
        and plan.article_id is not None
        and previous.article_id == plan.article_id
    )
    plan.unhelpful = said_no or repeated
    if plan.unhelpful and streak + 1 >= UNHELPFUL_LIMIT:
        plan.action, plan.reason, plan.article_id, plan.offered, plan.text = (
            BotDecision.Action.HANDOFF,
            "unhelpful_twice",
            None,
            [],
            "",
        )
    return plan


def _plan_with_llm(message: Message, text: str, language: str) -> Plan:
    """The LLM backend's answer or hand-off (``BOT_BACKEND=llm``), after the same rules as the knowledge base's."""
    outcome = llm.answer(message=message, text=text, language=language)
    plan = Plan(BotDecision.Action.HANDOFF, outcome.reason, language, encoder=outcome.backend, log=outcome.log)
    if outcome.action == llm.ANSWER:
        plan.action, plan.article_id, plan.text = BotDecision.Action.ANSWER, outcome.article_ids[0], outcome.text
    return plan


def run_triage(*, message_id: int) -> BotDecision | None:
    """The bot's turn for one stored customer message; None when the bot stays out of it.

    Safe to call twice for the same message (the second call finds the decision and stops) and
    from any process. Never raises: whatever goes wrong hands the conversation to people.
    """
    message = (
        Message.objects.select_related("conversation__customer", "channel")
        .filter(pk=message_id, direction=Message.Direction.INBOUND, sender=Message.Sender.CUSTOMER)
        .first()
    )
    if message is None or message.metadata.get("auto_reply"):
        return None
    conversation = message.conversation
    if conversation.handler != Conversation.Handler.BOT or conversation.status == Conversation.Status.RESOLVED:
        return None
    if BotDecision.objects.filter(message=message).exists():
        return None
    newer = Message.objects.filter(
        conversation=conversation,
        direction=Message.Direction.INBOUND,
        sender=Message.Sender.CUSTOMER,
        created_at__gt=message.created_at,
    ).exclude(metadata__has_key="auto_reply")  # the core sets the key only when true
    if newer.exists():
        return None  # the customer wrote again: the bot answers the newest message only
    started = time.perf_counter()
    try:
        plan = plan_reply(message=message)
    except SoftTimeLimitExceeded:
        logger.warning("bot ran out of time on message %s; handing off", message_id)
        plan = Plan(BotDecision.Action.HANDOFF, "timeout")
    except Exception:
        logger.exception("bot failed on message %s; handing off", message_id)
        plan = Plan(BotDecision.Action.HANDOFF, "error")
    try:
        return _carry_out(message=message, plan=plan, elapsed_ms=(time.perf_counter() - started) * 1000)
    except Exception:
        logger.exception("bot could not act on message %s; handing off", message_id)
        return hand_off_after_failure(message_id=message_id, reason="error")


def hand_off_after_failure(*, message_id: int, reason: str) -> BotDecision | None:
    """Fail open: give the conversation to people after an error or a timeout (no reply is attempted)."""
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None or message.conversation.handler != Conversation.Handler.BOT:
        return None
    try:
        return _carry_out(message=message, plan=Plan(BotDecision.Action.HANDOFF, reason), elapsed_ms=None)
    except Exception:
        logger.exception("bot could not even hand off conversation %s", message.conversation_id)
        return None


def _carry_out(*, message: Message, plan: Plan, elapsed_ms: float | None, notify: bool = True) -> BotDecision | None:
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update().select_related("customer").get(pk=message.conversation_id)
        )
        if conversation.handler != Conversation.Handler.BOT:
            return None  # a person took over while the bot was thinking
        try:
            with transaction.atomic():
                decision = BotDecision.objects.create(
                    message=message,
                    conversation=conversation,
                    action=plan.action,
                    reason=plan.reason[:40],
                    article_id=plan.article_id,
                    offered=plan.offered,
                    language=plan.language,
                    encoder=plan.encoder,
                    confidence=plan.verdict.ranking.confidence if plan.verdict else None,
                    scores={**plan.scores(), "unhelpful": plan.unhelpful},
                    elapsed_ms=elapsed_ms,
                )
        except IntegrityError:
            return None  # decided already (a retried task)
        if plan.action == BotDecision.Action.ANSWER:
            article = Article.objects.filter(pk=plan.article_id or 0).first()
            if article is None:
                _hand_off(conversation, message, decision, "article_gone", notify=True)
            elif not _send(conversation, plan.text or article.answer, decision, _answer_metadata(article, plan)):
                _hand_off(conversation, message, decision, "reply_refused", notify=False)
        elif plan.action == BotDecision.Action.CLARIFY:
            titles = dict(Article.objects.filter(pk__in=plan.offered).values_list("pk", "title"))
            text = phrase("clarify", plan.language, first=titles[plan.offered[0]], second=titles[plan.offered[1]])
            if not _send(conversation, text, decision, {"offered": plan.offered}):
                _hand_off(conversation, message, decision, "reply_refused", notify=False)
        else:
            _hand_off(conversation, message, decision, plan.reason, notify=notify)
    return decision


def _answer_metadata(article: Article, plan: Plan) -> dict[str, Any]:
    """What a bot answer's message records: its article, and for a generated answer the model and every article cited."""
    about: dict[str, Any] = {"article_id": article.pk, "article_title": article.title}
    if plan.text:
        about |= {"generated_by": plan.encoder, "article_ids": plan.log.get("cited", [article.pk])}
    return about


def _send(conversation: Conversation, text: str, decision: BotDecision, extra: dict[str, Any]) -> bool:
    """Queue the bot's message through the core; False when it cannot go out (the caller hands off).

    The message carries what operators see beside it: the decision, its reason and confidence,
    and the article behind an answer (its title as the bot used it).
    """
    about = {
        "decision": decision.pk,
        "action": decision.action,
        "reason": decision.reason,
        "confidence": round(decision.confidence, 4) if decision.confidence is not None else None,
        **extra,
    }
    try:
        with transaction.atomic():  # a savepoint: a failed send must not break the hand-off after it
            reply(
                conversation=conversation,
                text=text,
                by=None,
                sender=Message.Sender.BOT,
                metadata={"bot": about},
            )
    except ReplyRefused as refused:
        logger.info("bot reply refused in conversation %s: %s", conversation.pk, refused.reason)
        return False
    except Exception:
        logger.exception("bot reply failed in conversation %s", conversation.pk)
        return False
    return True


def _hand_off(
    conversation: Conversation, message: Message, decision: BotDecision, reason: str, *, notify: bool
) -> None:
    """Owner becomes the team's queue, the customer is told, the bot's context stays in the thread."""
    if decision.reason != reason[:40]:
        decision.action, decision.reason = BotDecision.Action.HANDOFF, reason[:40]
        decision.save(update_fields=["action", "reason"])
    tried = list(
        BotDecision.objects.filter(conversation=conversation, action=BotDecision.Action.ANSWER)
        .exclude(article=None)
        .order_by("-created_at")
        .values_list("article__title", flat=True)[:5]
    )
    if notify:
        # Outside business hours the hand-off says when people are back (once per conversation).
        closed = hours.pending_notice(conversation=conversation, language=decision.language)
        text = closed or phrase("handoff", decision.language or "en")
        _send(conversation, text, decision, {"handoff": True, **({hours.AFTER_HOURS: True} if closed else {})})
    Conversation.objects.filter(pk=conversation.pk).update(handler=Conversation.Handler.HUMAN, version=F("version") + 1)
    send_on_commit(signals.conversation_handed_off, conversation_id=conversation.pk, reason=reason)
    record_activity(
        conversation=conversation,
        action="bot_handed_off",
        by=None,
        data={"reason": reason, "question": message.text[:500], "tried": tried, "scores": decision.scores},
    )
    logger.info("bot handed off conversation %s: %s %s", conversation.pk, reason, decision.scores)
    transaction.on_commit(lambda: publish.conversation_changed(conversation.pk))
    if conversation.assignee_id is None:
        transaction.on_commit(
            lambda: signals.conversation_queued.send(sender=Conversation, conversation_id=conversation.pk)
        )


# A customer message the bot has not taken its turn on after this long lost its task.
UNTRIAGED_AFTER = timedelta(minutes=2)


def sweep_untriaged() -> list[int]:
    """Hand off bot conversations whose latest customer message never got a decision; returns their ids."""
    now = timezone.now()
    swept = []
    conversations = Conversation.objects.filter(
        handler=Conversation.Handler.BOT,
        last_inbound_at__lt=now - UNTRIAGED_AFTER,
        last_inbound_at__gte=now - timedelta(days=1),
    ).exclude(status=Conversation.Status.RESOLVED)
    for conversation in conversations:
        latest = (
            Message.objects.filter(
                conversation=conversation, direction=Message.Direction.INBOUND, sender=Message.Sender.CUSTOMER
            )
            .exclude(metadata__has_key="auto_reply")  # the core sets the key only when true
            .order_by("-created_at", "-pk")
            .first()
        )
        if latest is None or BotDecision.objects.filter(message=latest).exists():
            continue
        if hand_off_after_failure(message_id=latest.pk, reason="bot_missed_turn") is not None:
            swept.append(conversation.pk)
    return swept


# -- giving a conversation back to the bot ---------------------------------------------------------


def give_back_refusal(conversation: Conversation) -> str:
    """Why the bot cannot take this conversation back ('' when it can), in words for the operator."""
    if conversation.status == Conversation.Status.RESOLVED:
        return _("A resolved conversation cannot go back to the bot; reopen it first.")
    if conversation.handler == Conversation.Handler.BOT:
        return _("The bot is already answering this conversation.")
    channel = conversation.last_channel
    if channel is None:
        return _("The customer has not written on any channel yet.")
    if not channel.bot_enabled:
        return _("The bot is not switched on for %(channel)s.") % {"channel": channel.name}
    return ""


def customer_messages(conversation: Conversation) -> Any:
    """The customer's own messages in ``conversation`` (auto-replies left out)."""
    return Message.objects.filter(
        conversation=conversation,
        direction=Message.Direction.INBOUND,
        sender=Message.Sender.CUSTOMER,
    ).exclude(metadata__has_key="auto_reply")  # the core sets the key only when true


def give_back_to_bot(*, conversation: Conversation, by: Operator | None) -> Conversation:
    """Hand a conversation back to the bot: it answers the customer's next message, not the ones before.

    The assignee is cleared (their capacity frees for other work), the thread records who did it,
    and every screen showing the conversation updates. Raises ``ReplyRefused`` with the reason when
    the bot cannot take it (see :func:`give_back_refusal`), ``PermissionDenied`` for another team's.
    """
    if by is not None and not can_see(by, conversation):
        raise PermissionDenied(_("This conversation belongs to another team."))
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        refusal = give_back_refusal(conversation)
        if refusal:
            raise ReplyRefused(refusal)
        previous = conversation.assignee
        Conversation.objects.filter(pk=conversation.pk).update(
            handler=Conversation.Handler.BOT, assignee=None, waiting_since=None, version=F("version") + 1
        )
        # People answered the customer so far: the bot stays silent on those messages (a late or
        # redelivered task, the sweep of missed turns) and takes its turn from the next one.
        latest = customer_messages(conversation).order_by("-created_at", "-pk").first()
        if latest is not None:
            try:
                with transaction.atomic():
                    BotDecision.objects.create(
                        message=latest,
                        conversation=conversation,
                        action=BotDecision.Action.SKIP,
                        reason="given_back",
                        language=knowledge.message_language(latest.text) if latest.text.strip() else "",
                    )
            except IntegrityError:
                pass  # the bot decided on it already
        record_activity(
            conversation=conversation,
            action="given_back_to_bot",
            by=by,
            data={"from": previous.pk, "from_name": str(previous)} if previous is not None else {},
        )
        transaction.on_commit(lambda: publish.conversation_changed(conversation.pk))
        if previous is not None:
            transaction.on_commit(lambda: signals.capacity_freed.send(sender=Operator, operator_id=previous.pk))
    conversation.refresh_from_db()
    return conversation
