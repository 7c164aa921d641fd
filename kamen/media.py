"""Uploaded images served by the application itself while they live on this host's disk.

`make run` (embedded or real mode on one host) has no web server in front of Django, so
nothing else would answer /media/ and product images would 404. With an S3-compatible store
(`KAMEN_S3_BUCKET`, every deployment of more than one host) the image URLs point at the
bucket or its CDN and the application never serves them, so a web worker is not tied up
streaming images.

Files are read through Django's storage API (whatever backend is configured), and only
images are served: anything else uploaded could be HTML or SVG that a browser would run as
a page of this site.
"""

import mimetypes
import posixpath

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.views.decorators.http import require_safe

IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}


def serves_media() -> bool:
    return settings.DEBUG or settings.IS_EMBEDDED_DATABASE or not settings.KAMEN_S3_BUCKET


@require_safe
def media(request, path: str):
    if not serves_media():
        raise Http404
    name = posixpath.normpath(path).lstrip("/")
    if name != path or name.startswith("..") or "\\" in name:
        raise Http404
    content_type, encoding = mimetypes.guess_type(name)
    if content_type not in IMAGE_TYPES or encoding:
        raise Http404
    try:
        file = default_storage.open(name, "rb")
    except (FileNotFoundError, IsADirectoryError, SuspiciousFileOperation, OSError):
        raise Http404 from None
    response = FileResponse(file, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "public, max-age=3600"
    return response
