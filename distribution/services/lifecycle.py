"""Scheduled care of the network: clean-out of inactive distributors and segment tags.

Clean-out (清退): an active distributor with no sale of their own for the merchant's
``inactivity_days`` (counted from joining at the earliest) is warned first; still no sale
``inactivity_grace_days`` after the warning, they are frozen — never cleared automatically,
because clearing re-parents a team and the merchant decides that (an appeal is the merchant
unfreezing on the manage page). A sale lifts the warning. Safe to run twice: a second run
finds nobody new to warn or freeze.
"""

import logging
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from kamen.audit import record_audit

from ..models import Distributor, DistributorNotice, DistributorStatus
from .pricing import get_settings
from .tree import transition_distributor

logger = logging.getLogger(__name__)

ACTIVE_PROMOTER = "活跃推广型"
DORMANT = "躺平型"
RISING = "潜力成长型"
SEGMENT_TAGS = (ACTIVE_PROMOTER, DORMANT, RISING)
ACTIVE_PROMOTER_MIN_ORDERS = 5


def _sold_since(since):
    from ..selectors import _order_model, sold_statuses

    return _order_model().objects.filter(
        distributor_id=OuterRef("pk"), status__in=sold_statuses(), paid_at__gte=since
    )


def run_clean_out(*, now=None) -> dict[str, int]:
    now = now or timezone.now()
    row = get_settings()
    cutoff = now - timedelta(days=row.inactivity_days)
    grace_cutoff = now - timedelta(days=row.inactivity_grace_days)
    active = Distributor.objects.filter(status=DistributorStatus.ACTIVE)
    lifted = (
        active.filter(inactivity_warned_at__isnull=False)
        .filter(Exists(_sold_since(OuterRef("inactivity_warned_at"))))
        .update(inactivity_warned_at=None)
    )
    inactive = active.filter(joined_at__lt=cutoff).exclude(Exists(_sold_since(cutoff)))
    to_warn = list(
        inactive.filter(inactivity_warned_at__isnull=True).values_list("pk", flat=True)
    )
    warned = Distributor.objects.filter(
        pk__in=to_warn, inactivity_warned_at__isnull=True
    ).update(inactivity_warned_at=now)
    DistributorNotice.objects.bulk_create(
        DistributorNotice(
            distributor_id=pk,
            message=_("您已连续 %(days)s 天没有销售，%(grace)s 天内仍无销售将被冻结")
            % {"days": row.inactivity_days, "grace": row.inactivity_grace_days},
        )
        for pk in to_warn
    )
    frozen = 0
    for pk in inactive.filter(inactivity_warned_at__lte=grace_cutoff).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            distributor = Distributor.objects.select_for_update().get(pk=pk)
            if (
                distributor.status != DistributorStatus.ACTIVE
                or distributor.inactivity_warned_at is None
            ):
                continue
            transition_distributor(
                distributor=distributor,
                new_status=DistributorStatus.FROZEN,
                cause=_("连续 %(days)s 天无销售，预警后仍无销售，自动冻结")
                % {"days": row.inactivity_days},
            )
            record_audit(
                actor=None,
                action="distribution.distributor.clean_out",
                target=distributor,
                changes={
                    "status": [DistributorStatus.ACTIVE, DistributorStatus.FROZEN]
                },
            )
            frozen += 1
    logger.info(
        "distribution.clean_out warned=%s frozen=%s lifted=%s", warned, frozen, lifted
    )
    return {"warned": warned, "frozen": frozen, "lifted": lifted}


def compute_segment_tags(*, now=None) -> int:
    """Tag active distributors: 活跃推广型 (≥ 5 sales in 30 days), 躺平型 (none in 60 days),
    潜力成长型 (joined within 90 days, more sales in the last 30 days than the 30 before).
    Other tags the merchant set are kept. Returns how many rows changed."""
    from ..selectors import sold_statuses

    now = now or timezone.now()
    day30, day60, day90 = (now - timedelta(days=days) for days in (30, 60, 90))
    sold = Q(status__in=sold_statuses())
    rows = Distributor.objects.filter(status=DistributorStatus.ACTIVE).only(
        "pk", "tags", "joined_at"
    )
    from ..selectors import _order_model

    figures = {
        row["distributor_id"]: row
        for row in _order_model().objects.filter(
            sold, distributor_id__isnull=False, paid_at__gte=day60
        )
        .values("distributor_id")
        .annotate(
            last30=Count("pk", filter=Q(paid_at__gte=day30)),
            prev30=Count("pk", filter=Q(paid_at__lt=day30)),
        )
    }
    changed = []
    for distributor in rows.iterator(chunk_size=2000):
        figure = figures.get(distributor.pk, {"last30": 0, "prev30": 0})
        segments = []
        if figure["last30"] >= ACTIVE_PROMOTER_MIN_ORDERS:
            segments.append(ACTIVE_PROMOTER)
        if figure["last30"] + figure["prev30"] == 0 and (
            distributor.joined_at is None or distributor.joined_at < day60
        ):
            segments.append(DORMANT)
        if (
            distributor.joined_at
            and distributor.joined_at >= day90
            and figure["last30"] > figure["prev30"]
        ):
            segments.append(RISING)
        tags = [
            tag for tag in (distributor.tags or []) if tag not in SEGMENT_TAGS
        ] + segments
        if tags != (distributor.tags or []):
            distributor.tags = tags
            changed.append(distributor)
    Distributor.objects.bulk_update(changed, ["tags"], batch_size=1000)
    return len(changed)


