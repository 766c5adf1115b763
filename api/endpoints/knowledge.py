"""The bot's knowledge base, read-only: staff only, as the ``/kb/`` pages are (403 for others)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema

from api.auth import operator_of
from api.problems import declared, reject_unknown_query
from api.schemas import ArticleOut, Out
from bot.models import Article
from common.db import MAX_ID

router = Router(tags=["knowledge base"])


class ArticleQuery(Schema):
    language: str = Field("", max_length=16)
    active: bool | None = None
    cursor: str | None = Field(None, pattern=r"^[0-9]{1,18}$", description="``next_cursor`` of the previous page.")
    limit: int = Field(50, ge=1, le=200)


class ArticlePage(Out):
    items: list[ArticleOut]
    next_cursor: str | None


def _staff(request: HttpRequest) -> None:
    if not operator_of(request).is_staff:
        raise PermissionDenied(_("The knowledge base is for staff."))


def _out(article: Article) -> ArticleOut:
    return ArticleOut(
        id=article.pk,
        title=article.title,
        answer=article.answer,
        language=article.language,
        tags=[str(tag) for tag in article.tags or []],
        channel_ids=[int(pk) for pk in article.channels or []],
        is_active=article.is_active,
        updated_at=article.updated_at,
    )


@router.get("/articles", response={200: ArticlePage} | declared())
def list_articles(request: HttpRequest, query: Query[ArticleQuery]) -> ArticlePage:
    """Articles by id; ``channel_ids`` empty means every channel may use the article."""
    reject_unknown_query(request, ArticleQuery)
    _staff(request)
    articles = Article.objects.order_by("pk")
    if query.language:
        articles = articles.filter(language=query.language)
    if query.active is not None:
        articles = articles.filter(is_active=query.active)
    if query.cursor:
        articles = articles.filter(pk__gt=int(query.cursor))
    rows = list(articles[: query.limit + 1])
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return ArticlePage(items=[_out(a) for a in rows], next_cursor=str(rows[-1].pk) if more else None)


@router.get("/articles/{article_id}", response={200: ArticleOut} | declared())
def get_article(request: HttpRequest, article_id: int) -> ArticleOut:
    _staff(request)
    if not 1 <= article_id <= MAX_ID:
        raise Article.DoesNotExist
    return _out(Article.objects.get(pk=article_id))
