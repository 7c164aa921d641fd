"""Create the object-store bucket that every host shares, if it is missing (docker compose's
storage-init step, or once by hand). Safe to run twice; with local storage there is nothing to do.

Waits for the store to answer (it may still be starting) up to ``--wait`` seconds.
"""

import time

from botocore.exceptions import ClientError, EndpointConnectionError
from django.conf import settings
from django.core.files.storage import storages
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the S3-compatible bucket named by KAMEN_S3_BUCKET if it does not exist."

    def add_arguments(self, parser):
        parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the store to answer")

    def handle(self, *args, wait: float, **options):
        if not settings.KAMEN_S3_BUCKET:
            self.stdout.write("Local file storage (KAMEN_S3_BUCKET is not set): no bucket to create.")
            return
        storage = storages["default"]
        client = storage.connection.meta.client
        bucket = storage.bucket_name
        deadline = time.monotonic() + wait
        while True:
            try:
                self._ensure(client, bucket, region=storage.region_name)
                return
            except EndpointConnectionError as error:
                if time.monotonic() >= deadline:
                    raise CommandError(f"The object store did not answer: {error}") from None
                time.sleep(2)

    def _ensure(self, client, bucket: str, *, region: str | None) -> None:
        try:
            client.head_bucket(Bucket=bucket)
            self.stdout.write(f"Bucket {bucket} exists.")
            return
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise CommandError(f"Cannot reach bucket {bucket}: {error}") from None
        arguments = {"Bucket": bucket}
        if region and region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        client.create_bucket(**arguments)
        self.stdout.write(f"Bucket {bucket} created.")
