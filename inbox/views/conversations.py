"""The operator's inbox: list, thread, reply box and conversation actions.

Every view finds the conversation through :func:`inbox.views.base.conversation_or_404` (404 for
another team's), validates one form, calls one service and renders one fragment. htmx requests get
fragments, others full pages; errors a person can cause come back as a 4xx fragment in the thread's
alert region (:func:`inbox.views.base.problem`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget

from customers.crm import definitions_for
from inbox import extensions
from inbox.forms import (
    AssignForm,
    InboxFilterForm,
    PriorityForm,
    ReplyForm,
    ResendForm,
    ScheduledEditForm,
    SnoozeForm,
    TemplateForm,
)
from inbox.models import Channel, Conversation, Message, Operator, Team
from inbox.selectors import cursors
from inbox.selectors.conversations import (
    customer_panel,
    inbox_counts,
    inbox_page,
    message_for,
    replies_since,
    team_presence,
    thread_page,
)
from inbox.services import conversations, outbound
from inbox.transport import InboundAttachment, connector_for
from inbox.views import base

# -- pages -----------------------------------------------------------------------------------------


def _list_context(request: HttpRequest) -> dict[str, Any]:
    operator = base.operator(request)
    form = InboxFilterForm(request.GET)
    if not form.is_valid():
        raise _BadQuery(" ".join(str(error) for errors in form.errors.values() for error in errors))
    query = form.query()
    try:
        page = inbox_page(operator=operator, cursor=form.cleaned_data.get("cursor") or None, **query)
    except cursors.InvalidCursor:
        raise _BadQuery from None
    counts = inbox_counts(
        operator=operator,
        team_id=query["team_id"],
        channel_id=query["channel_id"],
        attribute=query["attribute"],
        extra=query["extra"],
    )
    teams = Team.objects.all() if operator.is_staff else operator.teams.all()
    extra_filters = [
        {"filter": f, "options": f.options(operator), "selected": query["extra"].get(param)}
        for param, f in extensions.LIST_FILTERS.items()
    ]
    return {
        "extra_filters": extra_filters,
        "orders": list(extensions.LIST_ORDERS.values()),
        "filters": form,
        "query": query,
        "page": page,
        "counts": counts,
        "teams": list(teams),
        "channels": list(Channel.objects.filter(is_active=True).order_by("name")),
        "statuses": Conversation.Status.choices,
        "attribute_definitions": list(definitions_for(None if operator.is_staff else operator.team_ids)),
        "attribute_query": urlencode(
            {"attr": form.cleaned_data.get("attr") or "", "value": form.cleaned_data.get("value") or ""}
        )
        if query["attribute"]
        else "",
        "querystring": _querystring(query, form.cleaned_data),
    }


class _BadQuery(Exception):
    pass


def _querystring(query: dict[str, Any], data: dict[str, Any]) -> str:
    names = {"tab": "tab", "team_id": "team", "channel_id": "channel", "status": "status", "order": "sort"}
    params = {names[k]: v for k, v in query.items() if v and k in names}
    if query.get("attribute"):
        params.update(attr=data.get("attr") or "", value=data.get("value") or "")
    return urlencode({**params, **query.get("extra", {})})


def _thread_context(request: HttpRequest, conversation: Conversation, **composer: Any) -> dict[str, Any]:
    operator = base.operator(request)
    thread = thread_page(operator=operator, conversation_id=conversation.pk, conversation=conversation)
    panel = customer_panel(operator=operator, customer_id=conversation.customer_id, customer=conversation.customer)
    return {
        "conversation": thread.conversation,
        "thread": thread,
        "panel": panel,
        **base.header_context(thread.conversation),
        **_composer_context(thread.conversation, operator=operator, **composer),
    }


def _composer_context(
    conversation: Conversation,
    *,
    channel: Channel | None = None,
    form: ReplyForm | None = None,
    operator: Operator | None = None,
) -> dict[str, Any]:
    channels = outbound.reachable_channels(customer=conversation.customer)
    chosen = channel or conversation.last_channel or (channels[0] if channels else None)
    refusal = outbound.reply_refusal(conversation=conversation, channel=chosen) if chosen else ""
    refused = {c.pk: outbound.reply_refusal(conversation=conversation, channel=c) for c in channels} if refusal else {}
    if refusal and channel is None and chosen is not None and chosen.medium == Channel.Medium.VOICE:
        # The customer last called: a written reply starts on a channel that can carry one.
        usable = [c for c in channels if not refused.get(c.pk)]
        if usable:
            chosen, refusal = usable[0], ""
    return {
        "reply_channels": channels,
        "reply_channel": chosen,
        # A messenger that can ask for the customer's phone number, while we do not know it.
        "can_ask_phone": bool(
            chosen
            and not refusal
            and connector_for(chosen).asks_phone
            # The thread's customer panel has prefetched the identities: no query then.
            and not any(identity.kind == "phone" for identity in conversation.customer.identities.all())
        ),
        "refusal": refusal,
        # Where the customer can be reached instead, when the chosen channel refuses.
        "other_channels": [c for c in channels if refusal and c != chosen and not refused.get(c.pk)],
        "templates": _template_choices(conversation, chosen, operator) if refusal and chosen else [],
        "reply_form": form or ReplyForm(channels=channels, initial={"channel": chosen}),
    }


def _template_choices(conversation: Conversation, channel: Channel, operator: Operator | None) -> list[dict[str, Any]]:
    """The channel's approved templates with their variables, filled in where the conversation tells."""
    choices = []
    for template in outbound.sendable_templates(conversation=conversation, channel=channel):
        values = outbound.template_defaults(template=template, conversation=conversation, by=operator)
        fields = [
            {
                "name": TemplateForm.field_name(template.key, v.key),
                "label": v.label or _("Variable %(key)s") % {"key": v.key},
                "value": values.get(v.key, ""),
            }
            for v in template.variables
        ]
        choices.append({"template": template, "fields": fields})
    return choices


