"""Re-encrypt every stored secret that is not on the newest key, batch by batch.

Each batch is its own short transaction, so the command can be stopped and re-run at any time:
rows already on the newest key are skipped. Remove an old key from KAMEN_ENCRYPTION_KEYS only
after a run reports nothing left on it.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from kamen import crypto
from kamen.encrypted_fields import encrypted_fields


class Command(BaseCommand):
    help = "Re-encrypt stored secrets to the newest key in KAMEN_ENCRYPTION_KEYS (resumable)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args, batch_size: int, **options):
        if batch_size < 1:
            self.stderr.write("--batch-size must be at least 1")
            return
        current = crypto.current_key_id()
        self.stdout.write(f"newest key: {current}")
        for field in encrypted_fields():
            done = self._rotate(field, current, batch_size)
            self.stdout.write(f"{field.model._meta.label}.{field.blob_field}: {done} re-encrypted")

    def _rotate(self, field, current, batch_size) -> int:
        model, blob_field, key_field = field.model, field.blob_field, field.key_field
        done = 0
        last_pk = 0
        while True:
            with transaction.atomic():
                rows = list(
                    model.objects.filter(pk__gt=last_pk)
                    .exclude(**{key_field: current})
                    .exclude(**{key_field: ""})
                    .order_by("pk")
                    .select_for_update()[:batch_size]
                )
                if not rows:
                    return done
                for row in rows:
                    blob = bytes(getattr(row, blob_field) or b"")
                    associated_data = field.associated_data_for(row)
                    if blob:
                        plaintext = crypto.decrypt(
                            key_id=getattr(row, key_field), blob=blob, associated_data=associated_data
                        )
                        new_key_id, new_blob = crypto.encrypt(plaintext, associated_data=associated_data)
                        setattr(row, blob_field, new_blob)
                        setattr(row, key_field, new_key_id)
                    else:
                        setattr(row, key_field, current)
                model.objects.bulk_update(rows, [blob_field, key_field])
                last_pk = rows[-1].pk
                done += len(rows)
            self.stdout.write(f"  {model._meta.label}: {done}…")
