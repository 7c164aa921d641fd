"""团队业绩奖励: the monthly team performance bonus.

On the 1st of each month (Celery beat) ``run_team_bonuses(month=<previous month>)`` sums, for
every active distributor, the month's team sales — orders attributed to them or anyone in their
subtree, paid in the month, paid minus refunded, counted only while they are sales (a fully
refunded order counts nothing) — and pays the leader of every team at or above a merchant
threshold one ``team_bonus`` commission: the highest threshold reached decides the reward.

Compliance: the figure is real sales only; team size or recruits never count (no 拉人头). A
rule may not promise more than the merchant's per-order share of the sales at its own
threshold (a rate above the cap, or a fixed amount above threshold × cap, is refused).

Idempotent: ``UniqueConstraint(beneficiary, period) WHERE kind = team_bonus`` and the journal
reference ``team-bonus:<leader>:<YYYY-MM>`` make a second run pay nothing more. The bonus is
booked like any accrual (merchant revenue → the leader's pending) and settles with the next
cycle; refunds of the month's orders arriving after the run do not reverse it (the month is
closed on the figures of the 1st).
"""

from datetime import date
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kamen.audit import record_audit
from kamen.money import to_fen

from .. import sql as commissions_sql
from ..models import (
    BASIS_POINTS,
    AccountKind,
    Commission,
    CommissionKind,
    RuleMode,
    TeamBonusRule,
    TransactionKind,
)
from .ledger import credit, debit, distributor_account, merchant_account, post_journal_transaction
from .rules import get_policy


def month_start(day: date) -> date:
    return day.replace(day=1)


def previous_month(today: date | None = None) -> date:
    today = today or timezone.localdate()
    first = today.replace(day=1)
    return first.replace(year=first.year - 1, month=12) if first.month == 1 else first.replace(month=first.month - 1)


def team_sales_by_leader(*, month: date, at_least: Decimal) -> dict[int, Decimal]:
    """{distributor id: the month's team sales} for every active distributor whose team sold at
    least ``at_least`` — one grouped query over the nested-set intervals."""
    from distribution.models import DistributorStatus
    from distribution.selectors import sold_statuses

    from ..selectors import month_bounds

    start, end = month_bounds(month_start(month))
    with connection.cursor() as cursor:
        cursor.execute(
            commissions_sql.TEAM_SALES,
            [DistributorStatus.ACTIVE, list(sold_statuses()), start, end, at_least],
        )
        return {leader_id: Decimal(gmv) for leader_id, gmv in cursor.fetchall()}


def reward_for(rule: TeamBonusRule, gmv: Decimal) -> Decimal:
    if rule.mode == RuleMode.PERCENT:
        return to_fen(gmv * rule.rate_bp / BASIS_POINTS)
    return to_fen(rule.fixed_amount)


def run_team_bonuses(*, month: date) -> list[Commission]:
    """Pay the month's team bonuses once; return the bonus rows of that month (old and new)."""
    period = month_start(month)
    if period >= month_start(timezone.localdate()):
        raise ValidationError(_("只能为已结束的月份发放团队业绩奖励"))
    rules = sorted(TeamBonusRule.objects.filter(is_active=True), key=lambda r: r.threshold, reverse=True)
    if rules:
        teams = team_sales_by_leader(month=period, at_least=rules[-1].threshold)
        for leader_id, gmv in teams.items():
            rule = next(r for r in rules if r.threshold <= gmv)
            amount = reward_for(rule, gmv)
            if amount > 0:
                _pay(leader_id=leader_id, period=period, gmv=gmv, rule=rule, amount=amount)
    return list(Commission.objects.filter(kind=CommissionKind.TEAM_BONUS, period=period).order_by("beneficiary_id"))


def _pay(*, leader_id: int, period: date, gmv: Decimal, rule: TeamBonusRule, amount: Decimal) -> None:
    """One leader's bonus and its journal transaction, in one transaction; a second call finds
    the row (or hits the unique constraint) and posts nothing."""
    with transaction.atomic():
        if Commission.objects.filter(kind=CommissionKind.TEAM_BONUS, beneficiary_id=leader_id, period=period).exists():
            return
        description = _("团队业绩奖励 %(month)s：团队销售 ¥%(gmv)s，达到 ¥%(threshold)s 档（%(reward)s）") % {
            "month": f"{period:%Y-%m}",
            "gmv": f"{gmv:.2f}",
            "threshold": f"{rule.threshold:.2f}",
            "reward": rule.describe_reward(),
        }
        try:
            with transaction.atomic():
                commission = Commission.objects.create(
                    order=None,
                    period=period,
                    beneficiary_id=leader_id,
                    kind=CommissionKind.TEAM_BONUS,
                    level=1,
                    rule_description=description[:200],
                    rate_bp=rule.rate_bp if rule.mode == RuleMode.PERCENT else 0,
                    base_amount=gmv,
                    amount=amount,
                    available_at=timezone.now(),
                )
        except IntegrityError:
            return
        post_journal_transaction(
            kind=TransactionKind.ACCRUAL,
            reference=f"team-bonus:{leader_id}:{period:%Y-%m}",
            lines=[
                debit(merchant_account(AccountKind.MERCHANT_REVENUE), amount, commission=commission),
                credit(
                    distributor_account(leader_id, AccountKind.DISTRIBUTOR_PENDING),
                    amount,
                    commission=commission,
                ),
            ],
            memo=description,
        )


# --- rules (console) ----------------------------------------------------------------------------
def team_bonus_rule_problems(rule: TeamBonusRule, policy=None) -> list[str]:
    """Why a team bonus rule is not allowed; empty if it is."""
    policy = policy or get_policy()
    problems = []
    threshold = Decimal(rule.threshold or 0)
    if threshold <= 0:
        problems.append(_("团队销售额门槛必须大于 0"))
    cap_bp = policy.max_order_share_bp
    if rule.mode == RuleMode.PERCENT:
        if not 0 < int(rule.rate_bp or 0) <= BASIS_POINTS:
            problems.append(_("奖励比例必须在 0–100%% 之间（收到 %(rate)s 基点）") % {"rate": rule.rate_bp})
        elif rule.rate_bp > cap_bp:
            problems.append(
                _("奖励比例 %(rate)s%% 超过佣金上限 %(cap)s%%")
                % {"rate": f"{Decimal(rule.rate_bp) / 100:.2f}", "cap": f"{Decimal(cap_bp) / 100:.2f}"}
            )
    else:
        fixed = Decimal(rule.fixed_amount or 0)
        if fixed <= 0:
            problems.append(_("固定奖励必须大于 0"))
        elif threshold > 0 and fixed > threshold * cap_bp / BASIS_POINTS:
            problems.append(
                _("固定奖励 ¥%(fixed)s 超过门槛销售额 ¥%(threshold)s 的佣金上限 %(cap)s%%")
                % {"fixed": f"{fixed:.2f}", "threshold": f"{threshold:.2f}", "cap": f"{Decimal(cap_bp) / 100:.2f}"}
            )
    return problems


def save_team_bonus_rule(*, rule: TeamBonusRule, actor, request=None) -> TeamBonusRule:
    problems = team_bonus_rule_problems(rule)
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        rule.full_clean()
        rule.save()
        record_audit(actor=actor, action="commissions.team_bonus_rule_saved", target=rule, request=request)
    return rule


__all__ = [
    "previous_month",
    "reward_for",
    "run_team_bonuses",
    "save_team_bonus_rule",
    "team_bonus_rule_problems",
    "team_sales_by_leader",
]
