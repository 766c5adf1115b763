"""Twilio connectors: ``twilio-sms`` (SMS/MMS), ``twilio-whatsapp`` and ``twilio-voice``.

Importing the package registers the three connectors and connects the STOP/START receiver.
How to connect a real Twilio number, and the protocol facts: docs/connectors/twilio.md.
"""

from __future__ import annotations

from connectors.twilio import messaging, optout, tasks, voice

__all__ = ["messaging", "optout", "tasks", "voice"]
