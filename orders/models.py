"""Orders: one product line per order (the 发卡网 norm), its price and attribution snapshotted.

The status is changed only by ``orders.services.state.transition_order``; every change leaves
an ``OrderStatusChange`` row (old, new, cause, actor).
"""

from django.db import models
from django.db.models import F, Q
from django.db.models.fields.json import KT
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kamen.models import actor_field, created_at_field, status_check, updated_at_field
from kamen.money import MONEY  # noqa: E402  (one definition for every money column)


class OrderStatus(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", _("待支付")
    PAID = "paid", _("已支付")
    FULFILLING = "fulfilling", _("发货中")
    BACKORDERED = "backordered", _("缺货待补")
    COMPLETED = "completed", _("已完成")
    PARTIALLY_FULFILLED = "partially_fulfilled", _("部分发货")
    FAILED = "failed", _("发货失败")
    REFUNDED = "refunded", _("已退款")
    PARTIALLY_REFUNDED = "partially_refunded", _("部分退款")
    EXPIRED = "expired", _("已过期")


class ContactKind(models.TextChoices):
    EMAIL = "email", _("邮箱")
    MOBILE = "mobile", _("手机号")


class Order(models.Model):
    # Unique through Meta.constraints, not unique=True: that would add a second index for LIKE
    # searches that nothing makes (every insert pays for each index).
    order_no = models.CharField(_("订单号"), max_length=32)
    status = models.CharField(
        _("状态"), max_length=24, choices=OrderStatus.choices, default=OrderStatus.PENDING_PAYMENT
    )
    product = models.ForeignKey(
        "catalog.Product", verbose_name=_("商品"), on_delete=models.PROTECT, related_name="orders"
    )
    # Snapshot at checkout: later catalog edits never change what this order was sold as.
    product_name = models.CharField(_("商品名称"), max_length=120)
    product_type = models.CharField(_("商品类型"), max_length=20)
    quantity = models.PositiveIntegerField(_("数量"))
    unit_price = models.DecimalField(_("单价"), **MONEY)
    total_amount = models.DecimalField(_("应付金额"), **MONEY)
    cost_amount = models.DecimalField(_("成本"), **MONEY, default=0)
    paid_amount = models.DecimalField(_("实付金额"), **MONEY, default=0)
    refunded_amount = models.DecimalField(_("已退金额"), **MONEY, default=0)
    contact = models.CharField(_("联系方式"), max_length=120)
    contact_kind = models.CharField(_("联系方式类型"), max_length=10, choices=ContactKind.choices)
    query_password_hash = models.CharField(_("查单密码（哈希）"), max_length=128)
    buyer_fields = models.JSONField(_("买家填写信息"), default=dict, blank=True)
    recharge_target = models.CharField(_("充值账号"), max_length=120, blank=True)
    # Attribution snapshot (the distribution network fills these through its hook).
    distributor_id = models.BigIntegerField(_("归属分销商"), null=True, blank=True, db_index=True)
    attribution = models.JSONField(_("归属快照"), default=dict, blank=True)
    channel = models.CharField(_("推广渠道"), max_length=20, blank=True)
    checkout_token = models.CharField(_("下单令牌"), max_length=64, null=True, blank=True)
    payment_gateway = models.CharField(_("支付方式"), max_length=20, blank=True)
    buyer_ip = models.GenericIPAddressField(_("下单 IP"), null=True, blank=True)
    created_at = created_at_field(_("下单时间"), db_index=True)
    expires_at = models.DateTimeField(_("支付截止"))
    paid_at = models.DateTimeField(_("支付时间"), null=True, blank=True)
    completed_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    status_changed_at = models.DateTimeField(_("状态变更时间"), auto_now_add=True)  # indexed with status
    # Pipeline bookkeeping: how often fulfilment ran, its last error (no secrets), the email.
    fulfilment_attempts = models.PositiveIntegerField(_("发货尝试次数"), default=0)
    last_fulfilment_error = models.CharField(_("最近发货错误"), max_length=300, blank=True)
    delivery_emailed_at = models.DateTimeField(_("发货邮件时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("订单")
        verbose_name_plural = _("订单")
        ordering = ["-created_at", "-id"]
        # 补单 and refunds have theirs on PaymentCallback and Refund (orders.confirm_payment_manually,
        # orders.refund_order); these are the post-sale actions on the order itself.
        permissions = [
            ("redeem_voucher", _("可以核销券码")),
            ("redrive_fulfilment", _("可以重新发货")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["order_no"], name="order_no_unique"),
            models.UniqueConstraint(fields=["checkout_token"], name="order_checkout_token_unique"),
            status_check("status", OrderStatus, name="order_status_known"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="order_quantity_positive"),
            models.CheckConstraint(condition=Q(total_amount__gt=0), name="order_total_positive"),
            models.CheckConstraint(condition=Q(paid_amount__gte=0), name="order_paid_not_negative"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("paid_amount")),
                name="order_refund_within_paid",
            ),
            models.CheckConstraint(
                condition=Q(paid_at__isnull=True) | Q(paid_amount__gt=0), name="order_paid_has_amount"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "status_changed_at"], name="order_status_age_idx"),
            models.Index(fields=["contact", "created_at"], name="order_contact_idx"),
            # The buyer's orders that count towards their first-order threshold (docs/adr/0023):
            # few rows, summed inside the payment's transaction.
            models.Index(
                KT("attribution__buyer_distributor_id"),
                condition=Q(attribution__has_key="first_order_pending"),
                name="order_first_order_idx",
            ),
        ]

    def __str__(self):
        return self.order_no


class OrderStatusChange(models.Model):
    """Every transition, with its cause: the order's history, never edited."""

    order = models.ForeignKey(Order, verbose_name=_("订单"), on_delete=models.CASCADE, related_name="status_changes")
    old_status = models.CharField(_("原状态"), max_length=24, choices=OrderStatus.choices)
    new_status = models.CharField(_("新状态"), max_length=24, choices=OrderStatus.choices)
    cause = models.CharField(_("原因"), max_length=200)
    actor = actor_field(_("操作人"))
    created_at = created_at_field(_("时间"))

    class Meta:
        verbose_name = _("订单状态变更")
        verbose_name_plural = _("订单状态变更")
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.order_id}: {self.old_status} → {self.new_status}"


