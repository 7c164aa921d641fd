"""Risk control: what was observed (signals), what the merchant checks (rules), what fired
(events), who decides (review cases), who is refused (blacklist), and who is who (实名).

Contacts, payment accounts and ID numbers are never stored in plaintext here: a keyed blind
index (``kamen.crypto.blind_index``) lets the rules compare them without revealing them; the
real-name record keeps the originals encrypted for the provider and shows masks only.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from kamen.models import actor_field, created_at_field, status_check, updated_at_field
from kamen.money import MONEY  # noqa: E402  (one definition for every money column)


class SignalKind(models.TextChoices):
    CHECKOUT = "checkout", _("下单")
    SIGNUP = "signup", _("注册")
    LOGIN = "login", _("登录")
    PAYOUT_ACCOUNT = "payout_account", _("收款账户")
    # Guessing: a failed buyer look-up, an order / card-key page asked for without access.
    LOOKUP_FAILED = "lookup_failed", _("查单失败")
    PAGE_DENIED = "page_denied", _("无权访问订单页")
    # A payment notification whose signature did not verify (forged or tampered), by source.
    CALLBACK_FORGED = "callback_forged", _("伪造的支付回调")


class Action(models.TextChoices):
    ALLOW = "allow", _("放行（仅记录）")
    REVIEW = "review", _("暂停发货，人工审核")
    BLOCK = "block", _("拦截")
    FREEZE_COMMISSIONS = "freeze_commissions", _("冻结分销商佣金并审核")
    BLACKLIST = "blacklist", _("拉黑并拦截")


# Severity: the strongest action of all the rules that fired decides the checkout.
ACTION_SEVERITY = {
    Action.ALLOW: 0,
    Action.REVIEW: 1,
    Action.FREEZE_COMMISSIONS: 2,
    Action.BLOCK: 3,
    Action.BLACKLIST: 4,
}


class RuleCode(models.TextChoices):
    IP_VELOCITY = "ip_velocity", _("同一 IP 短时间内多次下单")
    DEVICE_VELOCITY = "device_velocity", _("同一设备短时间内多次下单")
    REPEAT_PURCHASE = "repeat_purchase", _("同一买家重复购买同一虚拟商品")
    SELF_REFERRAL = "self_referral", _("自购返佣（买家与归属分销商或其上级相同）")
    ORDER_AMOUNT_LIMIT = "order_amount_limit", _("单笔金额上限")
    BUYER_DAILY_LIMIT = "buyer_daily_limit", _("买家单日金额上限")
    DISTRIBUTOR_DAILY_LIMIT = "distributor_daily_limit", _("分销商单日成交上限")
    LINKED_ACCOUNTS = "linked_accounts", _("关联账户（共用设备、IP 或收款账户）")
    FAKE_RECRUITING = "fake_recruiting", _("虚假拉新（团队快速增长但无销售）")
    COMMISSION_OUT_OF_LINE = "commission_out_of_line", _("佣金与团队真实销售不相称")
    COMMISSION_CONCENTRATED = "commission_concentrated", _(
        "佣金集中来自少数买家或设备"
    )
    LOOKUP_GUESSING = "lookup_guessing", _("猜测查单（短时间内多次查单失败）")
    PAGE_GUESSING = "page_guessing", _("猜测订单/卡密页面（无效或他人的链接）")
    DOCKING_VELOCITY = "docking_velocity", _("对接站点短时间内下单过多（按站点计）")
    BLACKLIST = "blacklist", _("黑名单")


class RiskRule(models.Model):
    """One rule the merchant tunes: on or off, its threshold, its window and its action.

    ``threshold`` is a count for velocity rules and yuan for amount limits; ``window_minutes``
    is ignored by rules that need none (the per-order limit, self-referral)."""

    code = models.CharField(
        _("规则"), max_length=32, choices=RuleCode.choices, unique=True
    )
    is_enabled = models.BooleanField(_("启用"), default=True)
    threshold = models.DecimalField(
        _("阈值"), max_digits=14, decimal_places=2, default=0
    )
    window_minutes = models.PositiveIntegerField(_("时间窗口（分钟）"), default=0)
    action = models.CharField(
        _("动作"), max_length=20, choices=Action.choices, default=Action.REVIEW
    )
    note = models.CharField(_("说明"), max_length=200, blank=True)
    updated_at = updated_at_field()

    class Meta:
        verbose_name = _("风控规则")
        verbose_name_plural = _("风控规则")
        ordering = ["code"]
        constraints = [
            status_check("action", Action, name="risk_rule_action_known"),
            models.CheckConstraint(
                condition=Q(threshold__gte=0), name="risk_rule_threshold_not_negative"
            ),
        ]

    def __str__(self):
        return self.get_code_display()


class Verdict(models.TextChoices):
    ALLOW = "allow", _("放行")
    REVIEW = "review", _("待审核")
    BLOCK = "block", _("拦截")


class RiskSignal(models.Model):
    """One observation: a checkout assessed, a distributor signing up or logging in, a payout
    account added. Checkouts carry the verdict and why."""

    kind = models.CharField(_("类型"), max_length=16, choices=SignalKind.choices)
    created_at = created_at_field(_("时间"))
    ip = models.GenericIPAddressField(_("IP"), null=True, blank=True)
    device_id = models.CharField(_("设备标识"), max_length=64, blank=True)
    device_hash = models.CharField(_("浏览器指纹"), max_length=64, blank=True)
    contact_index = models.CharField(_("联系方式索引"), max_length=64, blank=True)
    contact_mask = models.CharField(_("联系方式"), max_length=64, blank=True)
    payment_account_index = models.CharField(
        _("支付账户索引"), max_length=64, blank=True
    )
    distributor_id = models.BigIntegerField(_("分销商"), null=True, blank=True)
    # A checkout of a docking site's API order: its velocity is counted per site (ADR 0019).
    docking_site_id = models.BigIntegerField(_("对接商户"), null=True, blank=True)
    user_id = models.BigIntegerField(_("用户"), null=True, blank=True)
    product_id = models.BigIntegerField(_("商品"), null=True, blank=True)
    quantity = models.PositiveIntegerField(_("数量"), default=0)
    amount = models.DecimalField(_("金额"), **MONEY, default=0)
    checkout_token = models.CharField(_("下单令牌"), max_length=64, blank=True)
    order_no = models.CharField(_("订单号"), max_length=32, blank=True)
    verdict = models.CharField(
        _("结论"), max_length=8, choices=Verdict.choices, blank=True
    )
    explanation = models.TextField(_("说明"), blank=True)

    class Meta:
        verbose_name = _("风控信号")
        verbose_name_plural = _("风控信号")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["order_no"], name="risk_signal_order_no_idx"),  # no LIKE twin
            models.Index(fields=["ip", "created_at"], name="risk_signal_ip_idx"),
            models.Index(
                fields=["device_id", "created_at"], name="risk_signal_device_idx"
            ),
            models.Index(
                fields=["contact_index", "created_at"], name="risk_signal_contact_idx"
            ),
            models.Index(
                fields=["distributor_id", "created_at"],
                name="risk_signal_distributor_idx",
            ),
            models.Index(
                fields=["checkout_token"],
                name="risk_signal_token_idx",
                condition=~Q(checkout_token=""),
            ),
            models.Index(fields=["kind", "created_at"], name="risk_signal_kind_idx"),
            models.Index(
                fields=["docking_site_id", "created_at"],
                name="risk_signal_docking_idx",
                condition=Q(docking_site_id__isnull=False),
            ),
            # The chain's own sign-up / log-in / payout signals, without its thousands of orders.
            models.Index(
                fields=["distributor_id"],
                name="risk_signal_chain_idx",
                condition=Q(kind__in=["signup", "login", "payout_account"]),
            ),
        ]
        constraints = [
            status_check("kind", SignalKind, name="risk_signal_kind_known"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.created_at:%Y-%m-%d %H:%M:%S}"


class DistributorDayTotal(models.Model):
    """A distributor's attributed checkout total of one day (blocked checkouts taken back), kept
    by the risk check in the same statement that reads the other figures: summing a big
    distributor's thousands of signals per checkout would cost tens of milliseconds."""

    distributor_id = models.BigIntegerField(_("分销商"))
    day = models.DateField(_("日期"))
    total = models.DecimalField(_("金额"), **MONEY, default=0)

    class Meta:
        verbose_name = _("分销商单日成交")
        verbose_name_plural = _("分销商单日成交")
        constraints = [
            models.UniqueConstraint(
                fields=["distributor_id", "day"], name="risk_distributor_day_once"
            ),
        ]

    def __str__(self):
        return f"#{self.distributor_id} {self.day} ¥{self.total}"


