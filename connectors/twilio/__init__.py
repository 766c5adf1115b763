"""Twilio connectors: ``twilio-sms`` (SMS/MMS), ``twilio-whatsapp`` and ``twilio-voice``.

A Django app: its ``AppConfig.ready()`` registers the three connectors and connects the STOP/START
receiver. How to connect a real Twilio number, and the protocol facts: docs/connectors/twilio.md.
"""
