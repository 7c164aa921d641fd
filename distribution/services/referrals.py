"""Referral links: created per channel, clicks counted, orders attributed with their upline."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _

from ..models import Channel, Distributor, DistributorStatus, ReferralLink
from .codes import new_code, normalize_code


def new_link_code() -> str:
    while True:
        code = "R" + new_code(7)
        if not ReferralLink.objects.filter(code=code).exists():
            return code


@transaction.atomic
def create_referral_link(
    *, distributor: Distributor, channel: str, label: str = ""
) -> ReferralLink:
    """The distributor's link for a channel; asking twice returns the same link."""
    if channel not in Channel.values:
        raise ValidationError(
            {"channel": [_("未知的推广渠道“%(channel)s”") % {"channel": channel}]}
        )
    distributor = Distributor.objects.select_for_update().get(pk=distributor.pk)
    if distributor.status != DistributorStatus.ACTIVE:
        raise PermissionDenied(_("账号当前状态不能推广"))
    existing = ReferralLink.objects.filter(
        distributor=distributor, channel=channel, sub_store__isnull=True
    ).first()
    if existing is not None:
        return existing
    return ReferralLink.objects.create(
        distributor=distributor,
        channel=channel,
        code=new_link_code(),
        label=str(label or "")[:40],
    )


def record_referral_click(*, code) -> bool:
    """Count one click on a referral link (the referral middleware or the /r/<code>/ redirect
    calls it once per visit). Unknown codes count nothing. One UPDATE, no read."""
    code = normalize_code(code)
    if not code:
        return False
    return (
        ReferralLink.objects.filter(code=code, is_active=True).update(
            clicks=F("clicks") + 1
        )
        > 0
    )


def active_link(code) -> ReferralLink | None:
    code = normalize_code(code)
    if not code:
        return None
    return (
        ReferralLink.objects.select_related("distributor", "distributor__grade", "distributor__sub_store")
        .filter(code=code, is_active=True, distributor__status=DistributorStatus.ACTIVE)
        .first()
    )
