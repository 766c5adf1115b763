"""The bot as the core's assistant (``inbox.assistant``): what voice asks of it."""

from __future__ import annotations

import logging

from bot.engine import Action
from bot.knowledge import triage_text
from bot.models import Article
from bot.services import wants_a_person
from inbox.models import Channel

logger = logging.getLogger(__name__)


class BotAssistant:
    def spoken_answer(self, *, channel: Channel, text: str, language: str) -> str | None:
        """The bot's answer to a spoken question when it is confident, else None (hand off).

        The same triage as for text (``bot.knowledge.triage_text``): an answer only on a calibrated,
        confident verdict; "did you mean A or B?" and hand-offs go to a person, since a choice
        between articles is clumsy by voice. Any failure of the bot also goes to a person.
        """
        try:
            verdict = triage_text(text=text, channel_id=channel.pk)
            if verdict.action is not Action.ANSWER or not verdict.article_ids:
                return None
            article = Article.objects.active().filter(pk=verdict.article_ids[0]).first()
        except Exception:
            logger.exception("the bot failed on a call; handing off")
            return None
        return article.answer if article is not None and article.answer.strip() else None

    def wants_a_person(self, text: str) -> bool:
        return wants_a_person(text)
