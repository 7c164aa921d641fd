"""Automatic withdrawal approval: finance's rules, applied to each new withdrawal (ADR 0021).

A withdrawal is approved and sent to payout without a click when the policy is on and every
rule holds: the amount is at most ``max_amount``; the distributor's 实名 was verified more than
``min_verified_days`` ago; no risk review is pending on their orders; none of their ledger
accounts is negative; and today's automatically approved total, this one included, stays within
``daily_total_max``. Anything else waits for a reviewer (and the manual decision keeps the
four-eyes rule). Each automatic decision is written to the audit log with the rule that made it.

The policy row is locked while one withdrawal is decided, so two decisions at the same moment
cannot both fit under the daily total.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from kamen.audit import diff_fields, record_audit, snapshot
from kamen.money import ZERO, InvalidAmount, parse_amount

from ..models import Account, AutoApprovalPolicy, Withdrawal, WithdrawalStatus
from .withdrawal_states import _transition

APPROVED = "approved"
POLICY_FIELDS = [
    "is_enabled",
    "max_amount",
    "min_verified_days",
    "require_no_open_risk_case",
    "require_no_negative_balance",
    "daily_total_max",
]
MAX_VERIFIED_DAYS = 3650


@dataclass(frozen=True)
class Verdict:
    rule: str  # "approved" or the code of the rule that held it
    explanation: str


def get_auto_approval_policy() -> AutoApprovalPolicy:
    policy = AutoApprovalPolicy.objects.filter(pk=1).first()
    if policy is None:
        try:
            with transaction.atomic():
                policy = AutoApprovalPolicy.objects.create(pk=1)
        except IntegrityError:
            policy = AutoApprovalPolicy.objects.get(pk=1)
    return policy


def _money(raw, label) -> Decimal:
    try:
        value = parse_amount(raw if isinstance(raw, Decimal) else str(raw).strip(), allow_zero=True)
    except InvalidAmount:
        raise ValidationError(
            _("%(label)s应为不小于 0 的金额（最多两位小数）") % {"label": label}
        ) from None
    if value >= Decimal("1000000000000"):
        raise ValidationError(_("%(label)s过大") % {"label": label})
    return value


def clean_auto_approval_policy(
    *, is_enabled, max_amount, min_verified_days, daily_total_max, **flags
) -> dict:
    """The policy's values, checked: amounts not negative, days a whole number in range, the
    daily total not below the single-withdrawal limit. ValidationError names each bad field."""
    errors, values = {}, {"is_enabled": bool(is_enabled), **{k: bool(v) for k, v in flags.items()}}
    raw = {"max_amount": max_amount, "daily_total_max": daily_total_max}
    for name, label in (
        ("max_amount", _("单笔金额上限")),
        ("daily_total_max", _("每日自动通过总额上限")),
    ):
        try:
            values[name] = _money(raw[name], label)
        except ValidationError as error:
            errors[name] = error.messages
    try:
        values["min_verified_days"] = int(str(min_verified_days).strip())
        if not 0 <= values["min_verified_days"] <= MAX_VERIFIED_DAYS:
            raise ValueError
    except (TypeError, ValueError):
        errors["min_verified_days"] = [
            _("实名认证天数应为 0–%(max)s 的整数") % {"max": MAX_VERIFIED_DAYS}
        ]
    if not errors and values["daily_total_max"] < values["max_amount"]:
        errors["daily_total_max"] = [_("每日总额上限不能低于单笔金额上限")]
    if errors:
        raise ValidationError(errors)
    return values


def save_auto_approval_policy(
    *,
    actor,
    is_enabled: bool,
    max_amount,
    min_verified_days,
    require_no_open_risk_case: bool,
    require_no_negative_balance: bool,
    daily_total_max,
    request=None,
) -> AutoApprovalPolicy:
    """Validate and save finance's rules; a bad value changes nothing. Audited."""
    if actor is None or not actor.has_perm("commissions.change_autoapprovalpolicy"):
        raise PermissionDenied(_("没有修改自动审核规则的权限"))
    values = clean_auto_approval_policy(
        is_enabled=is_enabled,
        max_amount=max_amount,
        min_verified_days=min_verified_days,
        daily_total_max=daily_total_max,
        require_no_open_risk_case=require_no_open_risk_case,
        require_no_negative_balance=require_no_negative_balance,
    )
    with transaction.atomic():
        get_auto_approval_policy()
        policy = AutoApprovalPolicy.objects.select_for_update().get(pk=1)
        before = snapshot(policy, POLICY_FIELDS)
        for name, value in values.items():
            setattr(policy, name, value)
        policy.save()
        record_audit(
            actor=actor,
            action="commissions.auto_approval_policy_changed",
            target=policy,
            changes=diff_fields(before=before, after=snapshot(policy, POLICY_FIELDS)),
            request=request,
        )
    return policy


