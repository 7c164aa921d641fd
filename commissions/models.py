"""Commissions: the rules, one row per (order, beneficiary, kind), a double-entry journal,
settlement runs, payout accounts and withdrawals.

The journal (``JournalTransaction`` + ``JournalEntry``) is append-only and balanced, enforced
in PostgreSQL (migration 0002): a trigger refuses UPDATE and DELETE on both tables, and a
deferred constraint trigger refuses to commit a transaction whose debits differ from its
credits. ``Account.balance`` is a cache (credits − debits) updated with ``F()`` in the same
database transaction as the entries; ``manage.py reconcile_ledger`` proves it.

Every money move goes through ``commissions.services.ledger.post_journal_transaction``.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from kamen.models import actor_field, created_at_field, status_check, updated_at_field
from kamen.money import MONEY  # noqa: E402  (one definition for every money column)

BASIS_POINTS = 10_000
MAX_LEVELS = 3


# --- the ledger -------------------------------------------------------------------------------
class AccountKind(models.TextChoices):
    DISTRIBUTOR_PENDING = "distributor_pending", _("待结算佣金")
    DISTRIBUTOR_AVAILABLE = "distributor_available", _("可提现余额")
    DISTRIBUTOR_FROZEN = "distributor_frozen", _("冻结金额")
    MERCHANT_REVENUE = "merchant_revenue", _("商户收入")
    SUPPLIER_COST = "supplier_cost", _("供货成本")
    GATEWAY_FEES = "gateway_fees", _("支付手续费")
    TAX_WITHHELD = "tax_withheld", _("代扣个税")
    PAYOUTS_IN_TRANSIT = "payouts_in_transit", _("提现在途")
    PAYOUTS_PAID = "payouts_paid", _("已打款")
    # An order's books (docs/adr/0020): the gateway's clearing is debited with the payment;
    # revenue is a transit account that every event closes; the merchant's profit is what is
    # left of the payment after fee, cost of goods, commissions and price differences.
    GATEWAY_CLEARING = "gateway_clearing", _("支付渠道待结算")
    MERCHANT_PROFIT = "merchant_profit", _("商户利润")
    # Docking (对接, docs/adr/0019): a site's prepaid balance (预存款, owed to the site) and
    # the money the merchant received for it.
    DOCKING_PREPAID = "docking_prepaid", _("对接预存款")
    PREPAID_RECEIPTS = "prepaid_receipts", _("预存款收款")
    # A grade's deposit (保证金, docs/adr/0023): refundable security the merchant holds for the
    # distributor (credits − debits: what the merchant owes them back).
    DISTRIBUTOR_DEPOSIT = "distributor_deposit", _("保证金")


DISTRIBUTOR_KINDS = (
    AccountKind.DISTRIBUTOR_PENDING,
    AccountKind.DISTRIBUTOR_AVAILABLE,
    AccountKind.DISTRIBUTOR_FROZEN,
)
# Kinds a distributor owns: the three wallets, a docking site's prepaid balance, the deposit.
DISTRIBUTOR_OWNED_KINDS = (
    *DISTRIBUTOR_KINDS,
    AccountKind.DOCKING_PREPAID,
    AccountKind.DISTRIBUTOR_DEPOSIT,
)


class Account(models.Model):
    """One ledger account; the distributor's three wallets, or one merchant book.

    ``balance`` = sum of credits − sum of debits, cached; only the posting service writes it.
    """

    kind = models.CharField(_("类型"), max_length=24, choices=AccountKind.choices)
    distributor = models.ForeignKey(
        "distribution.Distributor",
        verbose_name=_("分销商"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_accounts",
    )
    balance = models.DecimalField(_("余额"), **MONEY, default=Decimal("0.00"))
    created_at = created_at_field()

    class Meta:
        verbose_name = _("账户")
        verbose_name_plural = _("账户")
        ordering = ["kind", "distributor_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "distributor"],
                nulls_distinct=False,
                name="account_unique_kind_owner",
            ),
            status_check("kind", AccountKind, name="account_kind_known"),
            models.CheckConstraint(
                condition=(
                    Q(kind__in=[k.value for k in DISTRIBUTOR_OWNED_KINDS])
                    & Q(distributor__isnull=False)
                )
                | (
                    ~Q(kind__in=[k.value for k in DISTRIBUTOR_OWNED_KINDS])
                    & Q(distributor__isnull=True)
                ),
                name="account_owner_matches_kind",
            ),
        ]

    def __str__(self):
        owner = f" #{self.distributor_id}" if self.distributor_id else ""
        return f"{self.get_kind_display()}{owner}"


class TransactionKind(models.TextChoices):
    ACCRUAL = "accrual", _("佣金计提")
    CANCELLATION = "cancellation", _("佣金取消")
    CLAWBACK = "clawback", _("佣金追回")
    SETTLEMENT = "settlement", _("结算")
    FREEZE = "freeze", _("风控冻结")
    RELEASE = "release", _("解除冻结")
    WITHDRAWAL = "withdrawal", _("提现申请")
    WITHDRAWAL_RETURN = "withdrawal_return", _("提现退回")
    PAYOUT = "payout", _("提现打款")
    WALLET_PAYMENT = "wallet_payment", _("余额支付")
    TAX_ADJUSTMENT = "tax_adjustment", _("个税调整")
    TOP_UP = "top_up", _("余额充值")
    ORDER_PAYMENT = "order_payment", _("订单收款")
    ORDER_DELIVERY = "order_delivery", _("订单成本与利润")
    ORDER_REFUND = "order_refund", _("订单退款")
    PREPAID_TOP_UP = "prepaid_top_up", _("预存款充值")
    PREPAID_PAYMENT = "prepaid_payment", _("预存款支付")
    PREPAID_REFUND = "prepaid_refund", _("预存款退回")
    DEPOSIT = "deposit", _("保证金缴纳")
    DEPOSIT_OFFSET = "deposit_offset", _("保证金抵扣欠款")
    DEPOSIT_REFUND = "deposit_refund", _("保证金退还")
    STOCK_PURCHASE = "stock_purchase", _("进货收款与成本")


class JournalTransaction(models.Model):
    """A set of entries whose debits equal their credits. ``reference`` is the idempotency key
    of whatever caused it (a commission, a settlement, a withdrawal); never updated or deleted."""

    kind = models.CharField(_("类型"), max_length=20, choices=TransactionKind.choices)
    reference = models.CharField(_("业务键"), max_length=120, unique=True)
    memo = models.CharField(_("摘要"), max_length=200, blank=True)
    order = models.ForeignKey(
        "orders.Order",
        verbose_name=_("订单"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("操作人"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = created_at_field(_("记账时间"), db_index=True)

    class Meta:
        verbose_name = _("记账凭证")
        verbose_name_plural = _("记账凭证")
        ordering = ["-created_at", "-id"]
        constraints = [
            status_check("kind", TransactionKind, name="journal_kind_known")
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.reference}"


class EntrySide(models.TextChoices):
    DEBIT = "debit", _("借")
    CREDIT = "credit", _("贷")


class JournalEntry(models.Model):
    transaction = models.ForeignKey(
        JournalTransaction,
        verbose_name=_("凭证"),
        on_delete=models.PROTECT,
        related_name="entries",
    )
    account = models.ForeignKey(
        Account,
        verbose_name=_("账户"),
        on_delete=models.PROTECT,
        related_name="entries",
        db_index=False,  # journal_entry_account_idx (account, id) serves it
    )
    side = models.CharField(_("借贷"), max_length=6, choices=EntrySide.choices)
    amount = models.DecimalField(_("金额"), **MONEY)
    commission = models.ForeignKey(
        "Commission",
        verbose_name=_("佣金"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="entries",
    )
    created_at = created_at_field(_("记账时间"))

    class Meta:
        verbose_name = _("分录")
        verbose_name_plural = _("分录")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="journal_entry_amount_positive"
            ),
            status_check("side", EntrySide, name="journal_entry_side_known"),
        ]
        indexes = [
            models.Index(fields=["account", "id"], name="journal_entry_account_idx")
        ]

    def __str__(self):
        return f"{self.get_side_display()} {self.account} ¥{self.amount}"

    @property
    def signed_amount(self) -> Decimal:
        return self.amount if self.side == EntrySide.CREDIT else -self.amount


# --- rules ------------------------------------------------------------------------------------
class CommissionBase(models.TextChoices):
    PAID = "paid", _("实付金额")
    MARGIN = "margin", _("毛利（实付 − 成本）")


class StockCommissionMode(models.TextChoices):
    """What the upline earns on a downline's stock purchase (进货)."""

    NONE = "none", _("不分佣")
    MARGIN = "margin", _("按差价（进货价 − 上级自己的拿货价）")