class DeliveryKind(models.TextChoices):
    CARD_KEY = "card_key", _("卡密")
    REUSABLE_KEY = "reusable_key", _("循环卡密")
    TOP_UP = "top_up", _("直充")
    MANUAL = "manual", _("人工发货")


class OrderDelivery(models.Model):
    """What an order received, one row per card key (or per top-up / manual delivery).

    ``card_key`` is unique: a card key is delivered to at most one order, ever, and the database
    refuses a second delivery whatever the code above it does. Secrets are never copied here in
    plaintext: a card key's stays in the vault; manual content and reusable secrets are
    encrypted with ``kamen.crypto``.
    """

    order = models.ForeignKey(Order, verbose_name=_("订单"), on_delete=models.PROTECT, related_name="deliveries")
    product = models.ForeignKey(
        "catalog.Product", verbose_name=_("商品"), on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(_("类型"), max_length=20, choices=DeliveryKind.choices)
    card_key = models.ForeignKey(
        "catalog.CardKey",
        verbose_name=_("卡密"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deliveries",
        db_index=False,  # order_delivery_card_key_once (unique) indexes it
    )
    quantity = models.PositiveIntegerField(_("数量"), default=1)
    content_ciphertext = models.BinaryField(_("加密内容"), null=True, blank=True, editable=False)
    content_key_id = models.CharField(max_length=32, blank=True, editable=False)
    message = models.CharField(_("说明"), max_length=300, blank=True)
    is_voided = models.BooleanField(_("已作废"), default=False)
    created_by = actor_field(_("操作人"))
    created_at = created_at_field(_("发货时间"))

    class Meta:
        verbose_name = _("订单发货")
        verbose_name_plural = _("订单发货")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["card_key"], name="order_delivery_card_key_once"),
            status_check("kind", DeliveryKind, name="order_delivery_kind_known"),
            models.CheckConstraint(
                condition=~Q(kind="card_key") | Q(card_key__isnull=False), name="order_delivery_card_key_present"
            ),
            # One top-up / reusable / manual delivery per (order, product): a re-run cannot add a second.
            models.UniqueConstraint(
                fields=["order", "product", "kind"],
                condition=~Q(kind="card_key"),
                name="order_delivery_once_per_part",
            ),
        ]

    def __str__(self):
        return f"{self.order_id} · {self.get_kind_display()}"


