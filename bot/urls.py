from __future__ import annotations

from django.urls import path

from bot import actions, views

app_name = "bot"

urlpatterns = [
    # The knowledge base's pages.
    path("kb/", views.articles, name="articles"),
    path("kb/articles/new/", views.article_new, name="article_new"),
    path("kb/articles/<int:pk>/", views.article, name="article"),
    path("kb/articles/<int:pk>/delete/", views.article_delete, name="article_delete"),
    path("kb/examples/row/", views.example_row, name="example_row"),
    path("kb/try/", views.try_bot, name="try"),
    path("kb/calibrate/", views.calibrate, name="calibrate"),
    path("kb/import/", views.import_file, name="import"),
    path("kb/imports/<int:pk>/", views.import_status, name="import_status"),
    path("kb/export/", views.export, name="export"),
    # The bot's side of an operator's thread (bot.actions).
    path("c/<int:pk>/give-back/", actions.give_back, name="give_back"),
    path("m/<int:pk>/example/", actions.make_example, name="make_example"),
    path("m/<int:pk>/example/pick/", actions.example_picker, name="example_picker"),
]
