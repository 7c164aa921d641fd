"""Checks a higher app's invariant needs when a lower app's settings change.

The commission-rule guard (``commissions``) reads grades, sub-store permissions and grade
prices (``distribution``) and product prices (``catalog``); those apps sit below it and may not
import it. So the higher app registers a check here at start-up, and the lower app wraps each
change to such a setting in ``setting_change``: the checks run before and after the write, in
the same transaction, and a change that adds a finding (or makes one larger) is refused with
the findings' messages and rolled back. A finding that was already there and did not grow
does not block an unrelated change.

A check returns ``{key: (size, message)}``: where something is wrong, by how much, and a
message naming what clashes.
"""

from collections.abc import Callable
from contextlib import contextmanager
from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.utils.translation import gettext as _

Findings = dict[tuple, tuple[Decimal, str]]
_checks: list[Callable[[], Findings]] = []


def register_setting_check(check: Callable[[], Findings]) -> None:
    if check not in _checks:
        _checks.append(check)


@contextmanager
def setting_change(*, setting: str):
    """Run the body (the write) between two runs of every registered check; raise
    ``ValidationError`` naming ``setting`` and what it clashes with if it added or enlarged a
    finding (everything the body wrote is rolled back)."""
    with transaction.atomic():
        before = [check() for check in _checks]
        yield
        problems = []
        for check, earlier in zip(_checks, before, strict=True):
            for key, (size, message) in check().items():
                if key not in earlier or size > earlier[key][0]:
                    problems.append(message)
        if problems:
            raise ValidationError(
                [
                    _("不能保存“%(setting)s”：修改后佣金规则将超出上限。%(problem)s")
                    % {"setting": setting, "problem": problem}
                    for problem in problems
                ]
            )


class SettingChangeAdminMixin:
    """A change form whose save a registered check may refuse (``setting_change`` around the
    whole form, inlines included, when ``guard_setting`` names it; or a service that raises):
    the reasons are shown and nothing is saved, instead of an error page."""

    def guard_setting(self, request, object_id) -> str | None:
        """The setting's name for the messages, or None when the services guard it."""
        return None

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        setting = self.guard_setting(request, object_id)
        try:
            if setting is None:
                return super().changeform_view(request, object_id, form_url, extra_context)
            with setting_change(setting=setting):
                return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as error:
            list(messages.get_messages(request))  # the rolled-back save's "saved" message
            for message in error.messages:
                messages.error(request, message)
            return HttpResponseRedirect(request.get_full_path())
