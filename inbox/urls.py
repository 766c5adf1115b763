from __future__ import annotations

from django.urls import path

from inbox import replies_views, views

app_name = "inbox"

urlpatterns = [
    path("", views.index, name="index"),
    path("more/", views.more, name="more"),
    path("search/", views.search_messages, name="search"),
    path("c/<int:pk>/", views.conversation, name="conversation"),
    path("c/<int:pk>/older/", views.older_messages, name="older"),
    path("c/<int:pk>/composer/", views.composer, name="composer"),
    path("c/<int:pk>/send/", views.send, name="send"),
    path("c/<int:pk>/template/", views.send_template, name="send-template"),
    path("c/<int:pk>/ask-phone/", views.ask_phone, name="ask_phone"),
    path("c/<int:pk>/assign/", views.assign, name="assign"),
    path("c/<int:pk>/unassign/", views.unassign, name="unassign"),
    path("c/<int:pk>/resolve/", views.resolve, name="resolve"),
    path("c/<int:pk>/reopen/", views.reopen, name="reopen"),
    path("c/<int:pk>/snooze/", views.snooze, name="snooze"),
    path("c/<int:pk>/priority/", views.priority, name="priority"),
    path("m/<int:pk>/retry/", views.retry, name="retry"),
    path("m/<int:pk>/resend/", views.resend, name="resend"),
    path("a/<int:pk>/", views.attachment, name="attachment"),
    # Saved replies (inbox.replies_views): the page, and the reply box's picker.
    path("replies/", replies_views.saved_reply_list, name="saved_replies"),
    path("replies/new/", replies_views.saved_reply_new, name="saved_reply_new"),
    path("replies/<int:pk>/", replies_views.saved_reply_edit, name="saved_reply"),
    path("replies/<int:pk>/delete/", replies_views.saved_reply_delete, name="saved_reply_delete"),
    path("c/<int:pk>/replies/", replies_views.saved_reply_picker, name="saved_reply_picker"),
    path("c/<int:pk>/replies/<int:reply_id>/", replies_views.saved_reply_text, name="saved_reply_text"),
]
