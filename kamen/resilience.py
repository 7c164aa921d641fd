"""When the database blinks: a 503 page in the shop's style with ``Retry-After``, not a 500.

A PostgreSQL restart (or failover) breaks the connections of the requests in flight with
``OperationalError`` / ``InterfaceError``. Those requests get a short "busy, retrying" page;
Django closes the broken connection when the request ends, and ``CONN_HEALTH_CHECKS`` makes the
next request check its connection before use, so it works again without a restart of the web
process. ``DatabaseUnavailableMiddleware`` answers for errors raised in views; ``server_error``
(the project's handler500) for those raised anywhere else — a middleware, the session save.

The page is rendered without the request's context processors: they would read the session
and the user from the database that just failed.
"""

import logging
import sys

from django import db
from django.conf import settings
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.views import defaults

logger = logging.getLogger(__name__)


def _database_errors() -> tuple[type[BaseException], ...]:
    driver = getattr(db.connection, "Database", None)
    return (
        db.OperationalError,
        db.InterfaceError,
        *(getattr(driver, name) for name in ("OperationalError", "InterfaceError") if hasattr(driver, name)),
    )


def is_database_unavailable(error: BaseException | None) -> bool:
    return error is not None and isinstance(error, _database_errors())


def database_unavailable_response(request) -> HttpResponse:
    retry_after = int(getattr(settings, "KAMEN_DATABASE_RETRY_AFTER_SECONDS", 5))
    logger.warning(
        "request.database_unavailable", extra={"path": getattr(request, "path", ""), "retry_after": retry_after}
    )
    body = render_to_string(
        "kamen/service_unavailable.html",
        {"retry_after": retry_after, "refresh": getattr(request, "method", "") == "GET"},
    )
    response = HttpResponse(body, status=503)
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    """A view that lost its database connection answers 503 with Retry-After."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if is_database_unavailable(exception):
            return database_unavailable_response(request)
        return None


def server_error(request, template_name=defaults.ERROR_500_TEMPLATE_NAME):
    """handler500: a database outage raised outside a view is a 503 too; anything else is
    Django's own 500 page."""
    if is_database_unavailable(sys.exc_info()[1]):
        return database_unavailable_response(request)
    return defaults.server_error(request, template_name=template_name)
