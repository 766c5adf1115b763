"""Views for operators' browsers: a Voice access token, who is calling, and call recordings.

Mounted by the project at ``/twilio/`` (``path("twilio/", include("connectors.twilio.urls"))``).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from connectors.twilio.voice import TwilioVoiceConnector, access_token, operator_identity, voice_line_for
from customers.models import Identity
from customers.services import InvalidAddress, normalise_phone
from inbox import files
from inbox.models import Conversation, Message, Operator
from inbox.selectors.conversations import readable_message_for
from inbox.selectors.customers import can_see_customer
from inbox.transport import ConfigurationError, PermanentError, TransientError


@never_cache
@require_GET
@login_required
def voice_token(request: HttpRequest) -> JsonResponse:
    operator = request.user
    assert isinstance(operator, Operator)  # noqa: S101 - AUTH_USER_MODEL
    channel = voice_line_for(operator, request.GET.get("channel"))
    if channel is None:
        return JsonResponse({"error": _("No phone line is set up for your team.")}, status=404)
    try:
        token = access_token(channel, operator)
    except ConfigurationError:
        return JsonResponse(
            {"error": _("The phone line is not set up for browser calls yet (API key and TwiML App).")}, status=503
        )
    return JsonResponse({"token": token, "identity": operator_identity(operator), "channel": channel.pk, "ttl": 3600})


@never_cache
@require_GET
@login_required
def caller(request: HttpRequest) -> JsonResponse:
    """Who is calling: the customer's name and their open conversation, for the incoming-call popup."""
    operator = request.user
    assert isinstance(operator, Operator)  # noqa: S101
    try:
        number = normalise_phone(request.GET.get("number", ""))
    except InvalidAddress:
        return JsonResponse({"error": _("Not a phone number.")}, status=400)
    identity = Identity.objects.select_related("customer").filter(kind="phone", value=number).first()
    if identity is None or not can_see_customer(operator, identity.customer):
        # Another team's customer is, to this operator, an unknown caller: no name, no link.
        return JsonResponse({"number": number, "name": "", "conversation_url": ""})
    conversations = Conversation.objects.filter(customer=identity.customer).open().visible_to(operator)
    conversation = conversations.order_by("-last_message_at").first()
    return JsonResponse(
        {
            "number": number,
            "name": identity.customer.name,
            "conversation_url": reverse("inbox:conversation", args=[conversation.pk]) if conversation else "",
        }
    )


@never_cache
@require_GET
@login_required
def recording(request: HttpRequest, pk: int) -> HttpResponse | StreamingHttpResponse:
    """A call's recording (voicemail, or a recorded call), fetched from Twilio with the account's
    credentials, for operators who may see the conversation (404 for everyone else)."""
    operator = request.user
    assert isinstance(operator, Operator)  # noqa: S101
    try:
        message = readable_message_for(operator=operator, message_id=pk)
    except Message.DoesNotExist:
        raise Http404(_("No such call.")) from None
    url = str((message.metadata.get("call") or {}).get("recording_url", ""))
    if (
        message.kind != Message.Kind.CALL
        or not url
        or message.channel is None
        or message.channel.kind != "twilio-voice"
    ):
        raise Http404(_("This call has no recording."))
    try:
        chunks, content_type = TwilioVoiceConnector(message.channel).open_recording(url)
    except PermanentError as exc:
        return HttpResponse(exc.reason, status=404, content_type="text/plain; charset=utf-8")
    except TransientError:
        return HttpResponse(
            _("Twilio did not answer; try again in a moment."), status=503, content_type="text/plain; charset=utf-8"
        )
    # Played in the page when it is sound; whatever else Twilio's host answered is a download.
    inline = files.is_inline(content_type)
    response = StreamingHttpResponse(chunks, content_type=content_type if inline else files.DOWNLOAD_TYPE)
    response["Content-Disposition"] = f'{"inline" if inline else "attachment"}; filename="call-{message.pk}.mp3"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = files.MEDIA_CSP if inline else files.SANDBOX_CSP
    response["Cache-Control"] = "private, no-store"
    return response
