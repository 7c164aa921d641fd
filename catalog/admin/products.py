"""Merchant console (admin) pages for products and categories.

Every save goes through catalog.services, so admin edits are validated and audited exactly like
any other change; the forms run the same validation first so errors show beside the fields."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from mptt.admin import MPTTModelAdmin, TreeRelatedFieldListFilter

from catalog import selectors, services
from catalog.images import process_product_image
from catalog.models import (
    BundleItem,
    Category,
    Product,
    ProductCustomField,
    ProductImage,
    ProductType,
)
from kamen.money import format_cny
from kamen.setting_checks import SettingChangeAdminMixin


def _add_service_errors(form: forms.BaseForm, error: ValidationError) -> None:
    """Show a service's ValidationError beside the matching form fields (or on top)."""
    if hasattr(error, "error_dict"):
        for name, field_errors in error.message_dict.items():
            form.add_error(name if name in form.fields else None, field_errors)
    else:
        form.add_error(None, error.messages)


# --- inlines ----------------------------------------------------------------------------------
class CustomFieldInline(admin.TabularInline):
    model = ProductCustomField
    extra = 0
    fields = ["name", "label", "field_type", "is_required", "regex", "help_text", "sort_order"]


class BundleItemForm(forms.ModelForm):
    class Meta:
        model = BundleItem
        fields = ["component", "quantity"]

    def clean_component(self):
        component = self.cleaned_data["component"]
        bundle = self.instance.bundle if self.instance.bundle_id else getattr(self, "parent_product", None)
        if component is not None and component.product_type == ProductType.BUNDLE:
            raise ValidationError(gettext("套餐不能包含另一个套餐"))
        if component is not None and bundle is not None and component.pk == bundle.pk:
            raise ValidationError(gettext("套餐不能包含它自己"))
        return component


class BundleItemFormSet(forms.BaseInlineFormSet):
    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        form.parent_product = self.instance
        return form

    def clean(self):
        super().clean()
        has_items = any(
            form.cleaned_data and not form.cleaned_data.get("DELETE", False) for form in self.forms if form.is_valid()
        )
        if has_items and self.instance.product_type != ProductType.BUNDLE:
            raise ValidationError(gettext("只有套餐类型的商品才能添加套餐内容"))


class BundleItemInline(admin.TabularInline):
    model = BundleItem
    fk_name = "bundle"
    form = BundleItemForm
    formset = BundleItemFormSet
    extra = 0
    autocomplete_fields = ["component"]
    verbose_name = _("套餐内容")
    verbose_name_plural = _("套餐内容（仅套餐类型）")


class ProductImageInline(admin.TabularInline):
    """Existing images: preview, order, delete. New images come through the upload field above,
    so they are checked and cleaned by the image service."""

    model = ProductImage
    extra = 0
    fields = ["preview", "sort_order", "width", "height"]
    readonly_fields = ["preview", "width", "height"]

    @admin.display(description=_("预览"))
    def preview(self, image):
        source = image.thumbnail or image.image
        if not source:
            return "—"
        return format_html('<img src="{}" alt="" style="max-height:80px">', source.url)

    def has_add_permission(self, request, obj=None):
        return False


# --- product ----------------------------------------------------------------------------------
class ProductAdminForm(forms.ModelForm):
    new_image = forms.FileField(
        label=_("上传图片"),
        required=False,
        help_text=_("JPEG / PNG / WebP / GIF；保存时会去除 EXIF 并生成缩略图"),
    )

    class Meta:
        model = Product
        fields = "__all__"

    def clean_new_image(self):
        upload = self.cleaned_data.get("new_image")
        if upload:
            process_product_image(upload)  # raises a ValidationError with a clear message
            upload.seek(0)
        return upload

    def clean(self):
        cleaned = super().clean()
        values = {name: getattr(self.instance, name) for name in services.PRODUCT_FIELDS} if self.instance.pk else {}
        values |= {name: cleaned[name] for name in services.PRODUCT_FIELDS if name in cleaned}
        for name in services.PRODUCT_FIELDS:
            if name in self.errors:  # already reported by the field itself
                values.pop(name, None)
        try:
            normalised = services.validate_product_fields(
                values=values, product=self.instance if self.instance.pk else None
            )
        except ValidationError as error:
            known = {name: messages for name, messages in error.message_dict.items() if name not in self.errors}
            if known:
                _add_service_errors(self, ValidationError(known))
            return cleaned
        if "description" in cleaned:
            cleaned["description"] = normalised["description"]
        return cleaned


