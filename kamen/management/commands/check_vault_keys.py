"""Refuse to serve with vault keys that cannot read the database's secrets (make run runs it)."""

from django.core.management.base import BaseCommand, CommandError

from kamen.encrypted_fields import unreadable_secret


class Command(BaseCommand):
    help = "Check that the vault keys open the secrets already stored in the database."

    def handle(self, *args, **options):
        problem = unreadable_secret()
        if problem:
            raise CommandError(
                "The vault keys do not open the secrets stored in this database "
                f"({problem}). They were stored under other keys: restore the keys.json (or "
                "KAMEN_ENCRYPTION_KEYS / KAMEN_BLIND_INDEX_KEY) that belongs to this database, "
                "or start on an empty database."
            )