class PaymentStatus(models.TextChoices):
    PENDING = "pending", _("待支付")
    SUCCEEDED = "succeeded", _("已支付")
    FAILED = "failed", _("支付失败")
    CLOSED = "closed", _("已关闭")


class PaymentAttempt(models.Model):
    """One payment started at one gateway for one order (out_trade_no is the order number)."""

    order = models.ForeignKey(Order, verbose_name=_("订单"), on_delete=models.PROTECT, related_name="payments")
    gateway = models.CharField(_("支付方式"), max_length=20)
    out_trade_no = models.CharField(_("商户订单号"), max_length=64)
    gateway_trade_no = models.CharField(_("支付平台交易号"), max_length=64, blank=True)
    amount = models.DecimalField(_("金额"), **MONEY)
    status = models.CharField(_("状态"), max_length=12, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    created_at = created_at_field()
    updated_at = updated_at_field()

    class Meta:
        verbose_name = _("支付记录")
        verbose_name_plural = _("支付记录")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "out_trade_no"], name="payment_attempt_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_attempt_amount_positive"),
            status_check("status", PaymentStatus, name="payment_attempt_status_known"),
        ]

    def __str__(self):
        return f"{self.gateway}:{self.out_trade_no}"


class CallbackSource(models.TextChoices):
    NOTIFY = "notify", _("异步通知")
    QUERY = "query", _("主动查询")
    MANUAL = "manual", _("人工补单")
    WALLET = "wallet", _("钱包支付")
    PREPAID = "prepaid", _("预存款支付")


class CallbackOutcome(models.TextChoices):
    PAID = "paid", _("已确认支付")
    DUPLICATE = "duplicate", _("重复（已处理过）")
    IGNORED = "ignored", _("无需处理")
    REJECTED = "rejected", _("已拒绝")


class PaymentCallback(models.Model):
    """Every payment notification, as received, under the provider's unique id — forged and
    tampered ones too, with why they were refused. A replay finds its row and gets the earlier
    outcome, so nothing is processed twice."""

    gateway = models.CharField(_("支付方式"), max_length=20)
    event_id = models.CharField(_("通知 ID"), max_length=128)
    source = models.CharField(_("来源"), max_length=10, choices=CallbackSource.choices, default=CallbackSource.NOTIFY)
    order = models.ForeignKey(
        Order, verbose_name=_("订单"), null=True, blank=True, on_delete=models.PROTECT, related_name="callbacks"
    )
    out_trade_no = models.CharField(_("商户订单号"), max_length=64, blank=True)
    amount = models.DecimalField(_("金额"), **MONEY, null=True, blank=True)
    currency = models.CharField(_("币种"), max_length=8, blank=True)
    is_verified = models.BooleanField(_("签名有效"), default=False)
    outcome = models.CharField(_("处理结果"), max_length=12, choices=CallbackOutcome.choices)
    rejection_reason = models.CharField(_("拒绝原因"), max_length=300, blank=True)
    raw_body = models.TextField(_("原始内容"), blank=True)
    headers = models.JSONField(_("请求头"), default=dict, blank=True)
    payload = models.JSONField(_("解析内容"), default=dict, blank=True)
    # Who sent it (kamen.client_ip): a forged notification's source, for staff and the risk rules.
    source_ip = models.GenericIPAddressField(_("来源 IP"), null=True, blank=True)
    actor = actor_field(_("操作人"))
    received_at = models.DateTimeField(_("接收时间"), auto_now_add=True, db_index=True)
    last_seen_at = models.DateTimeField(_("最近一次接收"), auto_now=True)
    times_received = models.PositiveIntegerField(_("接收次数"), default=1)

    class Meta:
        verbose_name = _("支付回调")
        verbose_name_plural = _("支付回调")
        ordering = ["-received_at", "-id"]
        permissions = [("confirm_payment_manually", _("可以人工补单"))]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "event_id"], name="payment_callback_event_unique"),
            status_check("outcome", CallbackOutcome, name="payment_callback_outcome_known"),
        ]

    def __str__(self):
        return f"{self.gateway}:{self.event_id} ({self.outcome})"

    @property
    def is_accepted(self) -> bool:
        return self.outcome != CallbackOutcome.REJECTED


