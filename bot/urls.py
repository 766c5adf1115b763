from __future__ import annotations

from django.urls import path

from bot import views

app_name = "bot"

urlpatterns = [
    path("", views.articles, name="articles"),
    path("articles/new/", views.article_new, name="article_new"),
    path("articles/<int:pk>/", views.article, name="article"),
    path("articles/<int:pk>/delete/", views.article_delete, name="article_delete"),
    path("examples/row/", views.example_row, name="example_row"),
    path("try/", views.try_bot, name="try"),
    path("calibrate/", views.calibrate, name="calibrate"),
    path("import/", views.import_file, name="import"),
    path("imports/<int:pk>/", views.import_status, name="import_status"),
    path("export/", views.export, name="export"),
]