class SettlementCycle(models.TextChoices):
    DAILY = "daily", _("每日")
    WEEKLY = "weekly", _("每周")
    MONTHLY = "monthly", _("每月")


class TierPeriod(models.TextChoices):
    MONTH = "month", _("每月（月底清零）")
    QUARTER = "quarter", _("每季度（季末清零）")
    ALL_TIME = "all_time", _("累计")


class TierMode(models.TextChoices):
    MARGINAL = "marginal", _("超额累进（每段按各自比例）")
    WHOLE = "whole", _("全额（跨档后整单按新比例）")


class CommissionPolicy(models.Model):
    """The merchant's commission settings: one row (pk 1)."""

    base = models.CharField(
        _("佣金基数"),
        max_length=8,
        choices=CommissionBase.choices,
        default=CommissionBase.PAID,
    )
    self_purchase_earns = models.BooleanField(
        _("自购返佣"), default=False, help_text=_("分销商自己下单时是否获得佣金")
    )
    max_order_share_bp = models.PositiveIntegerField(
        _("单笔订单佣金上限（基点）"),
        default=3000,
        help_text=_("佣金总额占实付金额的最高比例，3000 = 30%"),
    )
    max_margin_share_bp = models.PositiveIntegerField(
        _("毛利分配上限（基点）"),
        default=BASIS_POINTS,
        help_text=_("佣金加分站差价占毛利的最高比例"),
    )
    hold_days_card_key = models.PositiveSmallIntegerField(_("卡密冻结天数"), default=1)
    hold_days_direct_recharge = models.PositiveSmallIntegerField(
        _("直充冻结天数"), default=1
    )
    hold_days_manual = models.PositiveSmallIntegerField(
        _("人工发货冻结天数"), default=7
    )
    hold_days_bundle = models.PositiveSmallIntegerField(_("套餐冻结天数"), default=7)
    settlement_cycle = models.CharField(
        _("结算周期"),
        max_length=8,
        choices=SettlementCycle.choices,
        default=SettlementCycle.DAILY,
    )
    tier_period = models.CharField(
        _("阶梯佣金统计周期"),
        max_length=10,
        choices=TierPeriod.choices,
        default=TierPeriod.MONTH,
    )
    tier_mode = models.CharField(
        _("阶梯佣金方式"),
        max_length=10,
        choices=TierMode.choices,
        default=TierMode.MARGINAL,
    )
    stock_commission_mode = models.CharField(
        _("进货佣金"),
        max_length=8,
        choices=StockCommissionMode.choices,
        default=StockCommissionMode.NONE,
        help_text=_("下级进货时上级（最多 3 级）按各自差价和等级佣金比例获得佣金，受佣金上限约束"),
    )
    withdrawal_fee_fixed = models.DecimalField(
        _("提现手续费（固定）"), **MONEY, default=Decimal("0.00")
    )
    withdrawal_fee_bp = models.PositiveIntegerField(_("提现手续费（基点）"), default=0)
    deposit_covers_debt = models.BooleanField(
        _("退还保证金时先抵扣欠款"),
        default=True,
        help_text=_("分销商退出时，保证金先抵扣佣金追回形成的欠款（可提现余额为负），余额再退还"),
    )
    updated_at = updated_at_field()

    class Meta:
        verbose_name = _("佣金设置")
        verbose_name_plural = _("佣金设置")
        constraints = [
            models.CheckConstraint(
                condition=Q(pk=1), name="commission_policy_singleton"
            ),
            models.CheckConstraint(
                condition=Q(max_order_share_bp__lte=BASIS_POINTS)
                & Q(max_margin_share_bp__lte=BASIS_POINTS),
                name="commission_policy_caps_in_range",
            ),
            models.CheckConstraint(
                condition=Q(withdrawal_fee_fixed__gte=0),
                name="commission_policy_fee_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(withdrawal_fee_bp__lte=BASIS_POINTS),
                name="commission_policy_fee_bp_in_range",
            ),
        ]

    def __str__(self):
        return str(_("佣金设置"))

    def hold_days_for(self, product_type: str) -> int:
        return getattr(self, f"hold_days_{product_type}", self.hold_days_manual)


class RuleMode(models.TextChoices):
    PERCENT = "percent", _("按比例")
    FIXED = "fixed", _("固定金额")


class RuleTrigger(models.TextChoices):
    SALE = "sale", _("真实销售")
    RECRUITMENT = "recruitment", _("发展下级（禁止）")


class CommissionRule(models.Model):
    """What level 1–3 above the buyer earns: for a grade (empty: every grade), for a product
    (empty: every product; a product rule overrides the general one)."""

    grade = models.ForeignKey(
        "distribution.Grade",
        verbose_name=_("等级"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    product = models.ForeignKey(
        "catalog.Product",
        verbose_name=_("商品"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    level = models.PositiveSmallIntegerField(
        _("层级"), help_text=_("1 = 直接推广人，最多 3 级")
    )
    trigger = models.CharField(
        _("触发条件"),
        max_length=12,
        choices=RuleTrigger.choices,
        default=RuleTrigger.SALE,
    )
    mode = models.CharField(
        _("方式"), max_length=8, choices=RuleMode.choices, default=RuleMode.PERCENT
    )
    rate_bp = models.IntegerField(_("比例（基点）"), default=0)
    fixed_amount = models.DecimalField(_("固定金额"), **MONEY, default=Decimal("0.00"))
    is_active = models.BooleanField(_("启用"), default=True)
    created_at = created_at_field()

    class Meta:
        verbose_name = _("佣金规则")
        verbose_name_plural = _("佣金规则")
        ordering = ["product_id", "grade_id", "level"]
        constraints = [
            models.UniqueConstraint(
                fields=["grade", "product", "level"],
                nulls_distinct=False,
                name="commission_rule_unique",
            ),
            models.CheckConstraint(
                condition=Q(level__gte=1) & Q(level__lte=MAX_LEVELS),
                name="commission_rule_level_1_to_3",
            ),
            models.CheckConstraint(
                condition=Q(rate_bp__gte=0) & Q(rate_bp__lte=BASIS_POINTS),
                name="commission_rule_rate_in_range",
            ),
            models.CheckConstraint(
                condition=Q(fixed_amount__gte=0),
                name="commission_rule_fixed_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(trigger=RuleTrigger.SALE), name="commission_rule_sales_only"
            ),
        ]

    def __str__(self):
        return self.describe()

    def describe(self) -> str:
        scope = str(self.product) if self.product_id else str(_("全部商品"))
        grade = str(self.grade) if self.grade_id else str(_("全部等级"))
        value = (
            f"{Decimal(self.rate_bp) / 100:.2f}%"
            if self.mode == RuleMode.PERCENT
            else f"¥{self.fixed_amount}"
        )
        return f"{scope} · {grade} · L{self.level} · {value}"


class CommissionTier(models.Model):
    """阶梯佣金: the direct seller's (level 1) rate by their own sales in the period, e.g.
    0–100,000 → 8 %, 100,000–500,000 → 10 %, 500,000+ → 15 %. A grade's tiers (or the general
    ones, grade empty) must start at 0, follow each other without gap or overlap, and end open."""

    grade = models.ForeignKey(
        "distribution.Grade",
        verbose_name=_("等级"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    lower_bound = models.DecimalField(_("销售额下限（含）"), **MONEY)
    upper_bound = models.DecimalField(
        _("销售额上限（不含）"),
        **MONEY,
        null=True,
        blank=True,
        help_text=_("留空表示不封顶"),
    )
    rate_bp = models.IntegerField(_("比例（基点）"))

    class Meta:
        verbose_name = _("阶梯佣金")
        verbose_name_plural = _("阶梯佣金")
        ordering = ["grade_id", "lower_bound"]
        constraints = [
            models.UniqueConstraint(
                fields=["grade", "lower_bound"],
                nulls_distinct=False,
                name="commission_tier_unique_start",
            ),
            models.CheckConstraint(
                condition=Q(lower_bound__gte=0),
                name="commission_tier_lower_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(upper_bound__isnull=True)
                | Q(upper_bound__gt=F("lower_bound")),
                name="commission_tier_upper_above_lower",
            ),
            models.CheckConstraint(
                condition=Q(rate_bp__gte=0) & Q(rate_bp__lte=BASIS_POINTS),
                name="commission_tier_rate_in_range",
            ),
        ]

    def __str__(self):
        upper = f"¥{self.upper_bound}" if self.upper_bound is not None else "∞"
        return f"¥{self.lower_bound}–{upper}: {Decimal(self.rate_bp) / 100:.2f}%"


class ProductBonus(models.Model):
    """An extra share for the direct seller (level 1) on a product: new or slow items."""

    product = models.OneToOneField(
        "catalog.Product",
        verbose_name=_("商品"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    bonus_bp = models.PositiveIntegerField(_("额外奖励（基点）"))
    is_active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("商品额外奖励")
        verbose_name_plural = _("商品额外奖励")
        constraints = [
            models.CheckConstraint(
                condition=Q(bonus_bp__gt=0) & Q(bonus_bp__lte=BASIS_POINTS),
                name="product_bonus_in_range",
            ),
        ]

    def __str__(self):
        return f"{self.product} +{self.bonus_bp}bp"


class Campaign(models.Model):
    """A time-limited multiplier (holiday double commission): 20000 bp = ×2."""

    name = models.CharField(_("活动名称"), max_length=60)
    product = models.ForeignKey(
        "catalog.Product",
        verbose_name=_("商品"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    multiplier_bp = models.PositiveIntegerField(
        _("倍数（基点）"), help_text=_("20000 表示双倍佣金")
    )
    starts_at = models.DateTimeField(_("开始时间"))
    ends_at = models.DateTimeField(_("结束时间"))
    is_active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("佣金活动")
        verbose_name_plural = _("佣金活动")
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")),
                name="campaign_ends_after_start",
            ),
            models.CheckConstraint(
                condition=Q(multiplier_bp__gte=BASIS_POINTS)
                & Q(multiplier_bp__lte=5 * BASIS_POINTS),
                name="campaign_multiplier_in_range",
            ),
        ]

    def __str__(self):
        return self.name


# --- commissions ------------------------------------------------------------------------------
class CommissionKind(models.TextChoices):
    LEVEL = "level", _("层级佣金")
    BONUS = "bonus", _("商品奖励")
    TEAM_BONUS = "team_bonus", _("团队业绩奖励")
    # A sub-store sale: the seller's own price minus their cost (差价), not a commission.
    PRICE_DIFFERENCE = "price_diff", _("分站差价")
    # An upline's share of a downline's stock purchase (进货), on their margin (docs/adr/0022).
    STOCK = "stock", _("进货佣金")


class CommissionStatus(models.TextChoices):
    PENDING = "pending", _("待结算")
    AVAILABLE = "available", _("已结算")
    CANCELLED = "cancelled", _("已取消")


class Commission(models.Model):
    """What one distributor earned on one order, and why: the statement line.

    A team performance bonus (``kind="team_bonus"``) belongs to no single order: it names the
    month (``period``, the 1st) whose team sales earned it, once per (leader, month)."""

    order = models.ForeignKey(
        "orders.Order",
        verbose_name=_("订单"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="commissions",
        db_index=False,  # commission_once_per_order_beneficiary_kind starts with it
    )
    beneficiary = models.ForeignKey(
        "distribution.Distributor",
        verbose_name=_("受益人"),
        on_delete=models.PROTECT,
        related_name="commissions",
    )
    kind = models.CharField(
        _("类型"),
        max_length=12,
        choices=CommissionKind.choices,
        default=CommissionKind.LEVEL,
    )
    period = models.DateField(
        _("奖励月份"), null=True, blank=True, help_text=_("团队业绩奖励所属月份（1 日）")
    )
    stock_purchase = models.ForeignKey(
        "orders.StockPurchase",
        verbose_name=_("进货单"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="commissions",
    )
    level = models.PositiveSmallIntegerField(_("层级"))
    rule = models.ForeignKey(
        CommissionRule,
        verbose_name=_("规则"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    rule_description = models.CharField(_("规则说明"), max_length=200)
    rate_bp = models.PositiveIntegerField(_("比例（基点）"), default=0)
    base_amount = models.DecimalField(_("佣金基数"), **MONEY)
    amount = models.DecimalField(_("佣金"), **MONEY)
    reversed_amount = models.DecimalField(_("已冲回"), **MONEY, default=Decimal("0.00"))
    status = models.CharField(
        _("状态"),
        max_length=10,
        choices=CommissionStatus.choices,
        default=CommissionStatus.PENDING,
    )
    available_at = models.DateTimeField(_("可结算时间"))  # indexed with status (commission_settle_idx)
    settled_at = models.DateTimeField(_("结算时间"), null=True, blank=True)
    settlement_run = models.ForeignKey(
        "SettlementRun",
        verbose_name=_("结算批次"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="commissions",
    )
    created_at = created_at_field(_("计提时间"), db_index=True)

    class Meta:
        verbose_name = _("佣金")
        verbose_name_plural = _("佣金")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "beneficiary", "kind"],
                name="commission_once_per_order_beneficiary_kind",
            ),
            models.UniqueConstraint(
                fields=["beneficiary", "period"],
                condition=Q(kind=CommissionKind.TEAM_BONUS),
                name="commission_team_bonus_once_per_month",
            ),
            models.UniqueConstraint(
                fields=["stock_purchase", "beneficiary"],
                condition=Q(kind=CommissionKind.STOCK),
                name="commission_once_per_stock_purchase_beneficiary",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind=CommissionKind.TEAM_BONUS)
                    & Q(order__isnull=True)
                    & Q(period__isnull=False)
                    & Q(stock_purchase__isnull=True)
                )
                | (
                    Q(kind=CommissionKind.STOCK)
                    & Q(order__isnull=True)
                    & Q(period__isnull=True)
                    & Q(stock_purchase__isnull=False)
                )
                | (
                    ~Q(kind__in=[CommissionKind.TEAM_BONUS, CommissionKind.STOCK])
                    & Q(order__isnull=False)
                    & Q(stock_purchase__isnull=True)
                ),
                name="commission_order_team_month_or_stock",
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="commission_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(reversed_amount__gte=0)
                & Q(reversed_amount__lte=F("amount")),
                name="commission_reversal_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(level__gte=1) & Q(level__lte=MAX_LEVELS),
                name="commission_level_1_to_3",
            ),
            status_check("status", CommissionStatus, name="commission_status_known"),
            status_check("kind", CommissionKind, name="commission_kind_known"),
        ]
        indexes = [
            models.Index(
                fields=["status", "available_at"], name="commission_settle_idx"
            )
        ]

    def __str__(self):
        return f"{self.order_id} L{self.level} → {self.beneficiary_id} ¥{self.amount}"

    @property
    def outstanding(self) -> Decimal:
        return self.amount - self.reversed_amount


class TeamBonusRule(models.Model):
    """团队业绩奖励: when a distributor's team (their subtree, themselves included) sells at least
    ``threshold`` in a month — paid minus refunds, from orders attributed to the team — the
    leader earns a fixed amount or a share of that month's team sales. With several thresholds
    the highest one reached applies (one bonus per leader and month)."""

    threshold = models.DecimalField(_("月团队销售额门槛"), **MONEY, unique=True)
    mode = models.CharField(
        _("方式"), max_length=8, choices=RuleMode.choices, default=RuleMode.FIXED
    )
    fixed_amount = models.DecimalField(_("固定奖励"), **MONEY, default=Decimal("0.00"))
    rate_bp = models.PositiveIntegerField(
        _("奖励比例（基点）"), default=0, help_text=_("按当月团队销售额计，100 = 1%")
    )
    is_active = models.BooleanField(_("启用"), default=True)
    created_at = created_at_field()

    class Meta:
        verbose_name = _("团队业绩奖励")
        verbose_name_plural = _("团队业绩奖励")
        ordering = ["threshold"]
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold__gt=0), name="team_bonus_threshold_positive"
            ),
            models.CheckConstraint(
                condition=Q(rate_bp__lte=BASIS_POINTS) & Q(fixed_amount__gte=0),
                name="team_bonus_values_in_range",
            ),
        ]

    def __str__(self):
        return f"≥ ¥{self.threshold}: {self.describe_reward()}"

    def describe_reward(self) -> str:
        if self.mode == RuleMode.PERCENT:
            return f"{Decimal(self.rate_bp) / 100:.2f}%"
        return f"¥{self.fixed_amount}"


class CapEvent(models.Model):
    """An order whose rules would have paid more than the merchant's caps: what was computed,
    what was paid, which cap applied. Never silent."""

    order = models.OneToOneField(
        "orders.Order",
        verbose_name=_("订单"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    computed_amount = models.DecimalField(_("按规则应付"), **MONEY)
    capped_amount = models.DecimalField(_("实际支付上限"), **MONEY)
    reason = models.CharField(_("原因"), max_length=200)
    created_at = created_at_field(_("时间"))

    class Meta:
        verbose_name = _("佣金封顶记录")
        verbose_name_plural = _("佣金封顶记录")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.order_id}: {self.computed_amount} → {self.capped_amount}"


class SettlementRun(models.Model):
    """One settlement cycle; ``key`` (cycle + period) makes a second run of the same cycle
    find the first."""

    key = models.CharField(_("批次键"), max_length=40, unique=True)
    cycle = models.CharField(_("周期"), max_length=8, choices=SettlementCycle.choices)
    cutoff = models.DateTimeField(_("截止时间"))
    commission_count = models.PositiveIntegerField(_("结算笔数"), default=0)
    total_amount = models.DecimalField(_("结算金额"), **MONEY, default=Decimal("0.00"))
    started_at = models.DateTimeField(_("开始时间"), auto_now_add=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("结算批次")
        verbose_name_plural = _("结算批次")
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return self.key


class WalletHold(models.Model):
    """A risk hold: the distributor's pending and available moved to frozen until released."""

    distributor = models.ForeignKey(
        "distribution.Distributor",
        verbose_name=_("分销商"),
        on_delete=models.PROTECT,
        related_name="wallet_holds",
    )
    reason = models.CharField(_("原因"), max_length=200)
    frozen_pending = models.DecimalField(
        _("冻结的待结算"), **MONEY, default=Decimal("0.00")
    )
    frozen_available = models.DecimalField(
        _("冻结的可提现"), **MONEY, default=Decimal("0.00")
    )
    is_active = models.BooleanField(_("生效中"), default=True)
    created_by = actor_field(_("操作人"))
    created_at = created_at_field(_("冻结时间"))
    released_at = models.DateTimeField(_("解冻时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("风控冻结")
        verbose_name_plural = _("风控冻结")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["distributor"],
                condition=Q(is_active=True),
                name="wallet_hold_one_active",
            ),
        ]

    def __str__(self):
        return f"{self.distributor_id}: {self.reason}"


# --- withdrawals ------------------------------------------------------------------------------
class PayoutMethod(models.TextChoices):
    ALIPAY = "alipay", _("支付宝")
    WECHAT = "wechat", _("微信")
    BANK_CARD = "bank_card", _("银行卡")


class PayoutAccount(models.Model):
    """Where a distributor's money goes. The account number is encrypted; only the mask shows."""

    distributor = models.ForeignKey(
        "distribution.Distributor",
        verbose_name=_("分销商"),
        on_delete=models.PROTECT,
        related_name="payout_accounts",
    )
    method = models.CharField(_("方式"), max_length=10, choices=PayoutMethod.choices)
    holder_name = models.CharField(_("户名"), max_length=40)
    bank_name = models.CharField(_("开户行"), max_length=60, blank=True)
    account_ciphertext = models.BinaryField(_("加密账号"), editable=False)
    account_key_id = models.CharField(max_length=32, editable=False)
    account_mask = models.CharField(_("账号"), max_length=40)
    is_active = models.BooleanField(_("启用"), default=True)
    created_at = created_at_field()

    class Meta:
        verbose_name = _("收款账户")
        verbose_name_plural = _("收款账户")
        ordering = ["-created_at", "-id"]
        constraints = [
            status_check("method", PayoutMethod, name="payout_account_method_known")
        ]

    def __str__(self):
        return f"{self.get_method_display()} {self.account_mask}"


class WithdrawalStatus(models.TextChoices):
    REQUESTED = "requested", _("待审核")
    APPROVED = "approved", _("已审核，待打款")
    PAYING = "paying", _("打款中")
    PAID = "paid", _("已到账")
    REJECTED = "rejected", _("已驳回")
    FAILED = "failed", _("打款失败")


class Withdrawal(models.Model):
    distributor = models.ForeignKey(
        "distribution.Distributor",
        verbose_name=_("分销商"),
        on_delete=models.PROTECT,
        related_name="withdrawals",
    )
    payout_account = models.ForeignKey(
        PayoutAccount,
        verbose_name=_("收款账户"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    request_token = models.CharField(_("提交令牌"), max_length=64, unique=True)
    payout_no = models.CharField(_("打款单号"), max_length=40, unique=True)
    amount = models.DecimalField(_("提现金额"), **MONEY)
    fee = models.DecimalField(_("手续费"), **MONEY, default=Decimal("0.00"))
    tax = models.DecimalField(_("代扣个税"), **MONEY, default=Decimal("0.00"))
    # When this withdrawal is rejected or its payout fails, the month's tax is recomputed on
    # what is left: the difference, negative when returned to the distributor (ledger
    # ``tax-adjustment:<id>``).
    tax_adjustment = models.DecimalField(_("个税调整"), **MONEY, default=Decimal("0.00"))
    net_amount = models.DecimalField(_("实际到账"), **MONEY)
    status = models.CharField(
        _("状态"),
        max_length=10,
        choices=WithdrawalStatus.choices,
        default=WithdrawalStatus.REQUESTED,
    )
    reject_reason = models.CharField(_("驳回原因"), max_length=200, blank=True)
    failure_reason = models.CharField(_("失败原因"), max_length=200, blank=True)
    gateway_payout_no = models.CharField(_("渠道单号"), max_length=64, blank=True)
    reviewed_by = actor_field(_("审核人"))
    created_at = created_at_field(_("申请时间"), db_index=True)
    reviewed_at = models.DateTimeField(_("审核时间"), null=True, blank=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    # The automatic review's verdict (ADR 0021): "" not reviewed automatically, "approved",
    # or the code of the rule that sent it to manual review.
    auto_decision = models.CharField(_("自动审核结果"), max_length=32, blank=True)
    # When a payout whose result is unknown (paying) was last asked about at the provider.
    payout_checked_at = models.DateTimeField(_("最近查询打款结果"), null=True, blank=True)

    class Meta:
        verbose_name = _("提现")
        verbose_name_plural = _("提现")
        ordering = ["-created_at", "-id"]
        permissions = [
            ("review_withdrawal", _("可以审核提现")),
            ("freeze_commissions", _("可以冻结佣金")),
            ("export_withholding", _("可以导出个税扣缴明细（含证件号）")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="withdrawal_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(fee__gte=0) & Q(tax__gte=0),
                name="withdrawal_deductions_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(net_amount__gt=0), name="withdrawal_net_positive"
            ),
            models.CheckConstraint(
                condition=Q(net_amount=F("amount") - F("fee") - F("tax")),
                name="withdrawal_net_is_amount_less_deductions",
            ),
            status_check("status", WithdrawalStatus, name="withdrawal_status_known"),
        ]

    def __str__(self):
        return f"{self.payout_no} ¥{self.amount}"


class WithdrawalStatusChange(models.Model):
    withdrawal = models.ForeignKey(
        Withdrawal, on_delete=models.CASCADE, related_name="status_changes"
    )
    old_status = models.CharField(max_length=10, choices=WithdrawalStatus.choices)
    new_status = models.CharField(max_length=10, choices=WithdrawalStatus.choices)
    cause = models.CharField(max_length=200)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("提现状态变更")
        verbose_name_plural = _("提现状态变更")
        ordering = ["created_at", "id"]


class AutoApprovalPolicy(models.Model):
    """Finance's rules for approving and paying a withdrawal without a click: one row (pk 1).

    A withdrawal is approved automatically only when the policy is on and every rule holds;
    otherwise it waits for review. The decision and the rule behind it go to the audit log.
    """

    is_enabled = models.BooleanField(_("启用自动审核"), default=False)
    max_amount = models.DecimalField(
        _("单笔金额上限"), **MONEY, default=Decimal("0.00"), help_text=_("提现金额不超过此数才自动通过")
    )
    min_verified_days = models.PositiveSmallIntegerField(
        _("实名认证满天数"), default=30, help_text=_("完成实名认证超过此天数才自动通过")
    )
    require_no_open_risk_case = models.BooleanField(_("无未结风控审核"), default=True)
    require_no_negative_balance = models.BooleanField(_("无负余额"), default=True)
    daily_total_max = models.DecimalField(
        _("每日自动通过总额上限"),
        **MONEY,
        default=Decimal("0.00"),
        help_text=_("当天所有自动通过的提现合计不超过此数"),
    )
    updated_at = updated_at_field()

    class Meta:
        verbose_name = _("提现自动审核规则")
        verbose_name_plural = _("提现自动审核规则")
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="auto_approval_policy_singleton"),
            models.CheckConstraint(
                condition=Q(max_amount__gte=0) & Q(daily_total_max__gte=0),
                name="auto_approval_amounts_not_negative",
            ),
        ]

    def __str__(self):
        return str(_("提现自动审核规则"))


class DepositRefundStatus(models.TextChoices):
    REQUESTED = "requested", _("待审核")
    APPROVED = "approved", _("已退还")
    REJECTED = "rejected", _("已驳回")


class DepositRefund(models.Model):
    """A distributor leaving the network asks for their deposit (保证金) back; finance decides.

    On approval the deposit first covers a clawback debt when the merchant's rule says so
    (``offset_amount``), and the rest (``refund_amount``) is paid out through a withdrawal of
    its own (``withdrawal``: the payout adapters' path, no tax or fee: it is the distributor's
    own money, not income). Docs: docs/adr/0023.
    """

    distributor = models.ForeignKey(
        "distribution.Distributor",
        verbose_name=_("分销商"),
        on_delete=models.PROTECT,
        related_name="deposit_refunds",
    )
    payout_account = models.ForeignKey(
        PayoutAccount, verbose_name=_("收款账户"), on_delete=models.PROTECT, related_name="+"
    )
    request_token = models.CharField(_("提交令牌"), max_length=64, unique=True)
    amount = models.DecimalField(_("保证金金额"), **MONEY)
    offset_amount = models.DecimalField(_("抵扣欠款"), **MONEY, default=Decimal("0.00"))
    refund_amount = models.DecimalField(_("退还金额"), **MONEY, default=Decimal("0.00"))
    status = models.CharField(
        _("状态"),
        max_length=10,
        choices=DepositRefundStatus.choices,
        default=DepositRefundStatus.REQUESTED,
    )
    reason = models.CharField(_("说明"), max_length=200, blank=True)
    withdrawal = models.OneToOneField(
        Withdrawal,
        verbose_name=_("退款打款单"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deposit_refund",
    )
    reviewed_by = actor_field(_("审核人"))
    created_at = created_at_field(_("申请时间"))
    reviewed_at = models.DateTimeField(_("审核时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("保证金退还")
        verbose_name_plural = _("保证金退还")
        ordering = ["-created_at", "-id"]
        permissions = [("review_deposit_refund", _("可以审核保证金退还"))]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="deposit_refund_amount_positive"),
            models.CheckConstraint(
                condition=Q(offset_amount__gte=0) & Q(refund_amount__gte=0),
                name="deposit_refund_parts_not_negative",
            ),
            status_check("status", DepositRefundStatus, name="deposit_refund_status_known"),
            models.CheckConstraint(
                condition=~Q(status=DepositRefundStatus.APPROVED)
                | Q(amount=F("offset_amount") + F("refund_amount")),
                name="deposit_refund_parts_sum",
            ),
            # One open request per distributor (the deposit account's balance, locked at the
            # approval, makes sure a deposit is given back once).
            models.UniqueConstraint(
                fields=["distributor"],
                condition=Q(status="requested"),
                name="deposit_refund_one_open",
            ),
        ]

    def __str__(self):
        return f"{self.distributor_id} ¥{self.amount} {self.get_status_display()}"