class StockCountFilter(admin.SimpleListFilter):
    title = _("库存")
    parameter_name = "stock"

    def lookups(self, request, model_admin):
        return [("empty", _("卡密缺货")), ("low", _("低于预警值"))]

    def queryset(self, request, queryset):
        if self.value() == "empty":
            return queryset.filter(product_type=ProductType.CARD_KEY, available_count=0)
        if self.value() == "low":
            from django.db.models import F

            return queryset.filter(product_type=ProductType.CARD_KEY, available_count__lte=F("low_stock_threshold"))
        return queryset


@admin.register(Product)
class ProductAdmin(SettingChangeAdminMixin, admin.ModelAdmin):
    form = ProductAdminForm
    list_display = [
        "name",
        "category",
        "product_type",
        "retail_price_display",
        "cost_price_display",
        "margin_display",
        "available_display",
        "sold_display",
        "is_on_shelf",
    ]
    list_display_links = ["name"]
    list_filter = ["product_type", "is_on_shelf", ("category", TreeRelatedFieldListFilter), StockCountFilter]
    search_fields = ["name", "category__name"]
    list_select_related = ["category"]
    list_per_page = 50
    actions = ["put_on_shelf_action", "take_off_shelf_action"]
    inlines = [CustomFieldInline, ProductImageInline, BundleItemInline]
    fieldsets = [
        (None, {"fields": ["category", "name", "product_type", "sort_order"]}),
        (_("价格"), {"fields": ["face_value", "retail_price", "cost_price", "max_resale_price"]}),
        (_("上下架"), {"fields": ["is_on_shelf", "off_shelf_reason"]}),
        (
            _("购买与库存"),
            {
                "fields": [
                    "min_quantity_per_order",
                    "max_quantity_per_order",
                    "purchase_limit_per_buyer",
                    "delivery_order",
                    "low_stock_threshold",
                    "supplier_cost_ceiling",
                    "redemption_mode",
                ]
            },
        ),
        (
            _("直充账号"),
            {
                "fields": ["recharge_target_rule", "recharge_target_regex", "recharge_target_label"],
                "description": _("直充商品必须设置校验规则，买家下单时按此校验充值账号"),
            },
        ),
        (_("描述与图片"), {"fields": ["description", "new_image"]}),
    ]

    def get_queryset(self, request) -> QuerySet[Product]:
        # Annotated counts and margin: the list page costs one query, whatever its length.
        return selectors.products_for_console()

    def get_readonly_fields(self, request, obj=None):
        if request.user.has_perm("catalog.change_product_price"):
            return []
        return list(services.PRICE_FIELDS)

    # columns
    @admin.display(description=_("零售价"), ordering="retail_price")
    def retail_price_display(self, product):
        return format_cny(product.retail_price)

    @admin.display(description=_("成本价"), ordering="cost_price")
    def cost_price_display(self, product):
        return format_cny(product.cost_price)

    @admin.display(description=_("毛利"), ordering="margin")
    def margin_display(self, product):
        return format_cny(product.margin)

    @admin.display(description=_("可售卡密"), ordering="available_count")
    def available_display(self, product):
        if product.product_type != ProductType.CARD_KEY:
            return "—"
        if product.available_count <= product.low_stock_threshold:
            return format_html('<strong class="stock-low">{}</strong>', product.available_count)
        return product.available_count

    @admin.display(description=_("已售卡密"), ordering="sold_count")
    def sold_display(self, product):
        return product.sold_count if product.product_type == ProductType.CARD_KEY else "—"

    # saving through the services
    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            fields = {name: data[name] for name in services.PRODUCT_FIELDS if name in data}
            product = services.create_product(actor=request.user, request=request, **fields)
            obj.pk = product.pk
            obj.refresh_from_db()
            obj._state.adding = False
            return
        changes = {name: data[name] for name in form.changed_data if name in services.PRODUCT_FIELDS}
        if changes:
            services.update_product(product=obj, actor=request.user, request=request, **changes)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        upload = form.cleaned_data.get("new_image")
        if upload:
            services.add_product_image(product=form.instance, upload=upload, actor=request.user, request=request)

    def save_formset(self, request, form, formset, change):
        product = form.instance
        formset.save(commit=False)
        for deleted in formset.deleted_objects:
            if isinstance(deleted, ProductCustomField):
                services.remove_custom_field(field=deleted, actor=request.user, request=request)
            elif isinstance(deleted, BundleItem):
                services.remove_bundle_item(item=deleted, actor=request.user, request=request)
            elif isinstance(deleted, ProductImage):
                services.remove_product_image(image=deleted, actor=request.user, request=request)
        for instance in formset.new_objects + [changed for changed, _fields in formset.changed_objects]:
            if isinstance(instance, ProductCustomField):
                services.save_custom_field(
                    product=product,
                    actor=request.user,
                    request=request,
                    field=instance if instance.pk else None,
                    **{name: getattr(instance, name) for name in CustomFieldInline.fields},
                )
            elif isinstance(instance, BundleItem):
                services.add_bundle_item(
                    bundle=product,
                    component=instance.component,
                    quantity=instance.quantity,
                    actor=request.user,
                    request=request,
                )
            elif isinstance(instance, ProductImage):
                instance.save(update_fields=["sort_order"])

    def delete_model(self, request, obj):
        raise PermissionDenied(gettext("商品不能删除，请下架"))

    def has_delete_permission(self, request, obj=None):
        # Orders and card keys refer to products; a product leaves the shop by going off shelf.
        return False

    # actions
    @admin.action(description=_("上架所选商品"), permissions=["change"])
    def put_on_shelf_action(self, request, queryset):
        self._shelf_action(request, queryset, on_shelf=True)

    @admin.action(description=_("下架所选商品"), permissions=["change"])
    def take_off_shelf_action(self, request, queryset):
        self._shelf_action(request, queryset, on_shelf=False)

    def _shelf_action(self, request, queryset, *, on_shelf: bool):
        done, refused = 0, []
        for product in queryset.order_by("pk"):
            if product.is_on_shelf == on_shelf:
                continue
            try:
                if on_shelf:
                    services.put_on_shelf(product=product, actor=request.user, request=request)
                else:
                    services.take_off_shelf(
                        product=product, actor=request.user, reason=gettext("后台批量下架"), request=request
                    )
                done += 1
            except ValidationError as error:
                refused.append(f"{product.name}：{'；'.join(error.messages)}")
        if done:
            message = gettext("已上架 %(count)d 个商品") if on_shelf else gettext("已下架 %(count)d 个商品")
            self.message_user(request, message % {"count": done}, messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.ERROR)


