"""Reads about customers for the operator UI: the team-scoped list, the profile, merge previews."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404
from django.utils.translation import gettext_lazy as _

from customers.crm import crm_link, definitions_for
from customers.models import AttributeDefinition, Customer, CustomerMerge, CustomerNote, Identity
from customers.services import InvalidAddress, normalise_address, suggest_duplicates
from inbox import visibility
from inbox.models import Channel, Conversation, Message, Operator, Team
from inbox.transport import ConfigurationError, connector_for


def visible_customers(operator: Operator) -> QuerySet[Customer]:
    """Customers the operator may see: staff see all; others those with a conversation in their teams."""
    customers = Customer.objects.active()
    if operator.is_staff:
        return customers
    in_my_teams = Conversation.objects.filter(customer=OuterRef("pk"), team__in=operator.teams.all())
    return customers.filter(Exists(in_my_teams))


def can_see_customer(operator: Operator, customer: Customer) -> bool:
    return visible_customers(operator).filter(pk=customer.pk).exists()


def customer_for(operator: Operator, customer_id: int, *, follow_merges: bool = True) -> Customer:
    """The access helper of every customer view: the customer, or 404 when not the operator's to see.

    A customer merged into another resolves to the one they now are, unless ``follow_merges`` is
    off; the merged customer is then returned as it is, visible when the one it became is.
    """
    customer = Customer.objects.filter(pk=customer_id).first()
    current = customer
    seen: set[int] = set()
    while current is not None and current.merged_into_id is not None and current.pk not in seen:
        seen.add(current.pk)
        current = current.merged_into
    if current is None or current.merged_into_id is not None or not can_see_customer(operator, current):
        raise Http404("no such customer")
    if not follow_merges and customer is not None:
        return customer
    return current


def _search_filter(query: str) -> Q:
    """Name, or any identity in any way it may be written: '+1 500 555 0006' finds '+15005550006'."""
    values = {query, query.lower()}
    for kind in (Identity.Kind.PHONE, Identity.Kind.EMAIL):
        with contextlib.suppress(InvalidAddress):
            values.add(normalise_address(kind, query))
    matches = Q(identities__value__in=values) | Q(identities__value__icontains=query)
    digits = "".join(ch for ch in query if ch.isdigit())
    if len(digits) >= 4 and digits != query:
        matches |= Q(identities__value__contains=digits)
    return Q(name__icontains=query) | Q(pk__in=Customer.objects.filter(matches).values("pk"))


@dataclass(frozen=True)
class CustomerPage:
    customers: Sequence[Customer]
    next_cursor: int | None


def customer_page(*, operator: Operator, query: str = "", after: int | None = None, size: int = 25) -> CustomerPage:
    """One page of customers, newest first, keyset-paginated on the primary key."""
    customers = visible_customers(operator)
    query = query.strip()
    if query:
        customers = customers.filter(_search_filter(query))
    if after is not None:
        customers = customers.filter(pk__lt=after)
    # Another team's conversations count where they are listed (inbox.visibility): not in strict isolation.
    counted = Q(conversations__team_id__in=operator.team_ids) if visibility.strict() and not operator.is_staff else None
    rows = list(
        customers.prefetch_related(Prefetch("identities", queryset=Identity.objects.order_by("kind", "pk")))
        .annotate(conversation_count=Count("conversations", distinct=True, filter=counted))
        .order_by("-pk")[: size + 1]
    )
    more = len(rows) > size
    rows = rows[:size]
    return CustomerPage(customers=rows, next_cursor=rows[-1].pk if more and rows else None)


@dataclass
class IdentityRow:
    identity: Identity
    channels: list[Channel]


@dataclass
class ConversationRow:
    conversation: Conversation
    visible: bool
    # (medium, label) of every channel the conversation went through.
    media: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Duplicate:
    customer: Customer
    reason: str


@dataclass
class Profile:
    customer: Customer
    identities: list[IdentityRow]
    conversations: list[ConversationRow]
    notes: list[CustomerNote]
    merges: list[CustomerMerge]
    duplicates: list[Duplicate]
    # True when there is more history than the page shows (the latest PROFILE_LIMIT of each).
    more_conversations: bool = False
    more_notes: bool = False
    # The typed attributes the operator's teams see, in their order, and the others (free-form).
    typed_attributes: list[AttributeRow] = field(default_factory=list)
    other_attributes: list[tuple[str, Any]] = field(default_factory=list)
    # (team name, URL) for each of the operator's teams with a CRM link, when the customer has an external id.
    crm_links: list[tuple[str, str]] = field(default_factory=list)
    # For the details form: the definitions the operator sees, and every defined key (any team's).
    definitions: list[AttributeDefinition] = field(default_factory=list)
    defined_keys: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class AttributeRow:
    definition: AttributeDefinition
    value: Any

    @property
    def is_link(self) -> bool:
        # Stored values were checked when written; check the scheme again before it becomes an href.
        return self.definition.type == "link" and str(self.value).lower().startswith(("https://", "http://"))


def attribute_definitions(operator: Operator) -> tuple[list[AttributeDefinition], set[str]]:
    """The definitions the operator sees (global and their teams'; staff: all) and every defined key."""
    visible = list(definitions_for(None if operator.is_staff else operator.team_ids))
    if operator.is_staff:
        return visible, {d.key for d in visible}
    return visible, set(AttributeDefinition.objects.values_list("key", flat=True))


def attribute_rows(
    customer: Customer, visible: list[AttributeDefinition], defined: set[str]
) -> tuple[list[AttributeRow], list[tuple[str, Any]]]:
    """The customer's attributes as the operator sees them: typed (theirs and global), then free-form."""
    values = customer.attributes or {}
    typed = [AttributeRow(d, values[d.key]) for d in visible if d.key in values]
    others = [(key, value) for key, value in values.items() if key not in defined]
    return typed, others


def crm_links(operator: Operator, customer: Customer) -> list[tuple[str, str]]:
    """Links to the customer in each CRM the operator's teams set up (none without an external id)."""
    if not customer.external_id:
        return []
    teams = Team.objects.exclude(crm_link_template="")
    if not operator.is_staff:
        teams = teams.filter(pk__in=operator.team_ids)
    links = [(team.name, crm_link(team.crm_link_template, customer.external_id)) for team in teams.order_by("name")]
    return [(name, url) for name, url in links if url]


# A long-standing customer's page shows the latest of each list, so it stays fast.
PROFILE_LIMIT = 50


def channels_by_identity_kind() -> dict[str, list[Channel]]:
    """Active channels grouped by the identity kind a customer needs to be reached on them."""
    grouped: dict[str, list[Channel]] = defaultdict(list)
    for channel in Channel.objects.filter(is_active=True).order_by("name"):
        with contextlib.suppress(ConfigurationError):
            grouped[connector_for(channel).identity_kind].append(channel)
    return grouped


# The reasons customers.services.suggest_duplicates gives, in the operator's language.
DUPLICATE_REASONS = {
    "same email address": _("Same email address"),
    "same phone number": _("Same phone number"),
    "same phone in profile": _("Owns the phone number in this profile"),
    "same email in profile": _("Owns the email address in this profile"),
}


def duplicates_for(operator: Operator, customer: Customer) -> list[Duplicate]:
    """Likely duplicates the operator is allowed to see (and so to merge)."""
    suggestions = suggest_duplicates(customer=customer)
    if not suggestions:
        return []
    visible = set(
        visible_customers(operator).filter(pk__in=[other.pk for other, _ in suggestions]).values_list("pk", flat=True)
    )
    return [
        Duplicate(customer=other, reason=str(DUPLICATE_REASONS.get(reason, reason)))
        for other, reason in suggestions
        if other.pk in visible
    ]


def customer_profile(*, operator: Operator, customer: Customer) -> Profile:
    """Everything the profile page shows, in a fixed number of queries."""
    reachable = channels_by_identity_kind()
    identities = [
        IdentityRow(identity=identity, channels=reachable.get(identity.kind, []))
        for identity in customer.identities.order_by("kind", "pk")
    ]
    # Another team's conversations are listed with their team (and their last customer message or
    # reply) but not linked; in strict isolation they are not listed at all (inbox.visibility).
    listed = visibility.listed_conversations(operator, customer.conversations.all())
    conversations = list(
        listed.select_related("team", "assignee", "last_channel").order_by("-last_message_at", "-pk")[
            : PROFILE_LIMIT + 1
        ]
    )
    more_conversations, conversations = len(conversations) > PROFILE_LIMIT, conversations[:PROFILE_LIMIT]
    labels = dict(Channel.Medium.choices)
    media: dict[int, set[str]] = defaultdict(set)
    for conversation_id, medium in (
        Message.objects.filter(customer=customer, conversation__in=conversations, channel__isnull=False)
        .values_list("conversation_id", "channel__medium")
        .distinct()
    ):
        media[conversation_id].add(medium)
    rows = [
        ConversationRow(
            conversation=conversation,
            visible=visibility.works_on(operator, conversation.team_id),
            media=[(medium, str(labels.get(medium, medium))) for medium in sorted(media[conversation.pk])],
        )
        for conversation in conversations
    ]
    notes = list(customer.notes.select_related("author")[: PROFILE_LIMIT + 1])
    more_notes, notes = len(notes) > PROFILE_LIMIT, notes[:PROFILE_LIMIT]
    merges = list(CustomerMerge.objects.filter(target=customer).select_related("source", "merged_by", "undone_by")[:20])
    definitions, defined_keys = attribute_definitions(operator)
    typed, others = attribute_rows(customer, definitions, defined_keys)
    return Profile(
        customer=customer,
        identities=identities,
        conversations=rows,
        notes=notes,
        merges=merges,
        duplicates=duplicates_for(operator, customer),
        more_conversations=more_conversations,
        more_notes=more_notes,
        typed_attributes=typed,
        other_attributes=others,
        crm_links=crm_links(operator, customer),
        definitions=definitions,
        defined_keys=defined_keys,
    )


@dataclass(frozen=True)
class MergePreview:
    """What a merge of ``source`` into ``target`` would move, shown before the operator confirms."""

    source: Customer
    target: Customer
    identities: list[Identity]
    conversations: int
    messages: int
    notes: int
    # Both have an active conversation: the source's one would be resolved.
    resolves_active: bool


def merge_preview(*, source: Customer, target: Customer) -> MergePreview:
    source_conversations = Conversation.objects.filter(customer=source)
    resolves_active = source_conversations.open().exists() and target.conversations.open().exists()
    counts = {
        "conversations": source_conversations.count(),
        "messages": Message.objects.filter(customer=source).exclude(kind=Message.Kind.ACTIVITY).count(),
        "notes": source.notes.count(),
    }
    return MergePreview(
        source=source,
        target=target,
        identities=list(source.identities.order_by("kind", "pk")),
        conversations=counts["conversations"],
        messages=counts["messages"],
        notes=counts["notes"],
        resolves_active=resolves_active,
    )
