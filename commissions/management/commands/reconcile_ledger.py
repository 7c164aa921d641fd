"""Prove the books: every cached balance equals the sum of its entries and every journal
transaction balances, with at least two entries; and what the apps above register (the order
books: every paid order has its payment lines, every delivered card key its cost). Prints each
difference; exits non-zero when there is one."""

from django.core.management.base import BaseCommand, CommandError

from commissions.ledger_checks import run_ledger_checks
from commissions.selectors import ledger_differences


class Command(BaseCommand):
    help = "Check that every account's cached balance equals its entries and every journal transaction balances."

    def handle(self, *args, **options):
        report = ledger_differences()
        for account in report["accounts"]:
            self.stdout.write(
                f"account {account['id']} ({account['kind']}, distributor {account['distributor_id']}): "
                f"cached {account['cached']} but entries sum to {account['entries']}"
            )
        for journal in report["transactions"]:
            self.stdout.write(
                f"transaction {journal['id']} ({journal['reference']}): "
                f"debits {journal['debits']} credits {journal['credits']} ({journal['entries']} entries)"
            )
        problems = run_ledger_checks()
        for problem in problems:
            self.stdout.write(problem)
        if report["accounts"] or report["transactions"] or problems:
            raise CommandError(
                f"ledger out of balance: {len(report['accounts'])} account(s), {len(report['transactions'])} transaction(s),"
                f" {len(problems)} order book problem(s)"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"ledger reconciled: {report['account_count']} accounts, {report['transaction_count']} transactions"
            )
        )
