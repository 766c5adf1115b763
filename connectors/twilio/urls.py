from __future__ import annotations

from django.urls import path

from connectors.twilio import views

app_name = "twilio"

urlpatterns = [
    path("voice/token/", views.voice_token, name="voice-token"),
    path("voice/caller/", views.caller, name="voice-caller"),
    path("voice/recording/<int:pk>/", views.recording, name="voice-recording"),
]
