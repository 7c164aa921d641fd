from django.core.management.base import BaseCommand

from kamen.scheduler import jobs_from_settings, run_forever


class Command(BaseCommand):
    help = "Run the scheduled jobs (CELERY_BEAT_SCHEDULE) in-process: the embedded default's beat."

    def add_arguments(self, parser):
        parser.add_argument("--tick", type=float, default=5.0, help="seconds between checks")

    def handle(self, *args, tick, **options):
        names = ", ".join(job.name for job in jobs_from_settings()) or "none"
        self.stdout.write(f"Embedded scheduler: {names}")
        run_forever(tick_seconds=tick)