class RefundStatus(models.TextChoices):
    PENDING = "pending", _("退款中")
    SUCCEEDED = "succeeded", _("已退款")
    FAILED = "failed", _("退款失败")


class Refund(models.Model):
    order = models.ForeignKey(Order, verbose_name=_("订单"), on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(_("退款金额"), **MONEY)
    out_refund_no = models.CharField(_("退款单号"), max_length=64, unique=True)
    gateway = models.CharField(_("支付方式"), max_length=20, blank=True)
    gateway_refund_no = models.CharField(_("平台退款单号"), max_length=64, blank=True)
    status = models.CharField(_("状态"), max_length=12, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    reason = models.CharField(_("退款原因"), max_length=200)
    restock = models.BooleanField(_("退回库存"), default=False)
    failure_reason = models.CharField(_("失败原因"), max_length=300, blank=True)
    actor = actor_field(_("操作人"))
    created_at = created_at_field(_("申请时间"))
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("退款")
        verbose_name_plural = _("退款")
        ordering = ["-created_at", "-id"]
        permissions = [("refund_order", _("可以为订单退款"))]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            status_check("status", RefundStatus, name="refund_status_known"),
        ]

    def __str__(self):
        return f"{self.out_refund_no} ¥{self.amount}"


class SandboxPaymentStatus(models.TextChoices):
    PENDING = "pending", _("待支付")
    SUCCEEDED = "succeeded", _("支付成功")
    FAILED = "failed", _("支付失败")
    REFUNDED = "refunded", _("已全额退款")


class SandboxPayment(models.Model):
    """The sandbox gateway's own books: what it was asked to collect and what happened.

    Kamen's order code never reads this table; it talks to the sandbox through the gateway
    interface like to any real provider.
    """

    trade_no = models.CharField(_("沙箱交易号"), max_length=64, unique=True)
    app_id = models.CharField(_("应用 ID"), max_length=64)
    out_trade_no = models.CharField(_("商户订单号"), max_length=64, unique=True)
    amount = models.DecimalField(_("金额"), **MONEY)
    subject = models.CharField(_("商品"), max_length=200)
    notify_url = models.URLField(_("通知地址"), max_length=500)
    return_url = models.URLField(_("返回地址"), max_length=500, blank=True)
    status = models.CharField(
        _("状态"), max_length=12, choices=SandboxPaymentStatus.choices, default=SandboxPaymentStatus.PENDING
    )
    refunded_amount = models.DecimalField(_("已退金额"), **MONEY, default=0)
    paid_at = models.DateTimeField(_("支付时间"), null=True, blank=True)
    created_at = created_at_field()

    class Meta:
        verbose_name = _("沙箱支付")
        verbose_name_plural = _("沙箱支付")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="sandbox_payment_refund_within_amount",
            ),
        ]

    def __str__(self):
        return self.trade_no


class SandboxRefund(models.Model):
    payment = models.ForeignKey(SandboxPayment, on_delete=models.PROTECT, related_name="refunds")
    out_refund_no = models.CharField(max_length=64, unique=True)
    refund_no = models.CharField(max_length=64, unique=True)
    amount = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("沙箱退款")
        verbose_name_plural = _("沙箱退款")


class SandboxNotification(models.Model):
    """One async notification the sandbox owes Kamen, retried with backoff until answered
    ``success`` (or the attempts run out, like a real gateway giving up after a day)."""

    payment = models.ForeignKey(SandboxPayment, on_delete=models.CASCADE, related_name="notifications")
    event_id = models.CharField(max_length=64)
    body = models.TextField()
    attempts = models.PositiveIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_answer = models.CharField(max_length=200, blank=True)
    # When the next attempt is due: the retry schedule lives in the sandbox's own table, as a
    # real gateway's does, not only in Kamen's broker (which may lose it).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("沙箱通知")
        verbose_name_plural = _("沙箱通知")
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(delivered_at__isnull=True),
                name="sandbox_notification_due_idx",
            )
        ]


