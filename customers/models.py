from __future__ import annotations

from functools import lru_cache
from typing import Any

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Right, Upper
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

# How many trailing digits make two phone numbers "probably the same" (national number length).
PHONE_TAIL = 9


def format_phone(value: str, *, region: str | None = None) -> str:
    """A phone number as the operators' region writes it: national within the region
    ("(201) 555-0123"), international elsewhere ("+44 20 7946 0958"); "" when it is not one."""
    return _formatted_phone(value, (region or settings.PARLEY_DEFAULT_REGION).upper())


@lru_cache(maxsize=4096)
def _formatted_phone(value: str, home: str) -> str:
    """Cached: parsing with phonenumbers costs ~0.3 ms, a quarter of an API list page of 25
    customers (docs/performance.md); the answer depends on nothing but its two arguments."""
    digits = value if value.startswith("+") else "+" + value
    try:
        number = phonenumbers.parse(digits, home)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_possible_number(number):
        return ""
    same = phonenumbers.region_code_for_number(number) == home
    style = phonenumbers.PhoneNumberFormat.NATIONAL if same else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, style)


# Kinds whose value is a phone number; WhatsApp ids are the digits of one (or, for a user who
# withholds their number, a business-scoped id that is no phone number and is not shown).
PHONE_KINDS = frozenset({"phone", "whatsapp"})

# What to call a customer with no name and no address worth showing, by the kind of their address.
NAMELESS = {
    "webchat": _("Website visitor"),
    "whatsapp": _("WhatsApp user"),
    "telegram": _("Telegram user"),
    "viber": _("Viber user"),
    "messenger": _("Messenger user"),
    "instagram": _("Instagram user"),
}


def contact_label(kind: str, value: str, *, region: str | None = None) -> str:
    """The text that names a customer without a name, from their best address (chosen by
    ``customers.services.best_contact``). Never "Customer #9": an id means nothing to an operator."""
    if value:
        shown = format_phone(value, region=region) if kind in PHONE_KINDS else value
        if shown:
            return shown
    return str(NAMELESS.get(kind, _("Unknown customer")))


class CustomerQuerySet(models.QuerySet["Customer"]):
    def active(self) -> CustomerQuerySet:
        return self.filter(merged_into__isnull=True)


