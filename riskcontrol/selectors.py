"""Reads of risk control for other apps and the console."""

from .models import RealNameStatus, RealNameVerification, ReviewCase, ReviewStatus


def is_fulfilment_held(*, order) -> bool:
    """True while risk control holds the order's fulfilment: the checkout put it on review and
    no one approved it yet (a rejected one stays held; it is refunded instead)."""
    if (order.attribution or {}).get("risk") != "review":
        return False
    status = (
        ReviewCase.objects.filter(order_id=order.pk)
        .values_list("status", flat=True)
        .first()
    )
    return status != ReviewStatus.APPROVED


def review_queue(*, status: str = ReviewStatus.PENDING):
    return (
        ReviewCase.objects.filter(status=status)
        .select_related("order", "signal", "decided_by")
        .order_by("created_at")
    )


def is_real_name_verified(*, distributor) -> bool:
    """The withdrawal checks this before a distributor's first payout."""
    return RealNameVerification.objects.filter(
        distributor=distributor, status=RealNameStatus.VERIFIED
    ).exists()


def verified_real_name(*, distributor) -> RealNameVerification | None:
    return RealNameVerification.objects.filter(
        distributor=distributor, status=RealNameStatus.VERIFIED
    ).first()


def has_open_risk_case(*, distributor_id: int) -> bool:
    """A risk review still pending on an order attributed to the distributor (the automatic
    withdrawal approval leaves such a distributor's withdrawals to staff)."""
    return ReviewCase.objects.filter(
        status=ReviewStatus.PENDING, order__distributor_id=distributor_id
    ).exists()


def real_names_for_filing(*, distributor_ids) -> dict[int, tuple[str, str]]:
    """{distributor id: (name, ID number)} of the verified ones, decrypted: only for the
    month's tax withholding filing, which the tax office requires by ID number; never shown
    on a page or logged."""
    from .kyc import reveal_real_name

    verifications = RealNameVerification.objects.filter(
        distributor_id__in=list(distributor_ids), status=RealNameStatus.VERIFIED
    )
    names = {}
    for verification in verifications:
        facts = reveal_real_name(verification)
        names[verification.distributor_id] = (facts.name, facts.id_number)
    return names
