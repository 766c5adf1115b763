"""Customer pages; included by config/urls.py as ``path("customers/", include("customers.urls"))``."""

from __future__ import annotations

from django.urls import path

from customers import views

app_name = "customers"

urlpatterns = [
    path("", views.customer_list, name="list"),
    path("<int:customer_id>/", views.profile, name="profile"),
    path("<int:customer_id>/edit/", views.update, name="update"),
    path("<int:customer_id>/notes/", views.add_note, name="add_note"),
    path("<int:customer_id>/identities/", views.link_identity, name="link_identity"),
    path("<int:customer_id>/merge/<int:source_id>/", views.merge, name="merge"),
    path("<int:customer_id>/merges/<int:merge_id>/undo/", views.undo_merge, name="undo_merge"),
]
