"""The bot as the core's assistant (``inbox.assistant``): what voice and the website chat ask of it."""

from __future__ import annotations

import logging
from datetime import datetime

from bot import hours
from bot.engine import Action
from bot.knowledge import triage_text
from bot.models import Article
from bot.services import wants_a_person
from inbox.assistant import OPEN, Hours
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

    def team_hours(self, *, team_id: int, at: datetime) -> Hours:
        """From the process's cached schedule (no query while the hours are unchanged)."""
        schedule = hours.cached_schedule(team_id)
        if schedule is None or hours.is_open_by(schedule, at):
            return OPEN
        back = None
        for start, _end in schedule.windows(at.astimezone(schedule.zone).date()):
            if start > at:
                back = start
                break
        return Hours(open=False, back=back)
