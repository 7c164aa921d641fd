"""The four-eyes rule (``kamen.four_eyes``) for decisions about an order or a distributor:
who an order's money concerns is known here, in the network (the seller, the upline in the
order's snapshot, a distributor who bought it), so the apps above ask here."""

from django.utils.translation import gettext as _

from kamen.four_eyes import require_another_person

from ..selectors import users_with_a_stake_in_order

__all__ = ["require_not_own_distributor", "require_not_own_order"]


def require_not_own_order(*, actor, order, what: str) -> None:
    """Refuse ``actor`` deciding ``what`` about an order they bought (as a distributor, or as a
    guest with their own e-mail address) or earn from (seller or upline). ``order`` is read
    by attribute only (distributor_id, attribution, contact), so no app above is imported."""
    if getattr(actor, "pk", None) is None:
        return  # the pipeline itself: no query
    require_another_person(
        actor=actor,
        subject_user_ids=users_with_a_stake_in_order(
            distributor_id=order.distributor_id, attribution=order.attribution
        ),
        contacts=[order.contact],
        what=what or _("该订单"),
    )


def require_not_own_distributor(*, actor, distributor, what: str) -> None:
    """Refuse ``actor`` deciding ``what`` about their own distributor account (its status,
    place in the tree, holds, withdrawals, appeals)."""
    require_another_person(actor=actor, subject_user_ids=[distributor.user_id], what=what)
