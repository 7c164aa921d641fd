"""One rule for every text input: no control characters.

A NUL byte cannot be stored in PostgreSQL text (the driver raises, the page was a 500), and
the other C0/C1 control characters have no business in a name, a notice or a search; only
tab, line feed and carriage return (multi-line text) pass. The rule lives in a middleware:
the address is checked before any other middleware reads it, the form body just before the
view (after the size limit), so no form, hand-parsed ``request.POST`` or URL parameter can
forget it:
the request is refused whole with a 400 page in the shop's style (or JSON for API callers)
and nothing is changed.

Checked: the path, every query parameter and form field (names and values) and uploaded
file names. Not checked: JSON and other raw bodies (gateways and APIs parse and verify
their own), cookies and headers.
"""

import re

from django.conf import settings
from django.http import JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.utils.translation import gettext as _

from kamen.parsing import is_ascii_digits

CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
FORM_BODIES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FIELDS_NAMED = 5


def has_control_characters(text: str) -> bool:
    return bool(CONTROL_CHARACTERS.search(text))


def _readable(name: str) -> str:
    return CONTROL_CHARACTERS.sub("", name)[:40] or "?"


def _offending(sources) -> list[str]:
    found = []
    for source in sources:
        for name, values in source.lists():
            if has_control_characters(name) or any(has_control_characters(value) for value in values):
                found.append(_readable(name))
    return found


def offending_address_inputs(request) -> list[str]:
    """Names of the inputs in the address that hold a control character ("path" for the
    path itself): checked before any middleware reads them (the referral code is one)."""
    return (["path"] if has_control_characters(request.path_info) else []) + _offending([request.GET])


def offending_body_inputs(request, view_func) -> list[str]:
    """Names of the form fields (and uploads) that hold a control character. A multipart
    body sent to a CSRF-exempt view (a gateway or an API, which reads and verifies the raw
    body itself) is left unread: once parsed, the raw body is gone."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.content_type not in FORM_BODIES:
        return []
    if request.content_type == "multipart/form-data" and getattr(view_func, "csrf_exempt", False):
        return []
    limit = getattr(settings, "KAMEN_MAX_REQUEST_BYTES", None)
    length = request.META.get("CONTENT_LENGTH") or "0"
    if limit is not None and is_ascii_digits(length) and int(length) > limit:
        return []  # refused with 413 before it gets here
    uploads = [_readable(name) for name, upload in request.FILES.items() if has_control_characters(upload.name)]
    return list(dict.fromkeys(_offending([request.POST]) + uploads))


class ControlCharacterMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        fields = offending_address_inputs(request)
        if fields:
            return self.refuse(request, fields)
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        """The body is read here, after the size limit and before CSRF and the view."""
        try:
            fields = offending_body_inputs(request, view_func)
        except MultiPartParserError:
            return self.refuse(request, [], _("提交的表单格式无效，请刷新页面后重试。"))
        if fields:
            return self.refuse(request, fields)
        return None

    @staticmethod
    def refuse(request, fields: list[str], message: str = ""):
        fields = fields[:MAX_FIELDS_NAMED]
        message = message or _(
            "您提交的内容里有控制字符（例如 NUL），输入框中不能有这类字符。请删除后重新提交；什么都没有更改。"
        )
        accept = request.headers.get("Accept", "")
        if "application/json" in accept and "text/html" not in accept:
            return JsonResponse({"error": message, "fields": fields}, status=400)
        return render(request, "kamen/bad_input.html", {"message": message, "fields": fields}, status=400)
