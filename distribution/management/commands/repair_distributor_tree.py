"""Check the distributor tree's mptt index against the parent column and, with --fix, rebuild
it under the tree lock (ADR 0007: the parent column is the truth, rebuild is the repair)."""

from django.core.management.base import BaseCommand

from distribution.services import repair_tree, tree_problems


class Command(BaseCommand):
    help = "Check the distributor tree index; --fix rebuilds it from the parent column."

    def add_arguments(self, parser):
        parser.add_argument(
            "--fix",
            action="store_true",
            help="rebuild the index when it is inconsistent",
        )

    def handle(self, *args, fix=False, **options):
        problems = tree_problems()
        if not problems:
            self.stdout.write(self.style.SUCCESS("distributor tree: consistent"))
            return
        for problem in problems[:20]:
            self.stdout.write(f"  {problem}")
        self.stdout.write(
            self.style.WARNING(f"distributor tree: {len(problems)} problem(s)")
        )
        if fix:
            repair_tree()
            remaining = tree_problems()
            if remaining:
                self.stderr.write(
                    self.style.ERROR(
                        f"still {len(remaining)} problem(s) after the rebuild"
                    )
                )
                raise SystemExit(1)
            self.stdout.write(
                self.style.SUCCESS("distributor tree: rebuilt from the parent column")
            )
        else:
            raise SystemExit(1)
