"""Write the open API's OpenAPI 3.1 document to docs/api/openapi.json (commit the result)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

SCHEMA_PATH = Path(settings.BASE_DIR) / "docs" / "api" / "openapi.json"


class Command(BaseCommand):
    help = "Write docs/api/openapi.json from the code (the open API, docs/adr/0019)."

    def handle(self, *args, **options):
        from orders.api.views import schema_text

        SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
        SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
        self.stdout.write(f"wrote {SCHEMA_PATH.relative_to(settings.BASE_DIR)}")
