from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from audit.admin import AuditedAdmin
from bot.models import (
    Article,
    BotDecision,
    BusinessHours,
    Calibration,
    ExampleQuestion,
    Holiday,
    ImportJob,
    KnownOutOfScope,
    OpeningInterval,
)


class ExampleQuestionInline(admin.TabularInline[ExampleQuestion, Article]):
    model = ExampleQuestion
    extra = 3
    fields = ["text", "language"]


@admin.register(Article)
class ArticleAdmin(AuditedAdmin, admin.ModelAdmin[Article]):
    list_display = ["title", "language", "is_active", "updated_at"]
    list_filter = ["is_active", "language"]
    search_fields = ["title", "answer", "examples__text"]
    inlines = [ExampleQuestionInline]


@admin.register(KnownOutOfScope)
class KnownOutOfScopeAdmin(admin.ModelAdmin[KnownOutOfScope]):
    list_display = ["text", "language", "source", "created_at"]
    list_filter = ["language", "source"]
    search_fields = ["text"]


@admin.register(Calibration)
class CalibrationAdmin(admin.ModelAdmin[Calibration]):
    """Read-only: operating points come from ``manage.py bot calibrate``, never from a guess."""

    list_display = ["encoder", "language", "threshold", "margin", "computed_at"]
    list_filter = ["encoder", "language"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Calibration | None = None) -> bool:
        return False


@admin.register(BotDecision)
class BotDecisionAdmin(admin.ModelAdmin[BotDecision]):
    list_display = ["created_at", "conversation", "action", "reason", "article", "confidence", "language"]
    list_filter = ["action", "reason", "language"]
    raw_id_fields = ["message", "conversation", "article"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: BotDecision | None = None) -> bool:
        return False


class OpeningIntervalInline(admin.TabularInline[OpeningInterval, BusinessHours]):
    model = OpeningInterval
    extra = 0


class HolidayInline(admin.TabularInline[Holiday, BusinessHours]):
    model = Holiday
    extra = 0


@admin.register(BusinessHours)
class BusinessHoursAdmin(admin.ModelAdmin[BusinessHours]):
    list_display = ["team"]
    inlines = [OpeningIntervalInline, HolidayInline]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin[ImportJob]):
    """Read-only history of knowledge-base imports (they are made on the knowledge-base page)."""

    list_display = ["created_at", "filename", "status", "total", "created", "updated", "created_by"]
    list_filter = ["status", "format"]
    exclude = ["content"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ImportJob | None = None) -> bool:
        return False
