"""Saved replies: the only writers of :class:`~inbox.models.SavedReply`, and their placeholders.

Who may do what (one rule, checked here for the admin, the ``/replies/`` page and anything else):

- everyone uses the saved replies they can see: those of their teams and the team-less ones
  (``SavedReply.objects.visible_to``); staff see all;
- staff add, change and delete any saved reply, team-less ones included;
- operators add, change and delete the saved replies of their own teams, never team-less ones nor
  another team's.

Placeholders are filled by one explicit replacement (:func:`render_for`): a known ``{name}`` becomes
its value, anything else is left exactly as written. No ``str.format`` and no template engine ever
sees the text, so a saved reply cannot reach an attribute or run code, and a value is never scanned
again (a customer named ``{operator_name}`` stays that).
"""

from __future__ import annotations

import re

from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_stubs_ext import StrOrPromise

from inbox.models import Conversation, Operator, SavedReply, Team

# The placeholders a saved reply may use, with what they stand for (shown in the forms).
PLACEHOLDERS: dict[str, StrOrPromise] = {
    "customer_name": gettext_lazy("the customer's name"),
    "customer_first_name": gettext_lazy("the customer's first name"),
    "operator_name": gettext_lazy("your name as the customer sees it"),
    "team": gettext_lazy("the conversation's team"),
}

# Anything in braces without spaces looks like a placeholder: known ones are filled, others reported.
_PLACEHOLDER = re.compile(r"\{([^{}\s]{1,64})\}")
# Stands for a placeholder that had no value until the text around it is tidied.
_GAP = "\x00"
# Empty values at the start of a line take the comma and spaces after them, and the sentence then
# starts with a capital ("{x}, thanks" → "Thanks").
_GAP_AT_LINE_START = re.compile(r"^[ \t]*(?:\x00(?:[ \t]*,)?[ \t]*)+(\w?)", re.MULTILINE)
# Elsewhere it takes the spaces and a comma before it ("Hi {x}," → "Hi,", "Thanks, {x}." → "Thanks.").
_GAP_INSIDE = re.compile(r"[ \t]*(?:,[ \t]*)?\x00")


def can_manage(operator: Operator, team: Team | None) -> bool:
    """Whether ``operator`` may add, change or delete a saved reply of ``team`` (``None``: everyone's)."""
    if operator.is_staff:
        return True
    return team is not None and team.pk in operator.team_ids


def manageable_teams(operator: Operator) -> QuerySet[Team]:
    """The teams whose saved replies ``operator`` manages (staff: every team, and team-less ones)."""
    return Team.objects.all() if operator.is_staff else Team.objects.filter(pk__in=operator.team_ids)


def _check_can_manage(by: Operator | None, team: Team | None) -> None:
    if by is None or can_manage(by, team):
        return
    if team is None:
        raise PermissionDenied(_("Only admins may change the saved replies of every team."))
    raise PermissionDenied(_("You may only change the saved replies of your own teams."))


def unknown_placeholders(text: str) -> list[str]:
    """The ``{words}`` in ``text`` that are no placeholder Parley fills in, each once, in order."""
    found = (match.group(0) for match in _PLACEHOLDER.finditer(text) if match.group(1) not in PLACEHOLDERS)
    return list(dict.fromkeys(found))


def unknown_placeholders_warning(text: str) -> str:
    """What a person saving ``text`` reads about its unknown ``{words}`` (empty when there are none)."""
    unknown = unknown_placeholders(text)
    if not unknown:
        return ""
    return _("Parley does not fill in %(unknown)s: it is sent as written. The placeholders are %(known)s.") % {
        "unknown": ", ".join(unknown),
        "known": ", ".join(f"{{{name}}}" for name in PLACEHOLDERS),
    }


def _save(saved_reply: SavedReply, *, title: str, text: str, team: Team | None) -> SavedReply:
    saved_reply.title = title.strip()
    saved_reply.text = text.strip()
    saved_reply.team = team
    try:
        # Field rules and both uniqueness constraints, with readable messages.
        saved_reply.full_clean(exclude=["created_by"])
    except ValidationError as error:
        # A constraint's error names no field: it is the title that is taken.
        raise ValidationError(
            {("title" if field == NON_FIELD_ERRORS else field): errors for field, errors in error.message_dict.items()}
        ) from None
    try:
        with transaction.atomic():
            if saved_reply._state.adding:
                saved_reply.save()
            else:
                saved_reply.save(update_fields=["title", "text", "team", "updated_at"])
    except IntegrityError:
        # Someone saved the same title a moment earlier.
        raise ValidationError({"title": _("A saved reply with this title was just saved by someone else.")}) from None
    return saved_reply


def create_saved_reply(*, title: str, text: str, team: Team | None, by: Operator | None) -> SavedReply:
    """A new saved reply. Raises ``PermissionDenied`` (see the module's rule) or ``ValidationError``."""
    _check_can_manage(by, team)
    return _save(SavedReply(created_by=by), title=title, text=text, team=team)


def update_saved_reply(
    *, saved_reply: SavedReply, title: str, text: str, team: Team | None, by: Operator | None
) -> SavedReply:
    """Change a saved reply; an operator may move it only between teams they manage."""
    _check_can_manage(by, saved_reply.team)
    _check_can_manage(by, team)
    return _save(saved_reply, title=title, text=text, team=team)


def delete_saved_reply(*, saved_reply: SavedReply, by: Operator | None) -> None:
    _check_can_manage(by, saved_reply.team)
    saved_reply.delete()


def placeholder_values(*, conversation: Conversation, operator: Operator) -> dict[str, str]:
    """What each placeholder stands for in ``conversation`` written by ``operator`` (empty when unknown)."""
    name = " ".join(conversation.customer.name.split())
    team = conversation.team
    return {
        "customer_name": name,
        "customer_first_name": name.split(" ", 1)[0] if name else "",
        "operator_name": str(operator).strip(),
        "team": team.name.strip() if team is not None else "",
    }


def fill_placeholders(text: str, values: dict[str, str]) -> str:
    """``text`` with each known ``{name}`` replaced by its value; unknown ones are kept as written.

    Where a value is empty the text around it is tidied: "Hi {customer_name}," becomes "Hi," and
    "{customer_name}, thanks" at the start of a line becomes "Thanks".
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        return values[name].replace(_GAP, "") or _GAP

    filled = _PLACEHOLDER.sub(value, text.replace(_GAP, ""))
    if _GAP not in filled:
        return filled
    filled = _GAP_AT_LINE_START.sub(lambda match: match.group(1).upper(), filled)
    return _GAP_INSIDE.sub("", filled)


def render_for(*, saved_reply: SavedReply, conversation: Conversation, operator: Operator) -> str:
    """The saved reply's text for ``conversation``, as ``operator`` would send it."""
    return fill_placeholders(saved_reply.text, placeholder_values(conversation=conversation, operator=operator))
