"""The inbox's pages (namespace ``inbox``) and the customer pages (namespace ``customers``, included
by config/urls.py under ``/customers/`` as ``include(customer_urls)``)."""

from __future__ import annotations

from django.urls import URLPattern, path

from inbox.views import attachments, conversations, customer_imports, customers, saved_replies, search

app_name = "inbox"

urlpatterns = [
    path("", conversations.index, name="index"),
    path("more/", conversations.more, name="more"),
    path("search/", search.search_messages, name="search"),
    path("c/<int:pk>/", conversations.conversation, name="conversation"),
    path("c/<int:pk>/older/", conversations.older_messages, name="older"),
    path("c/<int:pk>/composer/", conversations.composer, name="composer"),
    path("c/<int:pk>/send/", conversations.send, name="send"),
    path("c/<int:pk>/template/", conversations.send_template, name="send-template"),
    path("c/<int:pk>/ask-phone/", conversations.ask_phone, name="ask_phone"),
    path("c/<int:pk>/assign/", conversations.assign, name="assign"),
    path("c/<int:pk>/unassign/", conversations.unassign, name="unassign"),
    path("c/<int:pk>/resolve/", conversations.resolve, name="resolve"),
    path("c/<int:pk>/reopen/", conversations.reopen, name="reopen"),
    path("c/<int:pk>/snooze/", conversations.snooze, name="snooze"),
    path("c/<int:pk>/priority/", conversations.priority, name="priority"),
    path("m/<int:pk>/retry/", conversations.retry, name="retry"),
    path("m/<int:pk>/resend/", conversations.resend, name="resend"),
    path("m/<int:pk>/scheduled/", conversations.edit_scheduled, name="edit_scheduled"),
    path("m/<int:pk>/cancel/", conversations.cancel_scheduled, name="cancel_scheduled"),
    path("a/<int:pk>/", attachments.attachment, name="attachment"),
    # Saved replies: the page, and the reply box's picker.
    path("replies/", saved_replies.saved_reply_list, name="saved_replies"),
    path("replies/new/", saved_replies.saved_reply_new, name="saved_reply_new"),
    path("replies/<int:pk>/", saved_replies.saved_reply_edit, name="saved_reply"),
    path("replies/<int:pk>/delete/", saved_replies.saved_reply_delete, name="saved_reply_delete"),
    path("c/<int:pk>/replies/", saved_replies.saved_reply_picker, name="saved_reply_picker"),
    path("c/<int:pk>/replies/<int:reply_id>/", saved_replies.saved_reply_text, name="saved_reply_text"),
]

customer_urlpatterns: list[URLPattern] = [
    path("", customers.customer_list, name="list"),
    path("import/", customer_imports.import_customers, name="import"),
    path("imports/<int:pk>/", customer_imports.import_status, name="import_status"),
    path("imports/<int:pk>/resume/", customer_imports.resume_import, name="resume_import"),
    path("<int:customer_id>/", customers.profile, name="profile"),
    path("<int:customer_id>/edit/", customers.update, name="update"),
    path("<int:customer_id>/notes/", customers.add_note, name="add_note"),
    path("<int:customer_id>/identities/", customers.add_identity, name="link_identity"),
    path("<int:customer_id>/merge/<int:source_id>/", customers.merge, name="merge"),
    path("<int:customer_id>/merges/<int:merge_id>/undo/", customers.unmerge, name="undo_merge"),
]
customer_urls = (customer_urlpatterns, "customers")
