"""Commission rules, the merchant's policy and the compliance guard.

The guard (``rule_set_problems``) looks at the whole rule set as it would be after a change and
refuses it, with the reason (naming the rules and the settings that clash), when it pays for
recruiting, reaches past level 3, uses a rate outside 0–100 %, or could breach the merchant's
caps: the worst case (highest rate at each level
across grades, plus the product bonus, times the largest campaign multiplier) is compared with
the total share per order and with the maximum share of the margin. Fixed amounts are compared
through the product's retail price, so a fixed-amount rule must name its product. At run time
``split_commissions`` caps the payout anyway (sub-store price differences are only known then)
and records a ``CapEvent``. The settings the guard reads belong to lower apps (grades and their
prices in ``distribution``, product prices in ``catalog``): their changes run the guard too,
through ``kamen.setting_checks`` (``setting_change_clashes``), so the rule set cannot be left
failing by a change made elsewhere.
"""

from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from kamen.audit import record_audit

from ..models import (
    BASIS_POINTS,
    MAX_LEVELS,
    Campaign,
    CommissionBase,
    CommissionPolicy,
    CommissionRule,
    ProductBonus,
    RuleMode,
    RuleTrigger,
)


def get_policy() -> CommissionPolicy:
    policy = CommissionPolicy.objects.filter(pk=1).first()
    if policy is None:
        try:
            with transaction.atomic():
                policy = CommissionPolicy.objects.create(pk=1)
        except IntegrityError:
            policy = CommissionPolicy.objects.get(pk=1)
    return policy


def _grades():
    from distribution.models import Grade

    return list(Grade.objects.all())


def _row_problems(rule: CommissionRule) -> list[str]:
    problems = []
    if rule.trigger != RuleTrigger.SALE:
        problems.append(_("佣金只能来自真实销售，不得为发展下级（拉人头）支付佣金"))
    if rule.level is None or not 1 <= int(rule.level) <= MAX_LEVELS:
        problems.append(
            _("佣金最多向上分配 3 级，层级必须是 1–3（收到 %(level)s）")
            % {"level": rule.level}
        )
    if (
        rule.mode == RuleMode.PERCENT
        and not 0 <= int(rule.rate_bp or 0) <= BASIS_POINTS
    ):
        problems.append(
            _("比例必须在 0–100%% 之间（收到 %(rate)s 基点）") % {"rate": rule.rate_bp}
        )
    if rule.mode == RuleMode.FIXED:
        if Decimal(rule.fixed_amount or 0) < 0:
            problems.append(_("固定金额不能为负数"))
        if rule.product_id is None:
            problems.append(_("固定金额的规则必须指定商品，以便核对是否超过佣金上限"))
    return problems


def _rate_bp_for(rule: CommissionRule, product) -> Decimal:
    if rule.mode == RuleMode.PERCENT:
        return Decimal(rule.rate_bp)
    if product is None or not product.retail_price:
        return Decimal(BASIS_POINTS)
    return Decimal(rule.fixed_amount) * BASIS_POINTS / Decimal(product.retail_price)


@dataclass(frozen=True)
class WorstCase:
    product: object
    share_bp: Decimal
    sources: tuple[str, ...] = ()  # the rules and settings that make up the worst case


@dataclass(frozen=True)
class Clash:
    """One way the rule set could breach a merchant's cap: ``key`` says where (which cap, which
    product, which price), ``excess`` by how much, ``message`` names the rules and settings that
    meet there. A setting change is refused when it adds a clash or makes one larger."""

    key: tuple
    excess: Decimal
    message: str


def _percent(rate_bp) -> str:
    return f"{Decimal(rate_bp) / 100:.2f}%"