class RiskEvent(models.Model):
    """A rule fired: on a checkout (with its signal) or in a scheduled scan (on a distributor).
    ``explanation`` says which rule and which signal, in words staff can act on."""

    created_at = created_at_field(_("时间"), db_index=True)
    rule = models.CharField(_("规则"), max_length=32, choices=RuleCode.choices)
    action = models.CharField(_("动作"), max_length=20, choices=Action.choices)
    signal = models.ForeignKey(
        RiskSignal,
        verbose_name=_("信号"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="events",
    )
    distributor_id = models.BigIntegerField(
        _("分销商"), null=True, blank=True, db_index=True
    )
    order_no = models.CharField(_("订单号"), max_length=32, blank=True, db_index=True)
    matched_on = models.CharField(_("命中信号"), max_length=32, blank=True)
    explanation = models.CharField(_("说明"), max_length=300)
    outcome = models.CharField(_("执行结果"), max_length=200, blank=True)
    # Scans run again and again; the same finding on the same day is one event.
    dedupe_key = models.CharField(
        max_length=120, null=True, blank=True, unique=True, editable=False
    )

    class Meta:
        verbose_name = _("风控事件")
        verbose_name_plural = _("风控事件")
        ordering = ["-created_at", "-id"]
        constraints = [
            status_check("action", Action, name="risk_event_action_known"),
        ]

    def __str__(self):
        return f"{self.get_rule_display()} → {self.get_action_display()}"


class ReviewStatus(models.TextChoices):
    PENDING = "pending", _("待审核")
    APPROVED = "approved", _("已通过")
    REJECTED = "rejected", _("已拒绝")


class ReviewCase(models.Model):
    """An order held for risk staff: fulfilment waits until it is approved; a rejection refunds."""

    order = models.OneToOneField(
        "orders.Order",
        verbose_name=_("订单"),
        on_delete=models.PROTECT,
        related_name="risk_review",
    )
    signal = models.ForeignKey(
        RiskSignal,
        verbose_name=_("信号"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    status = models.CharField(
        _("状态"),
        max_length=10,
        choices=ReviewStatus.choices,
        default=ReviewStatus.PENDING,
    )
    reasons = models.CharField(_("原因"), max_length=300, blank=True)
    decision_reason = models.CharField(_("审核意见"), max_length=200, blank=True)
    decided_by = actor_field(_("审核人"))
    decided_at = models.DateTimeField(_("审核时间"), null=True, blank=True)
    created_at = created_at_field()

    class Meta:
        verbose_name = _("风控审核")
        verbose_name_plural = _("风控审核")
        ordering = ["status", "-created_at"]
        permissions = [("decide_reviewcase", _("可以审核风控订单"))]
        constraints = [
            status_check("status", ReviewStatus, name="review_case_status_known"),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="review_case_status_idx")
        ]

    def __str__(self):
        return f"{self.order} · {self.get_status_display()}"


class BlacklistKind(models.TextChoices):
    IP = "ip", _("IP / 网段")
    DEVICE = "device", _("设备")
    CONTACT = "contact", _("联系方式")
    PAYMENT_ACCOUNT = "payment_account", _("支付账户")
    ID_NUMBER = "id_number", _("身份证号")
    DISTRIBUTOR = "distributor", _("分销商")


class BlacklistEntry(models.Model):
    """Who is refused. IPs are a network (a single address is a /32 or /128); contacts,
    payment accounts and ID numbers are a blind index with a mask for people; devices and
    distributors are their identifier."""

    kind = models.CharField(_("类型"), max_length=16, choices=BlacklistKind.choices)
    network = models.GenericIPAddressField(_("网络地址"), null=True, blank=True)
    prefix_length = models.PositiveSmallIntegerField(
        _("前缀长度"), null=True, blank=True
    )
    value_index = models.CharField(_("值索引"), max_length=64, blank=True)
    display_value = models.CharField(_("值"), max_length=64)
    reason = models.CharField(_("原因"), max_length=200)
    expires_at = models.DateTimeField(_("过期时间"), null=True, blank=True)
    created_by = actor_field(_("添加人"))
    created_at = created_at_field(_("添加时间"))

    class Meta:
        verbose_name = _("黑名单")
        verbose_name_plural = _("黑名单")
        ordering = ["-created_at", "-id"]
        constraints = [
            status_check("kind", BlacklistKind, name="blacklist_kind_known"),
            models.CheckConstraint(
                condition=~Q(kind="ip")
                | (Q(network__isnull=False) & Q(prefix_length__isnull=False)),
                name="blacklist_ip_has_network",
            ),
            models.CheckConstraint(
                condition=Q(kind="ip") | ~Q(value_index=""),
                name="blacklist_value_present",
            ),
        ]
        # PostgreSQL also has a GiST index on set_masklen(network, prefix_length) for the IP
        # entries (migration 0003), so "which network holds this IP" is an index look-up.
        indexes = [
            models.Index(fields=["kind", "value_index"], name="blacklist_value_idx")
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.display_value}"


class RealNameStatus(models.TextChoices):
    VERIFIED = "verified", _("已认证")
    FAILED = "failed", _("认证失败")


class RealNameVerification(models.Model):
    """A distributor's 实名 check: the four facts encrypted, masks to show, the provider's
    answer. The ID number's blind index finds one person behind several accounts."""

    distributor = models.ForeignKey(
        "distribution.Distributor",
        verbose_name=_("分销商"),
        on_delete=models.PROTECT,
        related_name="real_name_checks",
    )
    status = models.CharField(_("状态"), max_length=10, choices=RealNameStatus.choices)
    name_mask = models.CharField(_("姓名"), max_length=40)
    id_number_mask = models.CharField(_("身份证号"), max_length=24)
    id_number_index = models.CharField(max_length=64, db_index=True, editable=False)
    bank_card_mask = models.CharField(_("银行卡号"), max_length=32)
    mobile_mask = models.CharField(_("手机号"), max_length=16)
    # {"name": ..., "id_number": ..., "bank_card": ..., "mobile": ...} as JSON, one ciphertext.
    data_ciphertext = models.BinaryField(editable=False)
    data_key_id = models.CharField(max_length=32, editable=False)
    provider = models.CharField(_("认证渠道"), max_length=32)
    provider_reference = models.CharField(_("渠道流水号"), max_length=64, blank=True)
    failure_reason = models.CharField(_("失败原因"), max_length=200, blank=True)
    created_at = created_at_field(_("提交时间"))

    class Meta:
        verbose_name = _("实名认证")
        verbose_name_plural = _("实名认证")
        ordering = ["-created_at", "-id"]
        constraints = [
            status_check("status", RealNameStatus, name="real_name_status_known"),
            models.UniqueConstraint(
                fields=["distributor"],
                condition=Q(status="verified"),
                name="real_name_verified_once",
            ),
        ]

    def __str__(self):
        return f"{self.distributor_id} {self.name_mask} {self.get_status_display()}"
