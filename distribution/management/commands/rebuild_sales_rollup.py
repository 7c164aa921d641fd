"""Recompute the distributors' daily sales rollup and team totals from the orders: the repair
after writes that bypassed ``Order.save()`` (bulk loads, SQL fixes), or after a tree repair."""

from django.core.management.base import BaseCommand

from distribution.services.sales import rebuild_sales_rollup


class Command(BaseCommand):
    help = "Rebuild the distributor daily sales rollup and team totals from the orders."

    def handle(self, *args, **options):
        result = rebuild_sales_rollup()
        self.stdout.write(
            self.style.SUCCESS(
                f"sales rollup rebuilt: {result['daily_rows']} daily row(s), "
                f"{result['team_rows']} team total(s)"
            )
        )