class Voucher(models.Model):
    """One redeemable unit (券) of a delivered order, redeemed at most once.

    The code the buyer shows is stored encrypted (so the buyer's page can show it again) and
    found by its keyed blind index, never by plaintext. ``secret`` seeds the 30-second dynamic
    code (TOTP, RFC 6238) for products that require one; ``requires_dynamic_code`` is fixed at
    issue time so a later catalog edit never changes what a sold voucher needs.
    """

    order = models.ForeignKey(Order, verbose_name=_("订单"), on_delete=models.PROTECT, related_name="vouchers")
    product = models.ForeignKey(
        "catalog.Product", verbose_name=_("商品"), on_delete=models.PROTECT, related_name="+"
    )
    sequence = models.PositiveIntegerField(_("序号"))
    code_index = models.CharField(_("券码索引"), max_length=64, editable=False)
    code_ciphertext = models.BinaryField(_("券码密文"), editable=False)
    code_key_id = models.CharField(max_length=32, editable=False)
    code_last4 = models.CharField(_("券码末四位"), max_length=4, editable=False)
    secret_ciphertext = models.BinaryField(_("动态码种子密文"), editable=False)
    secret_key_id = models.CharField(max_length=32, editable=False)
    requires_dynamic_code = models.BooleanField(_("需要动态码"), default=False)
    created_at = created_at_field(_("发放时间"))
    redeemed_at = models.DateTimeField(_("核销时间"), null=True, blank=True)
    redeemed_by = actor_field(_("核销人"))
    redeemed_store = models.CharField(_("核销门店"), max_length=60, blank=True)
    voided_at = models.DateTimeField(_("作废时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("核销券")
        verbose_name_plural = _("核销券")
        ordering = ["order_id", "product_id", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["code_index"], name="voucher_code_unique"),
            # Issuing twice issues once: one voucher per (order, product, unit).
            models.UniqueConstraint(fields=["order", "product", "sequence"], name="voucher_once_per_unit"),
            models.CheckConstraint(condition=Q(sequence__gte=1), name="voucher_sequence_positive"),
            models.CheckConstraint(
                condition=Q(redeemed_at__isnull=True) | Q(voided_at__isnull=True), name="voucher_not_redeemed_and_voided"
            ),
        ]

    def __str__(self):
        return f"{self.order.order_no} #{self.sequence} (…{self.code_last4})"

    @property
    def is_redeemed(self) -> bool:
        return self.redeemed_at is not None


class RedemptionOutcome(models.TextChoices):
    REDEEMED = "redeemed", _("核销成功")
    ALREADY_REDEEMED = "already_redeemed", _("已核销过")
    BAD_DYNAMIC_CODE = "bad_dynamic_code", _("动态码错误或过期")
    UNKNOWN_CODE = "unknown_code", _("券码无效")
    NOT_REDEEMABLE = "not_redeemable", _("不可核销")


class VoucherRedemption(models.Model):
    """Every redemption attempt at a counter, accepted or refused: who, when, where, from which
    IP. At most one accepted row per voucher, by constraint."""

    voucher = models.ForeignKey(
        Voucher, verbose_name=_("核销券"), null=True, blank=True, on_delete=models.PROTECT, related_name="redemptions"
    )
    outcome = models.CharField(_("结果"), max_length=20, choices=RedemptionOutcome.choices)
    actor = actor_field(_("操作人"))
    actor_name = models.CharField(_("操作人账号"), max_length=150, blank=True)
    store_label = models.CharField(_("门店"), max_length=60, blank=True)
    ip_address = models.GenericIPAddressField(_("IP"), null=True, blank=True)
    created_at = created_at_field(_("时间"), db_index=True)

    class Meta:
        verbose_name = _("核销记录")
        verbose_name_plural = _("核销记录")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["voucher"], condition=Q(outcome="redeemed"), name="voucher_redeemed_once"
            ),
            status_check("outcome", RedemptionOutcome, name="voucher_redemption_outcome_known"),
        ]

    def __str__(self):
        return f"{self.voucher_id} {self.outcome} {self.created_at:%Y-%m-%d %H:%M}"


class StockPurchaseStatus(models.TextChoices):
    PENDING = "pending", _("待支付")
    COMPLETED = "completed", _("已完成")
    # Paid through the gateway when the stock had meanwhile run out: the payment went to the
    # distributor's available balance instead.
    CREDITED_TO_BALANCE = "credited", _("缺货，已转入余额")


