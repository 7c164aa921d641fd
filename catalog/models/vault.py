"""The card-key vault: secrets encrypted at rest, a blind index for duplicates, import jobs."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from kamen.models import actor_field, created_at_field, status_check, updated_at_field

from .products import MONEY, Product


class CardKeyStatus(models.TextChoices):
    AVAILABLE = "available", _("可售")
    RESERVED = "reserved", _("已预留")
    SOLD = "sold", _("已售出")
    VOID = "void", _("已作废")


class ImportStatus(models.TextChoices):
    VALIDATING = "validating", _("校验中")
    VALIDATED = "validated", _("待确认")
    IMPORTING = "importing", _("导入中")
    COMPLETED = "completed", _("已完成")
    FAILED = "failed", _("失败")
    CANCELLED = "cancelled", _("已取消")


class CardKeyImport(models.Model):
    """A bulk import from paste or file: validated first, saved only after the merchant confirms.

    The raw text is kept encrypted between preview and confirmation, never in plaintext.
    """

    product = models.ForeignKey(Product, verbose_name=_("商品"), on_delete=models.PROTECT, related_name="imports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("创建人"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = created_at_field()
    status = models.CharField(_("状态"), max_length=20, choices=ImportStatus.choices, default=ImportStatus.VALIDATING)
    source_name = models.CharField(_("来源"), max_length=200, blank=True)
    input_format = models.CharField(_("格式"), max_length=20, default="auto")
    separator = models.CharField(_("分隔符"), max_length=8, blank=True)
    supplier = models.ForeignKey(
        "catalog.Supplier", verbose_name=_("货源"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    unit_cost = models.DecimalField(_("单张成本"), **MONEY, null=True, blank=True)
    default_expires_at = models.DateTimeField(_("默认到期时间"), null=True, blank=True)
    payload_ciphertext = models.BinaryField(_("加密原文"), editable=False)
    payload_key_id = models.CharField(max_length=32, editable=False)
    total_lines = models.PositiveIntegerField(_("总行数"), default=0)
    valid_count = models.PositiveIntegerField(_("有效"), default=0)
    rejected_count = models.PositiveIntegerField(_("拒绝"), default=0)
    rejected_lines = models.JSONField(_("拒绝明细"), default=list, blank=True)
    progress_total = models.PositiveIntegerField(_("进度总数"), default=0)
    progress_done = models.PositiveIntegerField(_("已处理"), default=0)
    imported_count = models.PositiveIntegerField(_("已导入"), default=0)
    error_message = models.CharField(_("错误信息"), max_length=500, blank=True)
    confirmed_by = actor_field(_("确认人"))
    confirmed_at = models.DateTimeField(_("确认时间"), null=True, blank=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("卡密导入")
        verbose_name_plural = _("卡密导入")
        ordering = ["-created_at", "-id"]
        constraints = [
            status_check("status", ImportStatus, name="card_key_import_status_known"),
            models.CheckConstraint(condition=Q(progress_done__lte=F("progress_total")), name="card_key_import_progress_bounded"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.product} ({self.get_status_display()})"


class CardKeyBatch(models.Model):
    """Keys that came in together: which supplier, at what cost, when, by whom."""

    product = models.ForeignKey(Product, verbose_name=_("商品"), on_delete=models.PROTECT, related_name="card_key_batches")
    supplier = models.ForeignKey(
        "catalog.Supplier", verbose_name=_("货源"), null=True, blank=True, on_delete=models.SET_NULL, related_name="card_key_batches"
    )
    import_job = models.OneToOneField(
        CardKeyImport, verbose_name=_("导入任务"), null=True, blank=True, on_delete=models.SET_NULL, related_name="batch"
    )
    unit_cost = models.DecimalField(_("单张成本"), **MONEY, null=True, blank=True)
    key_count = models.PositiveIntegerField(_("数量"), default=0)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("导入人"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    imported_at = models.DateTimeField(_("导入时间"), auto_now_add=True)
    note = models.CharField(_("备注"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("卡密批次")
        verbose_name_plural = _("卡密批次")
        ordering = ["-imported_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(unit_cost__isnull=True) | Q(unit_cost__gte=0), name="card_key_batch_cost_not_negative"),
            # What card keys' composite foreign key points at (see CardKey.batch).
            models.UniqueConstraint(fields=["id", "product"], name="card_key_batch_id_product_unique"),
        ]

    def __str__(self):
        return f"{self.product} #{self.pk} ({self.key_count})"


class CardKey(models.Model):
    """One secret, sold at most once. The secret is AES-GCM ciphertext; ``fingerprint`` is an
    HMAC (blind index) of card number and secret, unique, so a duplicate is refused without
    decrypting anything."""

    # No index of its own: card_key_product_status_idx (product, status) leads with it, and one
    # index fewer is one less to maintain for every key a bulk import writes.
    # On PostgreSQL both foreign keys are enforced by ONE composite constraint, (batch, product)
    # → the batch's (id, product) (migration 0007, card_key_batch_product_fk): the batch exists,
    # belongs to the same product, and that product is kept by the batch's own foreign key. One
    # check per key at commit instead of two, and a key can no longer name another product than
    # its batch. Altering either field later: drop and re-add that constraint around it.
    product = models.ForeignKey(
        Product,
        verbose_name=_("商品"),
        on_delete=models.PROTECT,
        related_name="card_keys",
        db_index=False,
        db_constraint=False,
    )
    batch = models.ForeignKey(
        CardKeyBatch, verbose_name=_("批次"), on_delete=models.PROTECT, related_name="card_keys", db_constraint=False
    )
    card_no = models.CharField(_("卡号"), max_length=128, blank=True)
    secret_ciphertext = models.BinaryField(_("密文"), editable=False)
    key_id = models.CharField(_("密钥编号"), max_length=32, editable=False)
    fingerprint = models.CharField(_("指纹"), max_length=64, editable=False)
    status = models.CharField(_("状态"), max_length=12, choices=CardKeyStatus.choices, default=CardKeyStatus.AVAILABLE)
    expires_at = models.DateTimeField(_("到期时间"), null=True, blank=True)
    created_at = created_at_field(_("入库时间"))
    reserved_at = models.DateTimeField(_("预留时间"), null=True, blank=True)
    sold_at = models.DateTimeField(_("售出时间"), null=True, blank=True)
    voided_at = models.DateTimeField(_("作废时间"), null=True, blank=True)
    # Reservations (orders issue): held for an unpaid order until ``reserved_until`` (None while
    # the order is paid and waiting for fulfilment); ``sold_to`` names the order that got it.
    reserved_for = models.CharField(_("预留给订单"), max_length=32, blank=True, default="", db_default="")
    reserved_until = models.DateTimeField(_("预留至"), null=True, blank=True)
    sold_to = models.CharField(_("售出订单"), max_length=32, blank=True, default="", db_default="")

    class Meta:
        verbose_name = _("卡密")
        verbose_name_plural = _("卡密")
        permissions = [
            ("reveal_cardkey_secret", _("可以查看卡密明文")),
            ("import_cardkeys", _("可以批量导入卡密")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["fingerprint"], name="card_key_fingerprint_unique"),
            status_check("status", CardKeyStatus, name="card_key_status_known"),
            models.CheckConstraint(
                condition=~Q(status="sold") | Q(sold_at__isnull=False), name="card_key_sold_has_time"
            ),
            models.CheckConstraint(
                condition=~Q(status="reserved") | ~Q(reserved_for=""), name="card_key_reserved_has_reference"
            ),
        ]
        indexes = [
            # The claim path: available keys of one product, oldest first / first expiring.
            models.Index(fields=["product", "id"], condition=Q(status="available"), name="card_key_available_idx"),
            models.Index(
                fields=["product", "expires_at", "id"], condition=Q(status="available"), name="card_key_available_exp_idx"
            ),
            models.Index(fields=["product", "status"], name="card_key_product_status_idx"),
            models.Index(fields=["key_id", "id"], name="card_key_key_id_idx"),
            # Also how the expiry job finds lapsed reservations (few: the unpaid orders' keys).
            # reserved_until has no index of its own, so holding a paid order's reservation
            # (reserved_until → NULL) can be a HOT update that touches no index.
            models.Index(fields=["reserved_for"], condition=Q(status="reserved"), name="card_key_reserved_for_idx"),
            models.Index(fields=["sold_to"], condition=~Q(sold_to=""), name="card_key_sold_to_idx"),
        ]

    def __str__(self):
        # Never the secret.
        return f"{self.product} · {self.masked_card_no or '#' + str(self.pk)}"

    @property
    def masked_card_no(self) -> str:
        if not self.card_no:
            return ""
        if len(self.card_no) <= 6:
            return self.card_no[:1] + "****"
        return f"{self.card_no[:3]}****{self.card_no[-3:]}"


class ReusableCardKey(models.Model):
    """循环卡密: every buyer of the product receives the same secret, up to a sales cap."""

    product = models.OneToOneField(Product, verbose_name=_("商品"), on_delete=models.CASCADE, related_name="reusable_key")
    secret_ciphertext = models.BinaryField(_("密文"), editable=False)
    key_id = models.CharField(_("密钥编号"), max_length=32, editable=False)
    sales_cap = models.PositiveIntegerField(_("销售上限"), null=True, blank=True, help_text=_("留空表示不限"))
    sold_count = models.PositiveIntegerField(_("已售"), default=0)
    is_active = models.BooleanField(_("启用"), default=True)
    created_at = created_at_field()
    updated_at = updated_at_field()

    class Meta:
        verbose_name = _("循环卡密")
        verbose_name_plural = _("循环卡密")
        constraints = [
            models.CheckConstraint(
                condition=Q(sales_cap__isnull=True) | Q(sold_count__lte=F("sales_cap")), name="reusable_key_within_cap"
            ),
        ]

    def __str__(self):
        return f"{self.product} ({self.sold_count}/{self.sales_cap or '∞'})"


class StockAlert(models.Model):
    """Raised when a product's available stock falls to its threshold; resolved when refilled."""

    product = models.ForeignKey(Product, verbose_name=_("商品"), on_delete=models.CASCADE, related_name="stock_alerts")
    threshold = models.PositiveIntegerField(_("预警值"))
    available_count = models.PositiveIntegerField(_("当时库存"))
    created_at = created_at_field(_("预警时间"))
    emailed_at = models.DateTimeField(_("邮件通知时间"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("解除时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("库存预警")
        verbose_name_plural = _("库存预警")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["product"], condition=Q(resolved_at__isnull=True), name="stock_alert_one_open_per_product"
            ),
        ]

    def __str__(self):
        return f"{self.product}: {self.available_count} ≤ {self.threshold}"
