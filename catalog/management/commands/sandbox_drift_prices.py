"""Move the sandbox supplier's prices a little, like an upstream repricing; then the next price
sync (or `--sync`) shows the changes, and any product whose cost reached its price goes off sale."""

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Drift every sandbox SKU price by up to ±N percent (default 5); --sync runs the price sync after."

    def add_arguments(self, parser):
        parser.add_argument("--percent", default="5", help="largest change, in percent (0 < N ≤ 50)")
        parser.add_argument("--sync", action="store_true", help="sync every active supplier afterwards")

    def handle(self, *args, percent, sync, **options):
        from catalog.sandbox_services import drift_sandbox_prices
        from catalog.services import sync_all_suppliers

        try:
            max_percent = Decimal(percent)
        except InvalidOperation:
            raise CommandError(f"--percent must be a number, got {percent!r}") from None
        if not (Decimal(0) < max_percent <= Decimal(50)):
            raise CommandError("--percent must be above 0 and at most 50")
        for item, old, new in drift_sandbox_prices(max_percent=max_percent):
            self.stdout.write(f"{item.sku}: {old} → {new}")
        if sync:
            for report in sync_all_suppliers():
                status = report.error or f"{report.price_changes} price changes, {len(report.taken_off_shelf)} taken off the shelf"
                self.stdout.write(f"{report.supplier}: {status}")