def run_promotions(*, now=None) -> int:
    """Apply the active promotion rules: a distributor of the rule's grade whose own sales,
    team sales (own included) and new direct recruits over the period all reach the thresholds
    moves up to the rule's grade (only ever up, by rank) and gets a notice. Safe to run twice:
    a promoted distributor no longer has the rule's grade. Returns how many were promoted."""
    from django.db.models import Sum

    from ..models import PromotionRule
    from ..selectors import MONEY_FIELD, _order_model, sold_statuses, team_sales

    Order = _order_model()

    now = now or timezone.now()
    promoted = 0
    for rule in PromotionRule.objects.filter(is_active=True).select_related(
        "from_grade", "to_grade"
    ):
        if rule.to_grade.rank <= rule.from_grade.rank:
            logger.warning("distribution.promotion_rule_not_upwards rule=%s", rule.pk)
            continue
        since = now - timedelta(days=rule.period_days)
        own = dict(
            Order.objects.filter(
                status__in=sold_statuses(),
                paid_at__gte=since,
                distributor_id__isnull=False,
            )
            .values("distributor_id")
            .annotate(
                total=Sum(
                    F("paid_amount") - F("refunded_amount"), output_field=MONEY_FIELD
                )
            )
            .values_list("distributor_id", "total")
        )
        candidates = Distributor.objects.filter(
            status=DistributorStatus.ACTIVE, grade=rule.from_grade
        ).annotate(recruits=Count("children", filter=Q(children__joined_at__gte=since)))
        for candidate in candidates:
            if (
                own.get(candidate.pk, 0) < rule.min_own_sales
                or candidate.recruits < rule.min_direct_recruits
            ):
                continue
            if (
                rule.min_team_sales > 0
                and team_sales(candidate, since=since)["amount"] < rule.min_team_sales
            ):
                continue
            with transaction.atomic():
                locked = Distributor.objects.select_for_update().get(pk=candidate.pk)
                if (
                    locked.grade_id != rule.from_grade_id
                    or locked.status != DistributorStatus.ACTIVE
                ):
                    continue
                locked.grade = rule.to_grade
                locked.save(update_fields=["grade", "updated_at"])
                DistributorNotice.objects.create(
                    distributor=locked,
                    message=_("恭喜！您已自动升级为“%(grade)s”")
                    % {"grade": rule.to_grade.name},
                )
                record_audit(
                    actor=None,
                    action="distribution.distributor.promote",
                    target=locked,
                    changes={"grade": [rule.from_grade.name, rule.to_grade.name]},
                )
            promoted += 1
    logger.info("distribution.promotions promoted=%s", promoted)
    return promoted


@transaction.atomic
def submit_appeal(*, distributor: Distributor, reason) -> "Appeal":
    """A frozen distributor asks the merchant to lift the freeze; one pending appeal at a time
    (asking again returns the pending one)."""
    from ..models import Appeal, AppealStatus

    reason = str(reason or "").strip()
    locked = Distributor.objects.select_for_update().get(pk=distributor.pk)
    if locked.status != DistributorStatus.FROZEN:
        raise ValidationError({"reason": [_("只有被冻结的账号可以申诉")]})
    pending = Appeal.objects.filter(
        distributor=locked, status=AppealStatus.PENDING
    ).first()
    if pending is not None:
        return pending
    if not reason:
        raise ValidationError({"reason": [_("请填写申诉理由")]})
    if len(reason) > 500:
        raise ValidationError({"reason": [_("申诉理由最多 500 个字")]})
    return Appeal.objects.create(distributor=locked, reason=reason)


def decide_appeal(
    *, appeal: "Appeal", accept: bool, actor, note: str = "", request=None
) -> "Appeal":
    """The merchant decides: accepting unfreezes the distributor (through the status service,
    audited); either way the distributor gets a notice. Deciding twice changes nothing."""
    from ..models import Appeal, AppealStatus
    from .four_eyes import require_not_own_distributor
    from .tree import change_distributor_status

    require_not_own_distributor(actor=actor, distributor=appeal.distributor, what=_("审核申诉"))
    with transaction.atomic():
        locked = Appeal.objects.select_for_update().get(pk=appeal.pk)
        if locked.status != AppealStatus.PENDING:
            return locked
        if accept:
            change_distributor_status(
                distributor=locked.distributor,
                new_status=DistributorStatus.ACTIVE,
                actor=actor,
                reason=_("申诉通过：%(note)s") % {"note": note or locked.reason[:100]},
                request=request,
            )
        elif not getattr(actor, "is_staff", False) or not actor.has_perm(
            "distribution.freeze_distributor"
        ):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied(_("您没有执行此操作的权限"))
        locked.status = AppealStatus.ACCEPTED if accept else AppealStatus.REJECTED
        locked.decision_note = str(note or "")[:200]
        locked.decided_by = actor
        locked.decided_at = timezone.now()
        locked.save()
        DistributorNotice.objects.create(
            distributor_id=locked.distributor_id,
            message=_("您的申诉已通过，账号已恢复")
            if accept
            else _("您的申诉未通过：%(note)s") % {"note": note or "—"},
        )
        record_audit(
            actor=actor,
            action="distribution.appeal.accept"
            if accept
            else "distribution.appeal.reject",
            target=locked,
            request=request,
            changes={"status": [AppealStatus.PENDING, locked.status]},
        )
    return locked