@require_GET
@login_required
def index(request: HttpRequest) -> HttpResponse:
    try:
        context = _list_context(request)
    except _BadQuery as bad:
        return HttpResponse(_("Unknown filter or page.") + f" {bad}".rstrip(), status=400)
    if request.htmx and request.htmx.target in {"conversation-list", "inbox-list"}:  # type: ignore[attr-defined]
        return render(request, "inbox/index.html#list", context)
    context["presence"] = team_presence(operator=base.operator(request))
    return render(request, "inbox/index.html", context)


@require_GET
@login_required
def more(request: HttpRequest) -> HttpResponse:
    """The next page of the list (keyset cursor in the query string)."""
    try:
        context = _list_context(request)
    except _BadQuery as bad:
        return HttpResponse(_("Unknown filter or page.") + f" {bad}".rstrip(), status=400)
    return render(request, "inbox/partials/conversation_rows.html", context)


@require_GET
@login_required
def conversation(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = base.conversation_or_404(request, pk)
    context = _thread_context(request, conversation)
    if request.htmx and request.htmx.target == "thread-pane":  # type: ignore[attr-defined]
        return render(request, "inbox/index.html#thread", context)
    try:
        context |= _list_context(request)
    except _BadQuery as bad:
        return HttpResponse(_("Unknown filter or page.") + f" {bad}".rstrip(), status=400)
    context["presence"] = team_presence(operator=base.operator(request))
    return render(request, "inbox/index.html", context)


@require_GET
@login_required
def older_messages(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        thread = thread_page(
            operator=base.operator(request), conversation_id=pk, before=request.GET.get("before") or None
        )
    except Conversation.DoesNotExist:
        raise Http404(_("No such conversation.")) from None
    except cursors.InvalidCursor:
        return HttpResponse(_("Unknown page."), status=400)
    return render(request, "inbox/partials/messages.html", {"thread": thread, "conversation": thread.conversation})


@require_GET
@login_required
def composer(request: HttpRequest, pk: int) -> HttpResponse:
    """The reply box for another channel choice: shows why a reply cannot go out there.

    ``auto=1`` (sent by the page when the customer writes on another channel) asks for the box
    on the customer's latest channel instead; a channel named without it was picked by hand and
    stays picked.
    """
    conversation = base.conversation_or_404(request, pk)
    channels = {c.pk: c for c in outbound.reachable_channels(customer=conversation.customer)}
    follows = request.GET.get("auto") == "1"
    channel = None
    if not follows:
        try:
            channel = channels[int(request.GET.get("channel", ""))]
        except (KeyError, ValueError):
            return base.problem(request, _("This customer cannot be reached on that channel."), status=400)
    context = {
        "conversation": conversation,
        **_composer_context(conversation, channel=channel, operator=base.operator(request)),
        "picked": not follows,
        "keep_mode": request.GET.get("mode") if request.GET.get("mode") in ("reply", "note") else "reply",
    }
    context["reply_form"] = ReplyForm(
        channels=list(channels.values()),
        initial={"channel": context["reply_channel"], "text": request.GET.get("text", "")},
    )
    return render(request, "inbox/partials/composer.html", context)


# -- writes --------------------------------------------------------------------------------------------


@require_POST
@login_required
def send(request: HttpRequest, pk: int) -> HttpResponse:
    """Reply to the customer or add a private note; answers with a fresh reply box and the message."""
    conversation = base.conversation_or_404(request, pk)
    channels = outbound.reachable_channels(customer=conversation.customer)
    form = ReplyForm(request.POST, request.FILES, channels=channels)
    if not form.is_valid():
        return base.form_problem(request, form)
    collision = _collision(request, conversation, form)
    if collision is not None:
        return collision
    try:
        if form.cleaned_data["mode"] == "note":
            message = outbound.add_note(
                conversation=conversation, text=form.cleaned_data["text"], by=base.operator(request)
            )
        else:
            answered = None
            if form.cleaned_data.get("reply_to"):
                answered = conversation.customer.messages.filter(
                    pk=form.cleaned_data["reply_to"], direction=Message.Direction.INBOUND
                ).first()
                if answered is None:
                    return base.problem(request, _("The message you reply to is not this customer's."), status=400)
            message = outbound.reply(
                conversation=conversation,
                text=form.cleaned_data["text"],
                by=base.operator(request),
                channel=form.cleaned_data["channel"],
                metadata={"reply_to": answered.pk, "reply_to_text": answered.text[:100]} if answered else None,
                send_at=form.cleaned_data.get("send_at"),
                attachments=tuple(
                    InboundAttachment(
                        filename=upload.name or "attachment",
                        content_type=upload.content_type or "application/octet-stream",
                        content=upload.read(),
                    )
                    for upload in form.cleaned_data["attachments"]
                ),
            )
    except conversations.ReplyRefused as refused:
        return base.problem(request, refused.reason)
    except PermissionDenied:
        return base.problem(request, _("You may not write in this conversation."), status=403)
    message = message_for(operator=base.operator(request), message_id=message.pk)
    context = {
        "conversation": conversation,
        "message": message,
        "customer": conversation.customer,
        **_composer_context(conversation, channel=form.cleaned_data["channel"], operator=base.operator(request)),
        "keep_mode": form.cleaned_data["mode"],
        "picked": request.POST.get("picked") == "1",
    }
    return render(request, "inbox/partials/sent.html", context)


def _collision(request: HttpRequest, conversation: Conversation, form: ReplyForm) -> HttpResponse | None:
    """Collision control: someone else replied since this operator opened the thread. Ask before
    sending on top of it (409), showing their reply; "Send anyway" posts again with ``confirm``."""
    opened_at = form.cleaned_data.get("opened_at")
    if form.cleaned_data["mode"] != "reply" or opened_at is None or form.cleaned_data.get("confirm"):
        return None
    others = replies_since(conversation=conversation, since=opened_at, operator=base.operator(request))
    if not others:
        return None
    response = render(
        request, "inbox/partials/collision.html", {"conversation": conversation, "others": others}, status=409
    )
    return reswap(retarget(response, "#thread-errors"), "innerHTML")


@require_POST
@login_required
def ask_phone(request: HttpRequest, pk: int) -> HttpResponse:
    """Send the customer a "share my phone number" button (Telegram, Viber)."""
    conversation = base.conversation_or_404(request, pk)
    channels = {c.pk: c for c in outbound.reachable_channels(customer=conversation.customer)}
    try:
        channel = channels[int(request.POST.get("channel", ""))]
    except (KeyError, ValueError):
        return base.problem(request, _("This customer cannot be reached on that channel."), status=400)
    try:
        message = outbound.ask_for_phone(conversation=conversation, channel=channel, by=base.operator(request))
    except conversations.ReplyRefused as refused:
        return base.problem(request, refused.reason)
    except PermissionDenied:
        return base.problem(request, _("You may not write in this conversation."), status=403)
    context = {
        "conversation": conversation,
        "message": message_for(operator=base.operator(request), message_id=message.pk),
        "customer": conversation.customer,
        **_composer_context(conversation, channel=channel, operator=base.operator(request)),
        "picked": request.POST.get("picked") == "1",
    }
    return render(request, "inbox/partials/sent.html", context)


@require_POST
@login_required
def send_template(request: HttpRequest, pk: int) -> HttpResponse:
    """Send one of the channel's approved templates (WhatsApp outside its 24-hour window)."""
    conversation = base.conversation_or_404(request, pk)
    form = TemplateForm(request.POST, channels=outbound.reachable_channels(customer=conversation.customer))
    if not form.is_valid():
        return base.form_problem(request, form)
    try:
        message = outbound.send_template(
            conversation=conversation,
            channel=form.cleaned_data["channel"],
            template=form.cleaned_data["template"],
            variables=form.variables(),
            by=base.operator(request),
        )
    except conversations.ReplyRefused as refused:
        return base.problem(request, refused.reason)
    except PermissionDenied:
        return base.problem(request, _("You may not write in this conversation."), status=403)
    context = {
        "conversation": conversation,
        "message": message_for(operator=base.operator(request), message_id=message.pk),
        "customer": conversation.customer,
        **_composer_context(conversation, channel=form.cleaned_data["channel"], operator=base.operator(request)),
    }
    return render(request, "inbox/partials/sent.html", context)


@require_POST
@login_required
def assign(request: HttpRequest, pk: int) -> HttpResponse:
    def action(conversation: Conversation) -> Any:
        if request.POST.get("operator") == "me":
            operator = base.operator(request)
        else:
            form = AssignForm(request.POST, conversation=conversation)
            if not form.is_valid():
                return base.form_problem(request, form)
            operator = form.cleaned_data["operator"]
        return conversations.assign_conversation(
            conversation=conversation, operator=operator, by=base.operator(request)
        )

    return base.act(request, pk, action)


@require_POST
@login_required
def unassign(request: HttpRequest, pk: int) -> HttpResponse:
    return base.act(
        request, pk, lambda c: conversations.unassign_conversation(conversation=c, by=base.operator(request))
    )


@require_POST
@login_required
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    return base.act(
        request, pk, lambda c: conversations.resolve_conversation(conversation=c, by=base.operator(request))
    )


@require_POST
@login_required
def reopen(request: HttpRequest, pk: int) -> HttpResponse:
    return base.act(request, pk, lambda c: conversations.reopen_conversation(conversation=c, by=base.operator(request)))


@require_POST
@login_required
def snooze(request: HttpRequest, pk: int) -> HttpResponse:
    def action(conversation: Conversation) -> Any:
        form = SnoozeForm(request.POST)
        if not form.is_valid():
            return base.form_problem(request, form)
        return conversations.snooze_conversation(
            conversation=conversation, until=form.cleaned_data["until"], by=base.operator(request)
        )

    return base.act(request, pk, action)


@require_POST
@login_required
def priority(request: HttpRequest, pk: int) -> HttpResponse:
    def action(conversation: Conversation) -> Any:
        form = PriorityForm(request.POST)
        if not form.is_valid():
            return base.form_problem(request, form)
        return conversations.set_priority(
            conversation=conversation, priority=form.cleaned_data["priority"], by=base.operator(request)
        )

    return base.act(request, pk, action)


@require_POST
@login_required
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    message = base.message_or_404(request, pk)
    try:
        outbound.retry_message(message=message, by=base.operator(request))
    except conversations.ReplyRefused as refused:
        return base.problem(request, refused.reason, status=409)
    except PermissionDenied:
        return base.problem(request, _("You may not do that."), status=403)
    return base.message_response(request, message)


@require_POST
@login_required
def resend(request: HttpRequest, pk: int) -> HttpResponse:
    message = base.message_or_404(request, pk)
    form = ResendForm(request.POST, channels=outbound.reachable_channels(customer=message.conversation.customer))
    if not form.is_valid():
        return base.form_problem(request, form)
    try:
        outbound.resend_message(message=message, channel=form.cleaned_data["channel"], by=base.operator(request))
    except conversations.ReplyRefused as refused:
        return base.problem(request, refused.reason, status=409)
    except PermissionDenied:
        return base.problem(request, _("You may not do that."), status=403)
    return base.message_response(request, message)


# -- send later: a scheduled reply, while it waits ------------------------------------------------


@require_POST
@login_required
def edit_scheduled(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a scheduled reply's text and time; answers with the message again."""
    message = base.message_or_404(request, pk)
    form = ScheduledEditForm(request.POST)
    if not form.is_valid():
        return base.form_problem(request, form)
    try:
        message = outbound.edit_scheduled(
            message=message,
            text=form.cleaned_data["text"],
            send_at=form.cleaned_data["send_at"],
            by=base.operator(request),
        )
    except conversations.ReplyRefused as refused:
        return base.problem(request, refused.reason, status=409)
    return base.message_response(request, message)


@require_POST
@login_required
def cancel_scheduled(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel a scheduled reply before it goes out; answers with the message again."""
    message = base.message_or_404(request, pk)
    try:
        outbound.cancel_scheduled(message=message, by=base.operator(request))
    except conversations.ReplyRefused as refused:
        return base.problem(request, refused.reason, status=409)
    return base.message_response(request, message)
