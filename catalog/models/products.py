from decimal import Decimal

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from mptt.models import MPTTModel, TreeForeignKey

from kamen.models import created_at_field, status_check, updated_at_field
from kamen.money import MONEY  # noqa: E402  (one definition for every money column)


class Category(MPTTModel):
    name = models.CharField(_("名称"), max_length=64)
    slug = models.SlugField(_("标识"), max_length=64, unique=True, allow_unicode=True)
    parent = TreeForeignKey(
        "self",
        verbose_name=_("上级分类"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
    )
    sort_order = models.PositiveIntegerField(_("排序"), default=0)
    is_active = models.BooleanField(_("启用"), default=True)

    class MPTTMeta:
        order_insertion_by = ["sort_order", "name"]

    class Meta:
        verbose_name = _("分类")
        verbose_name_plural = _("分类")

    def __str__(self):
        return self.name


class ProductType(models.TextChoices):
    CARD_KEY = "card_key", _("卡密（自动发货）")
    DIRECT_RECHARGE = "direct_recharge", _("直充")
    MANUAL = "manual", _("人工发货")
    BUNDLE = "bundle", _("套餐")


class RechargeTargetRule(models.TextChoices):
    """How a direct top-up validates the buyer's target (phone, QQ, game UID ...)."""

    NONE = "", _("不适用")
    MOBILE = "mobile", _("中国大陆手机号")
    QQ = "qq", _("QQ 号")
    EMAIL = "email", _("邮箱")
    GAME_UID = "game_uid", _("游戏 UID（数字）")
    REGEX = "regex", _("自定义正则")


class DeliveryOrder(models.TextChoices):
    OLDEST_FIRST = "oldest_first", _("先入库先发")
    FIRST_EXPIRING = "first_expiring", _("先到期先发")
    RANDOM = "random", _("随机")


class RedemptionMode(models.TextChoices):
    """Voucher-style products (核销): the buyer gets a code to show at a store."""

    NONE = "none", _("无需核销")
    CODE = "code", _("券码核销")
    CODE_AND_DYNAMIC = "code_and_dynamic", _("券码 + 30 秒动态码核销")


class Product(models.Model):
    category = models.ForeignKey(
        Category, verbose_name=_("分类"), on_delete=models.PROTECT, related_name="products"
    )
    name = models.CharField(_("名称"), max_length=120)
    product_type = models.CharField(_("商品类型"), max_length=20, choices=ProductType.choices)
    face_value = models.DecimalField(_("面值"), **MONEY, null=True, blank=True)
    retail_price = models.DecimalField(_("零售价"), **MONEY)
    cost_price = models.DecimalField(_("成本价"), **MONEY, default=Decimal("0.00"))
    # The most a distributor's sub-store may charge; empty means the retail price.
    max_resale_price = models.DecimalField(_("分站最高售价"), **MONEY, null=True, blank=True)
    is_on_shelf = models.BooleanField(_("上架"), default=False)
    min_quantity_per_order = models.PositiveIntegerField(_("单次最少购买"), default=1)
    max_quantity_per_order = models.PositiveIntegerField(_("单次最多购买"), default=10)
    purchase_limit_per_buyer = models.PositiveIntegerField(
        _("每位买家限购"), null=True, blank=True, help_text=_("留空表示不限")
    )
    description = models.TextField(_("商品描述"), blank=True, help_text=_("支持富文本，保存时自动清理不安全内容"))
    recharge_target_rule = models.CharField(
        _("充值账号校验"), max_length=20, choices=RechargeTargetRule.choices, blank=True, default=""
    )
    recharge_target_regex = models.CharField(_("充值账号正则"), max_length=200, blank=True)
    recharge_target_label = models.CharField(_("充值账号名称"), max_length=40, blank=True)
    delivery_order = models.CharField(
        _("发卡顺序"), max_length=20, choices=DeliveryOrder.choices, default=DeliveryOrder.OLDEST_FIRST
    )
    low_stock_threshold = models.PositiveIntegerField(_("低库存预警值"), default=10)
    # Direct top-ups: a supplier channel above this cost is skipped (None: the retail price).
    supplier_cost_ceiling = models.DecimalField(_("货源成本上限"), **MONEY, null=True, blank=True)
    # Sold through an upstream Kamen (docking, ADR 0019): card keys are bought from the
    # upstream when an order is paid (none held in our vault before), top-ups forwarded to it;
    # when no channel can serve, the order waits as a back-order.
    is_sourced_upstream = models.BooleanField(
        _("上游对接发货"), default=False, db_default=False, help_text=_("付款后向上游站点采购卡密或转发充值")
    )
    off_shelf_reason = models.CharField(_("下架原因"), max_length=200, blank=True)
    # A product docked from an upstream Kamen: the upstream's stock count, shown like local
    # stock (catalog.services.upstream_sync keeps it); None for anything not counted upstream.
    upstream_stock = models.PositiveIntegerField(_("上游库存"), null=True, blank=True, editable=False)
    sort_order = models.PositiveIntegerField(_("排序"), default=0)
    redemption_mode = models.CharField(
        _("核销方式"),
        max_length=20,
        choices=RedemptionMode.choices,
        default=RedemptionMode.NONE,
        db_default=RedemptionMode.NONE,
        help_text=_("券类商品：发货后买家获得券码和二维码，由门店或工作人员核销一次"),
    )
    created_at = created_at_field()
    updated_at = updated_at_field()

    class Meta:
        verbose_name = _("商品")
        verbose_name_plural = _("商品")
        ordering = ["sort_order", "id"]
        permissions = [
            ("change_product_price", _("可以修改商品价格")),
        ]
        constraints = [
            status_check("product_type", ProductType, name="product_type_known"),
            models.CheckConstraint(condition=Q(retail_price__gt=0), name="product_retail_price_positive"),
            models.CheckConstraint(condition=Q(cost_price__gte=0), name="product_cost_not_negative"),
            models.CheckConstraint(
                condition=Q(face_value__isnull=True) | Q(face_value__gt=0), name="product_face_value_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_resale_price__isnull=True) | Q(max_resale_price__gte=F("retail_price")),
                name="product_max_resale_not_below_retail",
            ),
            models.CheckConstraint(condition=Q(min_quantity_per_order__gte=1), name="product_min_quantity_positive"),
            models.CheckConstraint(
                condition=Q(max_quantity_per_order__gte=F("min_quantity_per_order")),
                name="product_max_quantity_not_below_min",
            ),
            models.CheckConstraint(
                condition=Q(purchase_limit_per_buyer__isnull=True) | Q(purchase_limit_per_buyer__gte=1),
                name="product_purchase_limit_positive",
            ),
        ]
        indexes = [models.Index(fields=["is_on_shelf", "category"])]

    def __str__(self):
        return self.name


class ProductImage(models.Model):
    product = models.ForeignKey(Product, verbose_name=_("商品"), on_delete=models.CASCADE, related_name="images")
    image = models.ImageField(_("图片"), upload_to="products/%Y/%m/")
    thumbnail = models.ImageField(_("缩略图"), upload_to="products/thumbs/%Y/%m/", blank=True)
    width = models.PositiveIntegerField(_("宽"), default=0)
    height = models.PositiveIntegerField(_("高"), default=0)
    sort_order = models.PositiveIntegerField(_("排序"), default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("商品图片")
        verbose_name_plural = _("商品图片")
        ordering = ["sort_order", "id"]

    def __str__(self):
        return self.image.name


class CustomFieldType(models.TextChoices):
    TEXT = "text", _("文本")
    NUMBER = "number", _("数字")
    EMAIL = "email", _("邮箱")
    MOBILE = "mobile", _("手机号")
    QQ = "qq", _("QQ 号")


class ProductCustomField(models.Model):
    """An extra field the buyer fills in at checkout (game server, character name ...)."""

    product = models.ForeignKey(
        Product, verbose_name=_("商品"), on_delete=models.CASCADE, related_name="custom_fields"
    )
    name = models.SlugField(_("字段标识"), max_length=40)
    label = models.CharField(_("显示名称"), max_length=40)
    field_type = models.CharField(_("类型"), max_length=10, choices=CustomFieldType.choices, default="text")
    is_required = models.BooleanField(_("必填"), default=True)
    regex = models.CharField(_("校验正则"), max_length=200, blank=True)
    help_text = models.CharField(_("提示"), max_length=120, blank=True)
    sort_order = models.PositiveIntegerField(_("排序"), default=0)

    class Meta:
        verbose_name = _("买家自定义字段")
        verbose_name_plural = _("买家自定义字段")
        ordering = ["sort_order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "name"], name="custom_field_name_unique_per_product"),
            status_check("field_type", CustomFieldType, name="custom_field_type_known"),
        ]

    def __str__(self):
        return self.label


class BundleItem(models.Model):
    """One component of a bundle (套餐)."""

    bundle = models.ForeignKey(Product, verbose_name=_("套餐"), on_delete=models.CASCADE, related_name="bundle_items")
    component = models.ForeignKey(
        Product, verbose_name=_("包含商品"), on_delete=models.PROTECT, related_name="part_of_bundles"
    )
    quantity = models.PositiveIntegerField(_("数量"), default=1)

    class Meta:
        verbose_name = _("套餐内容")
        verbose_name_plural = _("套餐内容")
        constraints = [
            models.UniqueConstraint(fields=["bundle", "component"], name="bundle_component_unique"),
            models.CheckConstraint(condition=~Q(bundle=F("component")), name="bundle_not_self"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="bundle_quantity_positive"),
        ]

    def __str__(self):
        return f"{self.component} × {self.quantity}"