def worst_cases(policy: CommissionPolicy) -> list[WorstCase]:
    """For every product scope (all products, and each product with its own rule, bonus or
    campaign): the largest share of the base the rule set could pay on one order."""
    from catalog.models import Product

    rules = list(
        CommissionRule.objects.filter(is_active=True).select_related("product")
    )
    bonuses = {
        b.product_id: b.bonus_bp for b in ProductBonus.objects.filter(is_active=True)
    }
    campaigns = list(Campaign.objects.filter(is_active=True))
    grades = _grades()
    from ..models import CommissionTier

    tier_rates = list(CommissionTier.objects.values_list("rate_bp", flat=True))
    product_ids = (
        {r.product_id for r in rules if r.product_id}
        | set(bonuses)
        | {c.product_id for c in campaigns if c.product_id}
    )
    scopes = [None] + list(Product.objects.filter(pk__in=product_ids))
    result = []
    for product in scopes:
        product_id = getattr(product, "pk", None)
        multiplier = max(
            [
                Decimal(c.multiplier_bp)
                for c in campaigns
                if c.product_id in (None, product_id)
            ]
            or [Decimal(BASIS_POINTS)]
        )
        total = Decimal(0)
        sources = []
        for level in range(1, MAX_LEVELS + 1):
            candidates = []
            grade_ids = [g.pk for g in grades] or [None]
            for grade_id in grade_ids:
                rule = resolve_rule(
                    rules, grade_id=grade_id, product_id=product_id, level=level
                )
                if rule is not None:
                    candidates.append(
                        (_rate_bp_for(rule, product), _("规则“%(rule)s”") % {"rule": rule.describe()})
                    )
                else:
                    grade = next((g for g in grades if g.pk == grade_id), None)
                    rate = getattr(grade, f"commission_level{level}_bp", 0) if grade else 0
                    candidates.append(
                        (
                            Decimal(rate),
                            _("等级“%(grade)s”第 %(level)s 级佣金 %(rate)s")
                            % {"grade": grade, "level": level, "rate": _percent(rate)},
                        )
                    )
            if level == 1:
                candidates.extend(
                    (Decimal(rate), _("阶梯佣金 %(rate)s") % {"rate": _percent(rate)}) for rate in tier_rates
                )
            rate, source = max(candidates or [(Decimal(0), "")], key=lambda candidate: candidate[0])
            total += rate
            if rate > 0:
                sources.append(source)
        if multiplier != BASIS_POINTS:
            campaign = max(
                (c for c in campaigns if c.product_id in (None, product_id)), key=lambda c: c.multiplier_bp
            )
            sources.append(
                _("活动“%(name)s” × %(times)s")
                % {"name": campaign.name, "times": f"{Decimal(campaign.multiplier_bp) / BASIS_POINTS:g}"}
            )
        if bonuses.get(product_id):
            sources.append(_("商品额外奖励 %(rate)s") % {"rate": _percent(bonuses[product_id])})
        total = total * multiplier / BASIS_POINTS + Decimal(bonuses.get(product_id, 0))
        result.append(WorstCase(product, total, tuple(sources)))
    return result


def resolve_rule(rules, *, grade_id, product_id, level) -> CommissionRule | None:
    """The rule that applies: product+grade, product, grade, general — first found wins."""
    for want_product, want_grade in (
        (product_id, grade_id),
        (product_id, None),
        (None, grade_id),
        (None, None),
    ):
        for rule in rules:
            if (
                rule.level == level
                and rule.product_id == want_product
                and rule.grade_id == want_grade
            ):
                return rule
    return None


def rule_set_problems(policy: CommissionPolicy | None = None) -> list[str]:
    """Why the current rule set (as in the database now) is not allowed; empty if it is. Each
    reason names the rules and the settings (grades, products, the merchant's caps) that clash."""
    problems = []
    for rule in CommissionRule.objects.filter(is_active=True):
        problems.extend(_row_problems(rule))
    return problems + [clash.message for clash in rule_set_clashes(policy)]


def rule_set_clashes(policy: CommissionPolicy | None = None) -> list[Clash]:
    """Where the rule set, with today's grades, products and sub-store settings, could pay more
    than the merchant's caps allow (the guard's findings, one per cap, product and price)."""
    policy = policy or get_policy()
    clashes = []
    grades = _grades()
    cases = worst_cases(policy)
    for case in cases:
        name = str(case.product) if case.product is not None else _("全部商品")
        if case.share_bp > policy.max_order_share_bp:
            message = _(
                "%(scope)s：最高可能支付实付金额的 %(worst)s%%，超过单笔订单上限 %(cap)s%%"
            ) % {
                "scope": name,
                "worst": f"{case.share_bp / 100:.2f}",
                "cap": f"{Decimal(policy.max_order_share_bp) / 100:.2f}",
            }
            cap = _("单笔订单上限 %(cap)s") % {"cap": _percent(policy.max_order_share_bp)}
            clashes.append(
                Clash(
                    ("order_share", getattr(case.product, "pk", None)),
                    case.share_bp - policy.max_order_share_bp,
                    message + _explain(case.sources, [cap]),
                )
            )
    general = next(case for case in cases if case.product is None)
    specific = {case.product.pk: case for case in cases if case.product is not None}
    from catalog.models import Product

    sub_store_costs = _SubStoreCosts(grades)
    for product in Product.objects.filter(retail_price__gt=0):
        clashes.extend(_margin_clashes(product, specific.get(product.pk, general), policy, sub_store_costs))
    return clashes


def _explain(rules, settings) -> str:
    """（规则：…；设置：…） — who meets at a clash."""
    return _("（规则：%(rules)s；设置：%(settings)s）") % {
        "rules": "、".join(rules) or _("无"),
        "settings": "、".join(settings),
    }