# --- category ---------------------------------------------------------------------------------
class CategoryAdminForm(forms.ModelForm):
    class Meta:
        model = Category
        fields = ["name", "slug", "parent", "sort_order", "is_active"]

    def clean_parent(self):
        parent = self.cleaned_data.get("parent")
        if parent is not None and self.instance.pk:
            if parent.pk == self.instance.pk or parent.is_descendant_of(self.instance):
                raise ValidationError(gettext("不能把分类移动到它自己或它的下级分类之下"))
        return parent


@admin.register(Category)
class CategoryAdmin(MPTTModelAdmin):
    form = CategoryAdminForm
    list_display = ["name", "slug", "sort_order", "is_active", "product_count"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    mptt_level_indent = 20

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(products_total=Count("products"))

    @admin.display(description=_("商品数"), ordering="products_total")
    def product_count(self, category):
        return category.products_total

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            category = services.create_category(
                actor=request.user,
                request=request,
                name=data["name"],
                slug=data["slug"],
                parent=data.get("parent"),
                sort_order=data.get("sort_order") or 0,
                is_active=data.get("is_active", True),
            )
            obj.pk = category.pk
            obj.refresh_from_db()
            obj._state.adding = False
            return
        changes = {name: data[name] for name in form.changed_data if name in form.Meta.fields}
        if changes:
            services.update_category(category=obj, actor=request.user, request=request, **changes)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions
