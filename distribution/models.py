"""The distribution network: the distributor tree, grades and their prices, invitations,
sub-stores, referral links, promotion copy and the compliance word list.

The tree (docs/adr/0007): ``Distributor.parent`` is the source of truth; django-mptt's
``tree_id``/``lft``/``rght``/``level`` are a derived index, written only by
``distribution.services.tree`` under one transaction-scoped advisory lock and repaired with
``Distributor.objects.rebuild()``. Status changes go through ``transition_distributor`` only.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from mptt.models import MPTTModel, TreeForeignKey

from kamen.models import actor_field, created_at_field, status_check, updated_at_field
from kamen.money import MONEY  # noqa: E402  (one definition for every money column)

BASIS_POINTS = 10_000  # 10000 bp = 100 %
MAX_COMMISSION_DEPTH = (
    3  # the legal limit: commissions never reach more than 3 levels up
)


class AdmissionMode(models.TextChoices):
    AUTOMATIC = "automatic", _("自动通过")
    STAFF = "staff", _("人工审核")


class Grade(models.Model):
    """A distributor grade (等级): the price they buy at, what they may do, how one is admitted.

    A deposit (保证金) is refundable security held for the merchant: it is never the price of a
    grade and never a reward to anyone above (an entry fee is what anti-pyramid rules forbid), so
    nothing in the commission path reads it.
    """

    name = models.CharField(_("等级名称"), max_length=32, unique=True)
    rank = models.PositiveSmallIntegerField(
        _("级别"), unique=True, help_text=_("数字越大级别越高")
    )
    wholesale_discount_bp = models.PositiveIntegerField(
        _("拿货折扣（基点）"),
        default=BASIS_POINTS,
        help_text=_("按零售价的万分比，如 8000 表示八折"),
    )
    commission_level1_bp = models.PositiveIntegerField(_("一级佣金（基点）"), default=0)
    commission_level2_bp = models.PositiveIntegerField(_("二级佣金（基点）"), default=0)
    commission_level3_bp = models.PositiveIntegerField(_("三级佣金（基点）"), default=0)
    may_recruit = models.BooleanField(_("可发展下级"), default=True)
    may_see_floor_price = models.BooleanField(_("可查看底价"), default=False)
    may_open_sub_store = models.BooleanField(_("可开分站"), default=False)
    may_buy_stock = models.BooleanField(
        _("可进货"), default=False, help_text=_("可用余额按等级价批量购买卡密（进货）")
    )
    stock_tiers_count_month = models.BooleanField(
        _("阶梯价按当月累计进货量"),
        default=False,
        help_text=_("开启后，进货的阶梯价按本月此前已进货数量加本次数量计算"),
    )
    withdrawal_min_amount = models.DecimalField(
        _("单笔最低提现"), **MONEY, default=Decimal("10.00")
    )
    withdrawal_daily_max_amount = models.DecimalField(
        _("每日最高提现"), **MONEY, default=Decimal("5000.00")
    )
    admission_mode = models.CharField(
        _("加入方式"),
        max_length=12,
        choices=AdmissionMode.choices,
        default=AdmissionMode.STAFF,
    )
    deposit_amount = models.DecimalField(
        _("保证金（可退）"),
        **MONEY,
        default=Decimal("0.00"),
        help_text=_("可退还的保证金，不是等级的价格，也不分给任何上级"),
    )
    first_order_amount = models.DecimalField(
        _("首单金额要求"),
        **MONEY,
        default=Decimal("0.00"),
        help_text=_("申请人自己的已支付订单（扣除退款）累计达到此金额才能通过"),
    )
    is_default = models.BooleanField(_("默认加入等级"), default=False)
    created_at = created_at_field()

    class Meta:
        verbose_name = _("分销等级")
        verbose_name_plural = _("分销等级")
        ordering = ["-rank"]
        constraints = [
            models.CheckConstraint(
                condition=Q(wholesale_discount_bp__gt=0)
                & Q(wholesale_discount_bp__lte=BASIS_POINTS),
                name="grade_discount_in_range",
            ),
            models.CheckConstraint(
                condition=Q(commission_level1_bp__lte=BASIS_POINTS)
                & Q(commission_level2_bp__lte=BASIS_POINTS)
                & Q(commission_level3_bp__lte=BASIS_POINTS),
                name="grade_commission_in_range",
            ),
            status_check("admission_mode", AdmissionMode, name="grade_admission_known"),
            models.CheckConstraint(
                condition=Q(deposit_amount__gte=0), name="grade_deposit_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(first_order_amount__gte=0),
                name="grade_first_order_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(withdrawal_min_amount__gte=0),
                name="grade_withdrawal_min_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(
                    withdrawal_daily_max_amount__gte=F("withdrawal_min_amount")
                ),
                name="grade_withdrawal_max_not_below_min",
            ),
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True),
                name="grade_one_default",
            ),
        ]

    def __str__(self):
        return self.name



class GradeProductPrice(models.Model):
    """A per-product override of a grade's wholesale discount: a fixed unit cost."""

    grade = models.ForeignKey(
        Grade,
        verbose_name=_("等级"),
        on_delete=models.CASCADE,
        related_name="product_prices",
    )
    product = models.ForeignKey(
        "catalog.Product",
        verbose_name=_("商品"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    unit_cost = models.DecimalField(_("拿货单价"), **MONEY)

    class Meta:
        verbose_name = _("等级商品价")
        verbose_name_plural = _("等级商品价")
        constraints = [
            models.UniqueConstraint(
                fields=["grade", "product"], name="grade_product_price_unique"
            ),
            models.CheckConstraint(
                condition=Q(unit_cost__gt=0), name="grade_product_price_positive"
            ),
        ]

    def __str__(self):
        return f"{self.grade} · {self.product_id} · ¥{self.unit_cost}"


class GradeVolumeTier(models.Model):
    """More bought, lower unit cost: from ``min_quantity`` on, the unit cost is multiplied by
    ``rate_bp`` (e.g. 9500 = a further 5 % off). ``product`` empty: every product."""

    grade = models.ForeignKey(
        Grade,
        verbose_name=_("等级"),
        on_delete=models.CASCADE,
        related_name="volume_tiers",
    )
    product = models.ForeignKey(
        "catalog.Product",
        verbose_name=_("商品"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    min_quantity = models.PositiveIntegerField(_("起购数量"))
    rate_bp = models.PositiveIntegerField(_("阶梯价比例（基点）"))

    class Meta:
        verbose_name = _("阶梯价")
        verbose_name_plural = _("阶梯价")
        ordering = ["grade", "product", "min_quantity"]
        constraints = [
            models.UniqueConstraint(
                fields=["grade", "product", "min_quantity"],
                nulls_distinct=False,
                name="grade_volume_tier_unique",
            ),
            models.CheckConstraint(
                condition=Q(min_quantity__gte=2), name="grade_volume_tier_min_quantity"
            ),
            models.CheckConstraint(
                condition=Q(rate_bp__gt=0) & Q(rate_bp__lte=BASIS_POINTS),
                name="grade_volume_tier_rate_in_range",
            ),
        ]

    def __str__(self):
        return f"{self.grade} ≥{self.min_quantity}: {self.rate_bp}bp"


class DistributorStatus(models.TextChoices):
    APPLIED = "applied", _("待审核")
    ACTIVE = "active", _("正常")
    FROZEN = "frozen", _("已冻结")
    CLEARED = "cleared", _("已清退")
    REJECTED = "rejected", _("已拒绝")


class DepositStatus(models.TextChoices):
    NONE = "none", _("无需保证金")
    PENDING = "pending", _("待缴纳")
    HELD = "held", _("已缴纳（可退）")
    REFUNDED = "refunded", _("已退还")


class Distributor(MPTTModel):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("用户"),
        on_delete=models.PROTECT,
        related_name="distributor",
    )
    parent = TreeForeignKey(
        "self",
        verbose_name=_("上级"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
    )
    grade = models.ForeignKey(
        Grade,
        verbose_name=_("等级"),
        on_delete=models.PROTECT,
        related_name="distributors",
    )
    invite_code = models.CharField(_("邀请码"), max_length=16, unique=True)
    status = models.CharField(
        _("状态"),
        max_length=12,
        choices=DistributorStatus.choices,
        default=DistributorStatus.APPLIED,
    )
    region = models.CharField(_("地区"), max_length=64, blank=True)
    tags = models.JSONField(_("标签"), default=list, blank=True)
    deposit_status = models.CharField(
        _("保证金状态"),
        max_length=12,
        choices=DepositStatus.choices,
        default=DepositStatus.NONE,
    )
    deposit_amount = models.DecimalField(
        _("保证金金额"), **MONEY, default=Decimal("0.00")
    )
    # When the distributor's own paid orders (less refunds) first reached the grade's
    # first-order amount: set by the payment pipeline, never by hand (docs/adr/0023).
    first_order_reached_at = models.DateTimeField(_("首单达标时间"), null=True, blank=True)
    applied_at = models.DateTimeField(_("申请时间"), auto_now_add=True)
    joined_at = models.DateTimeField(
        _("加入时间"), null=True, blank=True, db_index=True
    )
    inactivity_warned_at = models.DateTimeField(
        _("无销售预警时间"), null=True, blank=True
    )
    updated_at = updated_at_field()

    class MPTTMeta:
        order_insertion_by = []

    class Meta:
        verbose_name = _("分销商")
        verbose_name_plural = _("分销商")
        permissions = [
            ("move_distributor", _("可以移动分销商（含下级）")),
            ("approve_distributor", _("可以审核分销商")),
            ("freeze_distributor", _("可以冻结或清退分销商")),
        ]
        constraints = [
            status_check("status", DistributorStatus, name="distributor_status_known"),
            models.CheckConstraint(
                condition=~Q(parent=F("id")), name="distributor_not_own_parent"
            ),
            models.CheckConstraint(
                condition=Q(deposit_amount__gte=0),
                name="distributor_deposit_not_negative",
            ),
            status_check("deposit_status", DepositStatus, name="distributor_deposit_status_known"),
        ]
        indexes = [
            models.Index(
                fields=["status", "applied_at"], name="distributor_status_idx"
            ),
        ]

    def __str__(self):
        return f"{self.user} ({self.invite_code})"

    @property
    def display_name(self) -> str:
        return str(self.user)


class DistributorStatusChange(models.Model):
    """Every status change of a distributor with its cause and actor: history, never edited."""

    distributor = models.ForeignKey(
        Distributor,
        verbose_name=_("分销商"),
        on_delete=models.CASCADE,
        related_name="status_changes",
    )
    old_status = models.CharField(
        _("原状态"), max_length=12, choices=DistributorStatus.choices
    )
    new_status = models.CharField(
        _("新状态"), max_length=12, choices=DistributorStatus.choices
    )
    cause = models.CharField(_("原因"), max_length=200)
    actor = actor_field(_("操作人"))
    created_at = created_at_field(_("时间"))

    class Meta:
        verbose_name = _("分销商状态变更")
        verbose_name_plural = _("分销商状态变更")
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.distributor_id}: {self.old_status} → {self.new_status}"


class Invitation(models.Model):
    """An invite link: who invites, into which grade, how often, until when. The inviter
    becomes the parent of whoever joins through it."""

    code = models.CharField(_("邀请码"), max_length=24, unique=True)
    inviter = models.ForeignKey(
        Distributor,
        verbose_name=_("邀请人"),
        on_delete=models.CASCADE,
        related_name="invitations",
    )
    grade = models.ForeignKey(
        Grade,
        verbose_name=_("加入等级"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text=_("留空表示默认等级"),
    )
    max_uses = models.PositiveIntegerField(_("最多使用次数"), null=True, blank=True)
    uses = models.PositiveIntegerField(_("已使用次数"), default=0)
    expires_at = models.DateTimeField(_("过期时间"), null=True, blank=True)
    is_active = models.BooleanField(_("有效"), default=True)
    created_at = created_at_field()

    class Meta:
        verbose_name = _("邀请链接")
        verbose_name_plural = _("邀请链接")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_uses__isnull=True) | Q(uses__lte=F("max_uses")),
                name="invitation_uses_within_max",
            ),
        ]

    def __str__(self):
        return self.code


class DistributionSettings(models.Model):
    """The merchant's network settings: one row (pk 1)."""

    commission_depth = models.PositiveSmallIntegerField(
        _("佣金层级"),
        default=MAX_COMMISSION_DEPTH,
        help_text=_("佣金最多向上分配的层级，1–3，法律上限为 3"),
    )
    inactivity_days = models.PositiveIntegerField(_("无销售清退天数"), default=90)
    inactivity_grace_days = models.PositiveIntegerField(_("预警后宽限天数"), default=7)
    # Off by default: a staff account that joins the network could review its own money.
    # When on, the four-eyes rule (kamen.four_eyes) still keeps them from doing so.
    staff_may_join = models.BooleanField(
        _("允许员工账号加入分销网络"),
        default=False,
        help_text=_("开启后员工也可通过邀请链接加入，但永远不能审核与自己有关的提现、佣金、风控和订单"),
    )
    updated_at = updated_at_field()

    class Meta:
        verbose_name = _("分销设置")
        verbose_name_plural = _("分销设置")
        constraints = [
            models.CheckConstraint(
                condition=Q(pk=1), name="distribution_settings_singleton"
            ),
            models.CheckConstraint(
                condition=Q(commission_depth__gte=1)
                & Q(commission_depth__lte=MAX_COMMISSION_DEPTH),
                name="distribution_commission_depth_1_to_3",
            ),
        ]

    def __str__(self):
        return str(_("分销设置"))


class SubStore(models.Model):
    """A distributor's sub-store (分站): the merchant's catalog at their prices, under their name."""

    distributor = models.OneToOneField(
        Distributor,
        verbose_name=_("分销商"),
        on_delete=models.CASCADE,
        related_name="sub_store",
    )
    name = models.CharField(_("分站名称"), max_length=40)
    notice = models.CharField(_("公告"), max_length=300, blank=True)
    slug = models.SlugField(_("分站地址"), max_length=32, unique=True)
    is_open = models.BooleanField(_("营业中"), default=True)
    created_at = created_at_field()
    updated_at = updated_at_field()

    class Meta:
        verbose_name = _("分站")
        verbose_name_plural = _("分站")

    def __str__(self):
        return self.name


class SubStorePrice(models.Model):
    """A sub-store's price for one product, with the bounds in force when it was set (the
    distributor's cost and the merchant's maximum), so the database itself refuses a price
    outside them. Checkout re-checks against today's bounds."""

    sub_store = models.ForeignKey(
        SubStore,
        verbose_name=_("分站"),
        on_delete=models.CASCADE,
        related_name="prices",
    )
    product = models.ForeignKey(
        "catalog.Product",
        verbose_name=_("商品"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    price = models.DecimalField(_("售价"), **MONEY)
    floor_price = models.DecimalField(_("设置时成本"), **MONEY)
    ceiling_price = models.DecimalField(_("设置时最高价"), **MONEY)
    updated_at = updated_at_field()

    class Meta:
        verbose_name = _("分站售价")
        verbose_name_plural = _("分站售价")
        constraints = [
            models.UniqueConstraint(
                fields=["sub_store", "product"], name="sub_store_price_unique"
            ),
            models.CheckConstraint(
                condition=Q(price__gte=F("floor_price"))
                & Q(price__lte=F("ceiling_price"))
                & Q(price__gt=0),
                name="sub_store_price_within_bounds",
            ),
        ]

    def __str__(self):
        return f"{self.sub_store} · {self.product_id} · ¥{self.price}"


class Channel(models.TextChoices):
    WECHAT = "wechat", _("微信")
    DOUYIN = "douyin", _("抖音")
    XIAOHONGSHU = "xiaohongshu", _("小红书")
    OTHER = "other", _("其他")


class ReferralLink(models.Model):
    """A distributor's tracked link for one channel; clicks and orders are counted on the row
    with F() increments (the paid figures come from the orders themselves)."""

    distributor = models.ForeignKey(
        Distributor,
        verbose_name=_("分销商"),
        on_delete=models.CASCADE,
        related_name="referral_links",
    )
    code = models.CharField(_("推广码"), max_length=24, unique=True)
    channel = models.CharField(
        _("渠道"), max_length=16, choices=Channel.choices, default=Channel.OTHER
    )
    label = models.CharField(_("备注"), max_length=40, blank=True)
    sub_store = models.ForeignKey(
        SubStore,
        verbose_name=_("分站"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="links",
    )
    clicks = models.PositiveIntegerField(_("点击数"), default=0)
    orders = models.PositiveIntegerField(_("下单数"), default=0)
    is_active = models.BooleanField(_("有效"), default=True)
    created_at = created_at_field()

    class Meta:
        verbose_name = _("推广链接")
        verbose_name_plural = _("推广链接")
        ordering = ["-created_at", "-id"]
        constraints = [
            status_check("channel", Channel, name="referral_link_channel_known"),
            models.UniqueConstraint(
                fields=["distributor", "channel"],
                condition=Q(sub_store__isnull=True),
                name="referral_link_one_per_channel",
            ),
            models.UniqueConstraint(
                fields=["sub_store"],
                condition=Q(sub_store__isnull=False),
                name="referral_link_one_per_sub_store",
            ),
        ]

    def __str__(self):
        return self.code


class CopyTemplate(models.Model):
    """Promotion copy (推广文案) per channel, written by the merchant; ``{link}``, ``{product}``
    and ``{price}`` are filled in for the distributor."""

    channel = models.CharField(_("渠道"), max_length=16, choices=Channel.choices)
    title = models.CharField(_("标题"), max_length=60)
    body = models.TextField(
        _("文案"), help_text=_("可用占位符：{link} {product} {price}")
    )
    is_active = models.BooleanField(_("启用"), default=True)
    sort_order = models.PositiveIntegerField(_("排序"), default=0)

    class Meta:
        verbose_name = _("推广文案模板")
        verbose_name_plural = _("推广文案模板")
        ordering = ["channel", "sort_order", "id"]
        constraints = [
            status_check("channel", Channel, name="copy_template_channel_known")
        ]

    def __str__(self):
        return self.title


class BannedWord(models.Model):
    """合规话术库: claims copy may not make (the Advertising Law's absolute terms and the
    merchant's own additions)."""

    word = models.CharField(_("禁用词"), max_length=40, unique=True)
    note = models.CharField(_("说明"), max_length=100, blank=True)
    is_active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("禁用词")
        verbose_name_plural = _("合规话术库")
        ordering = ["word"]

    def __str__(self):
        return self.word


class CustomCopy(models.Model):
    """Copy a distributor wrote; published only when it passed the compliance filter."""

    distributor = models.ForeignKey(
        Distributor,
        verbose_name=_("分销商"),
        on_delete=models.CASCADE,
        related_name="copies",
    )
    channel = models.CharField(_("渠道"), max_length=16, choices=Channel.choices)
    body = models.TextField(_("文案"))
    is_published = models.BooleanField(_("已发布"), default=False)
    offending_words = models.JSONField(_("违规词"), default=list, blank=True)
    created_at = created_at_field()

    class Meta:
        verbose_name = _("自定义文案")
        verbose_name_plural = _("自定义文案")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(is_published=False) | Q(offending_words=[]),
                name="custom_copy_published_is_clean",
            ),
        ]

    def __str__(self):
        return self.body[:30]


class DistributorApplication(Distributor):
    """The approval queue in the merchant console: applicants, oldest first."""

    class Meta:
        proxy = True
        verbose_name = _("加入申请")
        verbose_name_plural = _("加入申请（待审核）")


class PromotionRule(models.Model):
    """Automatic promotion (自动升级): a distributor of ``from_grade`` who, over the last
    ``period_days``, reaches every threshold set here moves to ``to_grade`` and is told."""

    from_grade = models.ForeignKey(
        Grade,
        verbose_name=_("原等级"),
        on_delete=models.CASCADE,
        related_name="promotion_rules",
    )
    to_grade = models.ForeignKey(
        Grade, verbose_name=_("升级到"), on_delete=models.CASCADE, related_name="+"
    )
    period_days = models.PositiveIntegerField(_("统计天数"), default=30)
    min_own_sales = models.DecimalField(
        _("个人销售额不低于"), **MONEY, default=Decimal("0.00")
    )
    min_team_sales = models.DecimalField(
        _("团队销售额不低于"), **MONEY, default=Decimal("0.00")
    )
    min_direct_recruits = models.PositiveIntegerField(
        _("新增直属下级不少于"), default=0
    )
    is_active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("自动升级规则")
        verbose_name_plural = _("自动升级规则")
        constraints = [
            models.CheckConstraint(
                condition=~Q(from_grade=F("to_grade")),
                name="promotion_rule_changes_grade",
            ),
            models.CheckConstraint(
                condition=Q(period_days__gte=1), name="promotion_rule_period_positive"
            ),
            models.UniqueConstraint(
                fields=["from_grade"],
                condition=Q(is_active=True),
                name="promotion_rule_one_active_per_grade",
            ),
        ]

    def __str__(self):
        return f"{self.from_grade} → {self.to_grade}"


class DistributorNotice(models.Model):
    """A message to a distributor shown in the portal (promotion, inactivity warning ...)."""

    distributor = models.ForeignKey(
        Distributor,
        verbose_name=_("分销商"),
        on_delete=models.CASCADE,
        related_name="notices",
    )
    message = models.CharField(_("内容"), max_length=300)
    created_at = created_at_field(_("时间"))

    class Meta:
        verbose_name = _("分销商通知")
        verbose_name_plural = _("分销商通知")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.message[:40]


class AppealStatus(models.TextChoices):
    PENDING = "pending", _("待处理")
    ACCEPTED = "accepted", _("已通过")
    REJECTED = "rejected", _("已驳回")


class Appeal(models.Model):
    """A frozen distributor's appeal (申诉) against a freeze; the merchant decides."""

    distributor = models.ForeignKey(
        Distributor,
        verbose_name=_("分销商"),
        on_delete=models.CASCADE,
        related_name="appeals",
    )
    reason = models.CharField(_("申诉理由"), max_length=500)
    status = models.CharField(
        _("状态"),
        max_length=10,
        choices=AppealStatus.choices,
        default=AppealStatus.PENDING,
    )
    decision_note = models.CharField(_("处理说明"), max_length=200, blank=True)
    decided_by = actor_field(_("处理人"))
    created_at = created_at_field(_("提交时间"))
    decided_at = models.DateTimeField(_("处理时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("申诉")
        verbose_name_plural = _("申诉")
        ordering = ["created_at", "id"]
        constraints = [
            status_check("status", AppealStatus, name="appeal_status_known"),
            models.UniqueConstraint(
                fields=["distributor"],
                condition=Q(status="pending"),
                name="appeal_one_pending",
            ),
        ]

    def __str__(self):
        return f"{self.distributor} · {self.get_status_display()}"


class DistributorDailySales(models.Model):
    """One distributor's own sales on one local day (by ``paid_at``): the orders that count as
    sales (``selectors.sold_statuses``) and their amount, paid minus refunded.

    A derived table, never edited by hand: ``services.sales.record_order_sales`` recomputes the
    row from the orders inside the transaction that pays or refunds an order, and
    ``rebuild_sales_rollup`` (the management command) rebuilds it from scratch. The portal's
    daily figures read it instead of summing orders.
    """

    distributor = models.ForeignKey(
        Distributor,
        verbose_name=_("分销商"),
        on_delete=models.CASCADE,
        related_name="daily_sales",
    )
    day = models.DateField(_("日期"))
    orders = models.PositiveIntegerField(_("订单数"), default=0)
    amount = models.DecimalField(_("销售额"), **MONEY, default=Decimal("0.00"))

    class Meta:
        verbose_name = _("分销商日销售汇总")
        verbose_name_plural = _("分销商日销售汇总")
        constraints = [
            models.UniqueConstraint(
                fields=["distributor", "day"], name="distributor_daily_sales_unique"
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="distributor_daily_sales_not_negative"
            ),
        ]

    def __str__(self):
        return f"{self.distributor_id} {self.day}: {self.orders} / {self.amount}"


class DistributorTeamTotals(models.Model):
    """All-time sales of a distributor and everyone below (the team GMV), kept in step with
    ``DistributorDailySales`` by adding each change to the seller's upline, and by moving a
    subtree's totals from the old upline to the new one when staff move it. A separate row, not
    columns on ``Distributor``, so that saving a stale distributor instance can never write an
    old total back. ``rebuild_sales_rollup`` recomputes it."""

    distributor = models.OneToOneField(
        Distributor,
        verbose_name=_("分销商"),
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="team_totals",
    )
    orders = models.BigIntegerField(_("团队订单数"), default=0)
    amount = models.DecimalField(
        _("团队销售额"), max_digits=16, decimal_places=2, default=Decimal("0.00")
    )

    class Meta:
        verbose_name = _("团队销售累计")
        verbose_name_plural = _("团队销售累计")

    def __str__(self):
        return f"{self.distributor_id}: {self.orders} / {self.amount}"


# Docking (对接) lives in its own module; imported here so Django registers its models.
from .docking.models import (  # noqa: E402,F401
    ApiKey,
    ApiNonce,
    ApiScope,
    DockingProductSnapshot,
    DockingSite,
    DockingSiteStatus,
    WebhookAttempt,
    WebhookEvent,
    WebhookEventKind,
    WebhookStatus,
)