class _SubStoreCosts:
    """Grade prices and volume tiers of the grades that may open a sub-store, loaded once
    (two queries) for a whole guard run over the catalog."""

    def __init__(self, grades):
        from distribution.models import GradeProductPrice, GradeVolumeTier

        self.owners = [grade for grade in grades if grade.may_open_sub_store]
        self.overrides = {}
        self.tiers = {}
        if not self.owners:
            return
        for grade_id, product_id, unit_cost in GradeProductPrice.objects.filter(
            grade__in=self.owners
        ).values_list("grade_id", "product_id", "unit_cost"):
            self.overrides[(grade_id, product_id)] = unit_cost
        for grade_id, product_id, rate_bp in GradeVolumeTier.objects.filter(
            grade__in=self.owners
        ).values_list("grade_id", "product_id", "rate_bp"):
            key = (grade_id, product_id)
            self.tiers[key] = min(self.tiers.get(key, BASIS_POINTS), rate_bp)

    def lowest(self, product) -> tuple[Decimal, object] | None:
        """The lowest unit cost any sub-store owner could have for ``product`` (grade price
        or discount, then the best volume tier) and the grade that has it, or None when no
        grade may open a sub-store."""
        if not self.owners:
            return None
        costs = []
        for grade in self.owners:
            default = (
                Decimal(product.retail_price)
                * grade.wholesale_discount_bp
                / BASIS_POINTS
            )
            unit = Decimal(self.overrides.get((grade.pk, product.pk), default))
            tier = min(
                self.tiers.get((grade.pk, product.pk), BASIS_POINTS),
                self.tiers.get((grade.pk, None), BASIS_POINTS),
            )
            costs.append(
                (max(unit * tier / BASIS_POINTS, Decimal(product.cost_price or 0)), grade)
            )
        return min(costs, key=lambda cost: cost[0])


def _margin_clashes(product, case: WorstCase, policy: CommissionPolicy, sub_store_costs) -> list[Clash]:
    """Could one order of ``product`` pay more than the merchant's share of its margin,
    counting the sub-store price difference? Checked at the retail price and, when sub-stores
    exist, at the highest sub-store price against the lowest distributor cost."""
    cost = Decimal(product.cost_price or 0)
    share_bp = case.share_bp
    prices = [
        (
            "retail",
            Decimal(product.retail_price),
            Decimal(0),
            [
                _("“%(product)s”零售价 ¥%(price)s、成本价 ¥%(cost)s")
                % {"product": product, "price": product.retail_price, "cost": cost}
            ],
        )
    ]
    lowest = sub_store_costs.lowest(product)
    if lowest is not None:
        lowest_cost, grade = lowest
        ceiling = Decimal(product.max_resale_price or product.retail_price)
        prices.append(
            (
                "sub_store",
                ceiling,
                max(ceiling - lowest_cost, Decimal(0)),
                [
                    _("等级“%(grade)s”可开分站，拿货价 ¥%(cost)s") % {"grade": grade, "cost": f"{lowest_cost:.2f}"},
                    _("“%(product)s”最高售价 ¥%(price)s、成本价 ¥%(cost)s")
                    % {"product": product, "price": f"{ceiling:.2f}", "cost": cost},
                ],
            )
        )
    clashes = []
    for price_kind, price, difference, settings in prices:
        base = (
            price
            if policy.base == CommissionBase.PAID
            else max(price - cost, Decimal(0))
        )
        worst = base * share_bp / BASIS_POINTS + difference
        allowed = (
            max(price - cost, Decimal(0)) * policy.max_margin_share_bp / BASIS_POINTS
        )
        if worst > allowed:
            message = _(
                "%(scope)s：售价 ¥%(price)s 时佣金加分站差价最高 ¥%(worst)s，超过毛利分配上限 ¥%(cap)s"
            ) % {
                "scope": str(product),
                "price": f"{price:.2f}",
                "worst": f"{worst:.2f}",
                "cap": f"{allowed:.2f}",
            }
            settings = [*settings, _("毛利分配上限 %(cap)s") % {"cap": _percent(policy.max_margin_share_bp)}]
            clashes.append(
                Clash(("margin", product.pk, price_kind), worst - allowed, message + _explain(case.sources, settings))
            )
    return clashes


def setting_change_clashes() -> dict[tuple, tuple[Decimal, str]]:
    """The guard's findings for ``kamen.setting_checks``: a change to a grade, a product or a
    sub-store setting is refused when it adds a clash or makes one larger (so a change that
    has nothing to do with a clash that already exists still saves)."""
    return {clash.key: (clash.excess, clash.message) for clash in rule_set_clashes()}


