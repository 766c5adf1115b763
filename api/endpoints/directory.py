"""Who and where: the token itself, teams, operators, channels (never their settings or secrets)
and saved replies, each as the token's operator sees them in the UI."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from api.auth import operator_of, token_of
from api.problems import declared, reject_unknown_query
from api.schemas import ChannelOut, Me, OperatorOut, SavedReplyOut, TeamOut
from common.db import MAX_ID
from inbox.models import Channel, Operator, SavedReply, Team
from inbox.selectors.saved_replies import saved_replies, saved_reply_for

router = Router(tags=["directory"])


def _teams(operator: Operator) -> QuerySet[Team]:
    return Team.objects.all() if operator.is_staff else Team.objects.filter(pk__in=operator.team_ids)


def _operators(operator: Operator) -> QuerySet[Operator]:
    """Staff see everyone; operators their teammates (as the inbox's presence list does)."""
    operators = Operator.objects.filter(is_active=True)
    if not operator.is_staff:
        operators = operators.filter(teams__in=operator.team_ids).distinct()
    return operators.prefetch_related("teams").order_by("username")


def _in_range(pk: int, model: type[Team] | type[Operator] | type[Channel] | type[SavedReply]) -> None:
    if not 1 <= pk <= MAX_ID:
        raise model.DoesNotExist


@router.get("/me", response={200: Me} | declared(), summary="The token and who it acts as")
def me(request: HttpRequest) -> Me:
    token, operator = token_of(request), operator_of(request)
    return Me(
        token=token.name,
        scope="integration" if token.team_id else "operator",
        operator_id=operator.pk,
        username=operator.username,
        is_staff=operator.is_staff,
        team_ids=sorted(operator.team_ids),
    )


@router.get("/teams", response={200: list[TeamOut]} | declared())
def list_teams(request: HttpRequest) -> list[TeamOut]:
    return [TeamOut.of(t) for t in _teams(operator_of(request))]


@router.get("/teams/{team_id}", response={200: TeamOut} | declared())
def get_team(request: HttpRequest, team_id: int) -> TeamOut:
    _in_range(team_id, Team)
    return TeamOut.of(_teams(operator_of(request)).get(pk=team_id))


@router.get("/operators", response={200: list[OperatorOut]} | declared())
def list_operators(request: HttpRequest) -> list[OperatorOut]:
    return [OperatorOut.of(o) for o in _operators(operator_of(request))]


@router.get("/operators/{operator_id}", response={200: OperatorOut} | declared())
def get_operator(request: HttpRequest, operator_id: int) -> OperatorOut:
    _in_range(operator_id, Operator)
    return OperatorOut.of(_operators(operator_of(request)).get(pk=operator_id))


@router.get("/channels", response={200: list[ChannelOut]} | declared())
def list_channels(request: HttpRequest) -> list[ChannelOut]:
    """The channels of the token's teams (all for staff); settings and secrets are never returned."""
    return [ChannelOut.of(c) for c in Channel.objects.visible_to(operator_of(request)).order_by("name", "pk")]


@router.get("/channels/{channel_id}", response={200: ChannelOut} | declared())
def get_channel(request: HttpRequest, channel_id: int) -> ChannelOut:
    _in_range(channel_id, Channel)
    return ChannelOut.of(Channel.objects.visible_to(operator_of(request)).get(pk=channel_id))


class SavedReplyQuery(Schema):
    q: str = Field("", max_length=200, description="Words in the title or the text.")


@router.get("/saved-replies", response={200: list[SavedReplyOut]} | declared())
def list_saved_replies(request: HttpRequest, query: Query[SavedReplyQuery]) -> list[SavedReplyOut]:
    """Everyone's saved replies and those of the token's teams; title matches first."""
    reject_unknown_query(request, SavedReplyQuery)
    return [SavedReplyOut.of(r) for r in saved_replies(operator=operator_of(request), query=query.q)]


@router.get("/saved-replies/{saved_reply_id}", response={200: SavedReplyOut} | declared())
def get_saved_reply(request: HttpRequest, saved_reply_id: int) -> SavedReplyOut:
    _in_range(saved_reply_id, SavedReply)
    return SavedReplyOut.of(saved_reply_for(operator=operator_of(request), saved_reply_id=saved_reply_id))