class StockPurchase(models.Model):
    """A distributor's stock purchase (进货): card keys bought at their grade price, paid from
    their wallet or through the payment gateway, revealed in their portal to resell
    off-platform. ``request_token`` makes a double submit find the first purchase; ``upline``
    snapshots the buyer's ancestors (nearest first) when it was placed, for the commissions."""

    purchase_no = models.CharField(_("进货单号"), max_length=32, unique=True)
    distributor = models.ForeignKey(
        "distribution.Distributor", verbose_name=_("分销商"), on_delete=models.PROTECT, related_name="+"
    )
    product = models.ForeignKey("catalog.Product", verbose_name=_("商品"), on_delete=models.PROTECT, related_name="+")
    product_name = models.CharField(_("商品名称"), max_length=120)
    quantity = models.PositiveIntegerField(_("数量"))
    unit_price = models.DecimalField(_("进货单价"), **MONEY)
    total_amount = models.DecimalField(_("进货金额"), **MONEY)
    request_token = models.CharField(_("请求令牌"), max_length=64, unique=True)
    journal_reference = models.CharField(_("记账凭证"), max_length=64)
    status = models.CharField(
        _("状态"), max_length=12, choices=StockPurchaseStatus.choices, default=StockPurchaseStatus.COMPLETED
    )
    payment_method = models.CharField(_("支付方式"), max_length=16, default="wallet")
    upline = models.JSONField(_("上级快照"), default=list, blank=True)
    paid_at = models.DateTimeField(_("支付时间"), null=True, blank=True)
    created_at = created_at_field(_("进货时间"))

    class Meta:
        verbose_name = _("进货单")
        verbose_name_plural = _("进货单")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="stock_purchase_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gt=0), name="stock_purchase_price_positive"),
            models.CheckConstraint(condition=Q(total_amount__gt=0), name="stock_purchase_total_positive"),
            models.CheckConstraint(
                condition=Q(status__in=StockPurchaseStatus.values), name="stock_purchase_status_known"
            ),
        ]
        indexes = [models.Index(fields=["distributor", "product", "created_at"], name="stock_purchase_volume_idx")]

    def __str__(self):
        return self.purchase_no


