"""The four-eyes rule: nobody reviews, approves, pays, rejects or decides anything about their
own money or their own case — their withdrawal, their appeal, their commission hold, their
distributor account, a risk case or a payment of an order they bought or earn from.

Every review service calls ``require_another_person`` with the user ids of the people the
decision is about, before it changes anything; the refusal is a ``ValidationError`` (so the
console shows it like any other refusal, and nothing is changed) whatever view or task calls
the service. It lives here, at the bottom layer, so every app can use it.
"""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

__all__ = ["OwnCaseRefused", "require_another_person"]


class OwnCaseRefused(ValidationError):
    """The actor is one of the people the decision is about."""


def require_another_person(
    *, actor, subject_user_ids: Iterable[int | None], what: str, contacts: Iterable[str] = ()
) -> None:
    """Refuse when ``actor`` is among ``subject_user_ids`` (or, for a guest order, its contact is
    the actor's own e-mail address). ``what`` names the decision for the message. No actor (a
    scheduled job, the pipeline itself) is nobody's own case."""
    actor_id = getattr(actor, "pk", None)
    if actor_id is None or not getattr(actor, "is_authenticated", False):
        return
    email = (getattr(actor, "email", "") or "").strip().lower()
    is_own = actor_id in {user_id for user_id in subject_user_ids if user_id}
    is_own = is_own or bool(email and email in {(contact or "").strip().lower() for contact in contacts})
    if is_own:
        raise OwnCaseRefused(
            _("四眼原则：%(what)s涉及您本人，不能由您处理，请交给另一位有权限的同事") % {"what": what},
            code="four_eyes",
        )
