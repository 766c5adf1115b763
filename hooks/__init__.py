"""Webhooks out: signed (Standard Webhooks) deliveries of the inbox's events to integrators' URLs, from an outbox, retried, logged."""