def _save_checked(instance, *, actor, action: str, request=None):
    """Save ``instance`` and check the whole rule set; refuse (and keep nothing) on a problem."""
    problems = _row_problems(instance) if isinstance(instance, CommissionRule) else []
    if problems:
        raise ValidationError(problems)
    is_new = instance.pk is None
    try:
        with transaction.atomic():
            instance.full_clean()
            instance.save()
            problems = rule_set_problems()
            if problems:
                raise ValidationError(problems)
            record_audit(actor=actor, action=action, target=instance, request=request)
    except ValidationError:
        if is_new:
            instance.pk = None
        raise
    return instance


def save_commission_rule(
    *, rule: CommissionRule, actor, request=None
) -> CommissionRule:
    return _save_checked(
        rule, actor=actor, action="commissions.rule_saved", request=request
    )


def save_product_bonus(*, bonus: ProductBonus, actor, request=None) -> ProductBonus:
    return _save_checked(
        bonus, actor=actor, action="commissions.bonus_saved", request=request
    )


def save_campaign(*, campaign: Campaign, actor, request=None) -> Campaign:
    return _save_checked(
        campaign, actor=actor, action="commissions.campaign_saved", request=request
    )


def save_policy(*, policy: CommissionPolicy, actor, request=None) -> CommissionPolicy:
    policy.pk = 1
    return _save_checked(
        policy, actor=actor, action="commissions.policy_saved", request=request
    )


def check_without_saving(instance) -> list[str]:
    """The problems ``instance`` would cause, leaving the database as it was (for forms)."""
    problems = _row_problems(instance) if isinstance(instance, CommissionRule) else []
    if problems:
        return problems
    is_new = instance.pk is None
    with transaction.atomic():
        instance.save()
        problems = rule_set_problems(
            get_policy() if not isinstance(instance, CommissionPolicy) else instance
        )
        transaction.set_rollback(True)
    if is_new:
        instance.pk = None
    return problems


# --- tiers (阶梯佣金) -------------------------------------------------------------------------
def tier_problems(bands: list[tuple]) -> list[str]:
    """Why a grade's tier bands ``[(lower, upper or None, rate_bp), …]`` are not allowed."""
    problems = []
    if not bands:
        return problems
    ordered = sorted(bands, key=lambda band: Decimal(band[0]))
    for lower, upper, rate_bp in ordered:
        if Decimal(lower) < 0:
            problems.append(_("阶梯下限不能为负数"))
        if upper is not None and Decimal(upper) <= Decimal(lower):
            problems.append(_("阶梯上限必须大于下限（¥%(lower)s）") % {"lower": lower})
        if not 0 <= int(rate_bp) <= BASIS_POINTS:
            problems.append(
                _("比例必须在 0–100%% 之间（收到 %(rate)s 基点）") % {"rate": rate_bp}
            )
    if Decimal(ordered[0][0]) != 0:
        problems.append(_("第一档必须从 ¥0 开始"))
    for (lower, upper, _rate), (next_lower, _next_upper, _next_rate) in pairwise(
        ordered
    ):
        if upper is None or Decimal(upper) > Decimal(next_lower):
            problems.append(
                _("阶梯区间重叠：¥%(a)s 起与 ¥%(b)s 起两档")
                % {"a": lower, "b": next_lower}
            )
        elif Decimal(upper) < Decimal(next_lower):
            problems.append(
                _("阶梯区间有缺口：¥%(a)s 到 ¥%(b)s 没有比例")
                % {"a": upper, "b": next_lower}
            )
    if ordered[-1][1] is not None:
        problems.append(_("最后一档必须不封顶（上限留空）"))
    return problems


def save_commission_tiers(*, grade, bands: list[tuple], actor, request=None) -> list:
    """Replace the tiers of ``grade`` (None: the general tiers) with ``bands``, all or nothing,
    after the tier checks and the compliance guard."""
    from ..models import CommissionTier

    parsed = []
    try:
        for lower, upper, rate_bp in bands:
            parsed.append(
                (
                    Decimal(str(lower)),
                    Decimal(str(upper)) if upper not in (None, "") else None,
                    int(rate_bp),
                )
            )
    except (ArithmeticError, ValueError, TypeError):
        raise ValidationError(_("阶梯金额和比例必须是数字")) from None
    problems = tier_problems(parsed)
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        CommissionTier.objects.filter(grade=grade).delete()
        tiers = CommissionTier.objects.bulk_create(
            [
                CommissionTier(
                    grade=grade, lower_bound=lo, upper_bound=up, rate_bp=rate
                )
                for lo, up, rate in parsed
            ]
        )
        problems = rule_set_problems()
        if problems:
            raise ValidationError(problems)
        record_audit(
            actor=actor,
            action="commissions.tiers_saved",
            target=grade,
            target_repr=str(grade) if grade else "all grades",
            changes={
                "bands": [None, [[str(lo), str(up), rate] for lo, up, rate in parsed]]
            },
            request=request,
        )
    return tiers
