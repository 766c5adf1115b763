from __future__ import annotations

from django.urls import path

from desk import views

app_name = "desk"

urlpatterns = [
    path("labels/", views.label_list, name="labels"),
    path("labels/<int:pk>/", views.label_edit, name="label"),
    path("labels/<int:pk>/delete/", views.label_delete, name="label_delete"),
    path("c/<int:pk>/labels/", views.add_label, name="add_label"),
    path("c/<int:pk>/labels/<int:label_id>/remove/", views.remove_label, name="remove_label"),
    path("macros/", views.macro_list, name="macros"),
    path("macros/<int:pk>/", views.macro_edit, name="macro"),
    path("macros/<int:pk>/delete/", views.macro_delete, name="macro_delete"),
    path("c/<int:pk>/macros/", views.run_macro, name="run_macro"),
    path("rules/", views.rule_list, name="rules"),
    path("rules/<int:pk>/", views.rule_edit, name="rule"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule_delete"),
    path("sla/", views.sla_policy_list, name="sla_policies"),
    path("sla/<int:pk>/", views.sla_policy_edit, name="sla_policy"),
    path("sla/<int:pk>/delete/", views.sla_policy_delete, name="sla_policy_delete"),
]
