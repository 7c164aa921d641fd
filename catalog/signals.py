"""Signals the catalog sends. Receivers live in the apps that care (orders fulfils back-orders)."""

from django.dispatch import Signal

# Sent after a card-key import committed new keys: kwargs ``product`` and ``count``.
card_keys_imported = Signal()