class StockPurchaseKey(models.Model):
    """One card key of a stock purchase: a key belongs to at most one purchase (and, being
    claimed sold, to no order)."""

    purchase = models.ForeignKey(StockPurchase, verbose_name=_("进货单"), on_delete=models.PROTECT, related_name="keys")
    card_key = models.OneToOneField(
        "catalog.CardKey", verbose_name=_("卡密"), on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        verbose_name = _("进货卡密")
        verbose_name_plural = _("进货卡密")
        ordering = ["id"]


class TopUpStatus(models.TextChoices):
    PENDING = "pending", _("待支付")
    CREDITED = "credited", _("已到账")


class TopUp(models.Model):
    """A distributor's prepaid top-up (预存款) through the payment gateway: credited to their
    available balance, through the ledger, once, on the gateway's signed notification."""

    top_up_no = models.CharField(_("充值单号"), max_length=32, unique=True)
    distributor = models.ForeignKey(
        "distribution.Distributor", verbose_name=_("分销商"), on_delete=models.PROTECT, related_name="+"
    )
    amount = models.DecimalField(_("充值金额"), **MONEY)
    gateway = models.CharField(_("支付方式"), max_length=16)
    status = models.CharField(_("状态"), max_length=12, choices=TopUpStatus.choices, default=TopUpStatus.PENDING)
    created_at = created_at_field()
    credited_at = models.DateTimeField(_("到账时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("预存款充值")
        verbose_name_plural = _("预存款充值")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="top_up_amount_positive"),
            status_check("status", TopUpStatus, name="top_up_status_known"),
        ]

    def __str__(self):
        return self.top_up_no


class DepositPayment(models.Model):
    """A distributor paying their grade's deposit (保证金) through the payment gateway: held in
    their deposit account in the ledger, once, on the gateway's signed notification
    (docs/adr/0023). Numbers start with ``D``; statuses as a top-up's."""

    deposit_no = models.CharField(_("保证金单号"), max_length=32, unique=True)
    distributor = models.ForeignKey(
        "distribution.Distributor", verbose_name=_("分销商"), on_delete=models.PROTECT, related_name="+"
    )
    amount = models.DecimalField(_("金额"), **MONEY)
    gateway = models.CharField(_("支付方式"), max_length=16)
    status = models.CharField(_("状态"), max_length=12, choices=TopUpStatus.choices, default=TopUpStatus.PENDING)
    created_at = created_at_field(_("创建时间"))
    credited_at = models.DateTimeField(_("到账时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("保证金缴纳")
        verbose_name_plural = _("保证金缴纳")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="deposit_payment_amount_positive"),
            status_check("status", TopUpStatus, name="deposit_payment_status_known"),
        ]

    def __str__(self):
        return self.deposit_no


# --- reconciliation against the gateways' daily statements (docs/adr/0020) --------------------
class StatementStatus(models.TextChoices):
    MATCHED = "matched", _("全部相符")
    DIFFERENCES = "differences", _("存在差异")


class GatewayStatement(models.Model):
    """One gateway's statement of one day, matched line by line against the payments and
    refunds Kamen recorded. A day is reconciled once per gateway; running it again replaces
    the result (the differences of the newest run stand)."""

    gateway = models.CharField(_("支付方式"), max_length=20)
    bill_date = models.DateField(_("账单日期"))
    status = models.CharField(_("结果"), max_length=12, choices=StatementStatus.choices)
    line_count = models.PositiveIntegerField(_("账单行数"), default=0)
    matched_count = models.PositiveIntegerField(_("相符行数"), default=0)
    difference_count = models.PositiveIntegerField(_("差异数"), default=0)
    statement_total = models.DecimalField(_("账单收款合计"), **MONEY, default=0)
    statement_fees = models.DecimalField(_("账单手续费合计"), **MONEY, default=0)
    reconciled_at = models.DateTimeField(_("对账时间"), default=timezone.now)

    class Meta:
        verbose_name = _("渠道对账单")
        verbose_name_plural = _("渠道对账单")
        ordering = ["-bill_date", "gateway"]
        permissions = [("reconcile_statements", _("可以核对渠道账单"))]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "bill_date"], name="gateway_statement_once_per_day"),
            status_check("status", StatementStatus, name="gateway_statement_status_known"),
        ]

    def __str__(self):
        return f"{self.gateway} {self.bill_date}"


class DifferenceKind(models.TextChoices):
    MISSING_IN_BOOKS = "missing_in_books", _("渠道有、系统无")
    MISSING_AT_GATEWAY = "missing_at_gateway", _("系统有、渠道无")
    AMOUNT = "amount", _("金额不符")
    FEE = "fee", _("手续费不符")


class StatementDifference(models.Model):
    """One line finance must look at: what the gateway says, what Kamen's books say."""

    statement = models.ForeignKey(
        GatewayStatement, verbose_name=_("对账单"), on_delete=models.CASCADE, related_name="differences"
    )
    kind = models.CharField(_("差异类型"), max_length=20, choices=DifferenceKind.choices)
    is_refund = models.BooleanField(_("退款"), default=False)
    out_trade_no = models.CharField(_("商户订单号"), max_length=64, blank=True)
    out_refund_no = models.CharField(_("退款单号"), max_length=64, blank=True)
    gateway_trade_no = models.CharField(_("渠道交易号"), max_length=64, blank=True)
    statement_amount = models.DecimalField(_("账单金额"), **MONEY, null=True, blank=True)
    book_amount = models.DecimalField(_("系统金额"), **MONEY, null=True, blank=True)
    statement_fee = models.DecimalField(_("账单手续费"), **MONEY, null=True, blank=True)
    book_fee = models.DecimalField(_("系统手续费"), **MONEY, null=True, blank=True)

    class Meta:
        verbose_name = _("对账差异")
        verbose_name_plural = _("对账差异")
        ordering = ["statement_id", "id"]
        constraints = [
            status_check("kind", DifferenceKind, name="statement_difference_kind_known"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.out_refund_no or self.out_trade_no}"
# The open API's own tables (docking orders, refund requests) live beside its views.
from .api.models import ApiRefundRequest, DockingOrder  # noqa: E402,F401
