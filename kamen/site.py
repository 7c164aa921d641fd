"""The site's public address (SITE_URL): one value for every host behind the proxy.

Links that leave the request they were made in (e-mails, posters, a supplier's address
stored in the database) are built from SITE_URL, never from the host that happened to
answer, so they keep working when that host is gone.
"""

from django.conf import settings


def site_url(path: str = "/") -> str:
    """``path`` (absolute, as ``reverse`` gives it) on the site's public address."""
    if not path.startswith("/"):
        raise ValueError(f"site_url wants a path starting with '/', got {path!r}")
    return f"{settings.SITE_URL}{path}"


def resolve_on_site(url: str) -> str:
    """A stored address: a path on this site ("/sandbox/supplier/") resolved against SITE_URL
    at use time; a full URL (another system's) as it is."""
    if url.startswith("/") and not url.startswith("//"):
        return site_url(url)
    return url