def describe_policy(policy: AutoApprovalPolicy) -> str:
    parts = [
        _("单笔 ≤ ¥%(amount)s") % {"amount": policy.max_amount},
        _("实名满 %(days)s 天") % {"days": policy.min_verified_days},
    ]
    if policy.require_no_open_risk_case:
        parts.append(_("无未结风控审核"))
    if policy.require_no_negative_balance:
        parts.append(_("无负余额"))
    parts.append(_("当日自动通过合计 ≤ ¥%(amount)s") % {"amount": policy.daily_total_max})
    return "；".join(parts)


def _today_start():
    return timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)


def evaluate(policy: AutoApprovalPolicy, withdrawal: Withdrawal) -> Verdict:
    """The first rule the withdrawal breaks, or ``approved``. Reads only."""
    from riskcontrol.selectors import has_open_risk_case, verified_real_name

    if withdrawal.amount > policy.max_amount:
        return Verdict(
            "amount_above_limit",
            _("金额 ¥%(amount)s 超过自动审核上限 ¥%(max)s")
            % {"amount": withdrawal.amount, "max": policy.max_amount},
        )
    verification = verified_real_name(distributor=withdrawal.distributor)
    if verification is None or timezone.now() - verification.created_at <= timedelta(
        days=policy.min_verified_days
    ):
        return Verdict(
            "real_name_too_recent",
            _("实名认证未满 %(days)s 天") % {"days": policy.min_verified_days},
        )
    if policy.require_no_open_risk_case and has_open_risk_case(
        distributor_id=withdrawal.distributor_id
    ):
        return Verdict("open_risk_case", _("有未结的风控审核"))
    if (
        policy.require_no_negative_balance
        and Account.objects.filter(
            distributor_id=withdrawal.distributor_id, balance__lt=0
        ).exists()
    ):
        return Verdict("negative_balance", _("有账户余额为负"))
    today_total = Withdrawal.objects.filter(
        auto_decision=APPROVED, reviewed_at__gte=_today_start()
    ).aggregate(total=Sum("amount", default=ZERO))["total"]
    if today_total + withdrawal.amount > policy.daily_total_max:
        return Verdict(
            "daily_total_exceeded",
            _("今日自动通过已达 ¥%(total)s，加上本笔超过上限 ¥%(max)s")
            % {"total": today_total, "max": policy.daily_total_max},
        )
    return Verdict(APPROVED, describe_policy(policy))


def auto_review_withdrawal(*, withdrawal_id: int) -> Withdrawal:
    """Decide a new withdrawal by the policy: approve and pay it, or leave it for review.
    Safe to call twice: a withdrawal is decided automatically at most once."""
    if not get_auto_approval_policy().is_enabled:  # off: no lock, every withdrawal waits
        return Withdrawal.objects.get(pk=withdrawal_id)
    with transaction.atomic():
        policy = AutoApprovalPolicy.objects.select_for_update().get(pk=1)
        withdrawal = (
            Withdrawal.objects.select_for_update(of=("self",))
            .select_related("distributor")
            .get(pk=withdrawal_id)
        )
        if (
            not policy.is_enabled
            or withdrawal.status != WithdrawalStatus.REQUESTED
            or withdrawal.auto_decision
        ):
            return withdrawal
        verdict = evaluate(policy, withdrawal)
        withdrawal.auto_decision = verdict.rule
        if verdict.rule != APPROVED:
            withdrawal.save(update_fields=["auto_decision"])
            record_audit(
                actor=None,
                action="commissions.withdrawal_held_for_review",
                target=withdrawal,
                changes={"rule": [None, verdict.rule], "reason": [None, verdict.explanation]},
            )
            return withdrawal
        withdrawal.reviewed_at = timezone.now()
        _transition(
            withdrawal,
            WithdrawalStatus.APPROVED,
            cause=f"auto-approved: {verdict.explanation}",
            fields=("auto_decision", "reviewed_at"),
        )
        record_audit(
            actor=None,
            action="commissions.withdrawal_auto_approved",
            target=withdrawal,
            changes={"rule": [None, "auto_approval_policy"], "policy": [None, verdict.explanation]},
        )
        from ..tasks import pay_withdrawal_task

        pk = withdrawal.pk
        transaction.on_commit(lambda: pay_withdrawal_task.delay(pk), robust=True)
    return withdrawal