class Customer(models.Model):
    """The one person behind every identity, conversation and note."""

    name = models.CharField(_("name"), max_length=200, blank=True)
    language = models.CharField(_("language"), max_length=16, blank=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    labels = models.JSONField(_("labels"), default=list, blank=True)
    is_vip = models.BooleanField(_("VIP"), default=False)
    # The CRM's key for this person (blank: none). Unique when set; a CRM upserts by it.
    external_id = models.CharField(_("external id"), max_length=255, blank=True, default="")
    # The address shown while the customer has no name (``display_name``): the best of their
    # identities, kept by ``customers.services.refresh_contact`` whenever identities change, so a
    # list of customers needs no query for their identities.
    contact_kind = models.CharField(max_length=16, blank=True, editable=False)
    contact = models.CharField(max_length=320, blank=True, editable=False)
    # Set when this customer was merged into another; the merge can be undone.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [
            # The unique index is also the lookup index; blank ids (most customers) stay out of it.
            models.UniqueConstraint(
                fields=["external_id"], condition=~Q(external_id=""), name="customer_unique_external_id"
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        """Who the customer is at a glance: their name, else their phone number (formatted for the
        operators' region), handle or email address, else what kind of visitor they are."""
        return self.name or contact_label(self.contact_kind, self.contact)


class Identity(models.Model):
    """One address a customer can be reached at, normalised (E.164, lower-cased email, ...)."""

    class Kind(models.TextChoices):
        PHONE = "phone", _("Phone")
        EMAIL = "email", _("Email")
        WHATSAPP = "whatsapp", _("WhatsApp ID")
        TELEGRAM = "telegram", _("Telegram")
        VIBER = "viber", _("Viber")
        MESSENGER = "messenger", _("Messenger")
        INSTAGRAM = "instagram", _("Instagram")
        WEBCHAT = "webchat", _("Website visitor")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    value = models.CharField(max_length=320)
    display = models.CharField(max_length=320, blank=True)
    verified = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("identity")
        verbose_name_plural = _("identities")
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="identity_unique_kind_value")]
        indexes = [
            # Duplicate suggestions: the same phone number stored in another form (see services).
            models.Index(
                Right("value", PHONE_TAIL), condition=Q(kind__in=["phone", "whatsapp"]), name="identity_phone_tail"
            ),
            # ... and the same email address in another case (``value__iexact``).
            models.Index(Upper("value"), condition=Q(kind="email"), name="identity_email_upper"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.display or self.value}"


class CustomerNote(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.text[:50]


class CustomerMerge(models.Model):
    """A recorded merge: what moved from ``source`` to ``target``, so it can be undone."""

    source = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merges_as_source")
    target = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merges_as_target")
    moved: models.JSONField[dict[str, Any]] = models.JSONField(default=dict)
    merged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    merged_at = models.DateTimeField(auto_now_add=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-merged_at"]

    def __str__(self) -> str:
        return f"{self.source_id} → {self.target_id}"


class AttributeDefinition(models.Model):
    """A typed custom attribute that staff define; its values live in ``Customer.attributes[key]``.

    Global (no team) or one team's (its operators see and edit it). Keys are unique across teams:
    one customer carries one value per key, whoever defined it.
    """

    class Type(models.TextChoices):
        TEXT = "text", _("Text")
        NUMBER = "number", _("Number")
        DATE = "date", _("Date")
        CHOICE = "choice", _("Choice")
        LINK = "link", _("Link")

    key = models.SlugField(_("key"), max_length=64, unique=True, allow_unicode=False)
    label = models.CharField(pgettext_lazy("the name a custom attribute shows", "label"), max_length=100)
    type = models.CharField(_("type"), max_length=8, choices=Type.choices, default=Type.TEXT)
    choices: models.JSONField[list[str]] = models.JSONField(_("choices"), default=list, blank=True)
    # Null: every team's. The inbox's Team, named by label: this app imports nothing above it.
    team = models.ForeignKey(
        "inbox.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="attribute_definitions"
    )
    position = models.PositiveIntegerField(_("position"), default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "label"]
        verbose_name = _("custom attribute")
        verbose_name_plural = _("custom attributes")

    def __str__(self) -> str:
        return self.label

    def clean(self) -> None:
        if self.type == self.Type.CHOICE:
            if not self.choices or not all(isinstance(c, str) and c.strip() for c in self.choices):
                raise ValidationError({"choices": _("A choice attribute needs a list of choices.")})
        elif self.choices:
            raise ValidationError({"choices": _("Only a choice attribute has choices.")})


class CustomerImport(models.Model):
    """One uploaded CSV of customers (a CRM's export) and what became of it.

    All or nothing: every row is checked first, then every row is written in one transaction with
    the ``done`` status; a file with any bad row is ``failed`` with its row errors and nothing of it
    is stored. The file stays in the row until it is imported, so an import whose worker died is
    resumed from the file (the writes it had made were rolled back with it).
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for the worker")
        RUNNING = "running", _("Importing")
        DONE = "done", _("Imported")
        FAILED = "failed", _("Failed")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    filename = models.CharField(_("file name"), max_length=255, blank=True)
    content = models.TextField(blank=True)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)  # rows in the file
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    # [{"row": 3, "field": "email", "message": "..."}]; row 0 is the file as a whole.
    errors: models.JSONField[list[dict[str, Any]]] = models.JSONField(default=list, blank=True)
    # Bumped while a worker imports: a running import whose heartbeat stopped may be resumed.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("customer import")
        verbose_name_plural = _("customer imports")

    def __str__(self) -> str:
        return self.filename or f"import #{self.pk}"

    @property
    def finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}
