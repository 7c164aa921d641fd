"""Vault pages in the console. No secret column anywhere; revealing one is a separate,
permission-checked and audited page. Secrets are entered write-only: a form never shows one back.
Every write goes through catalog.services (validated and audited)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from catalog import services
from catalog.models import (
    CardKey,
    CardKeyBatch,
    CardKeyImport,
    CardKeyStatus,
    Product,
    ProductType,
    ReusableCardKey,
    StockAlert,
)
from catalog.services.stock import VOID_REASON_MAX_LENGTH


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CardKey)
class CardKeyAdmin(ReadOnlyAdmin):
    list_display = ["id", "product", "masked_card_no", "status", "batch", "expires_at", "created_at", "sold_at", "reveal_link"]
    list_filter = ["status", "product"]
    list_select_related = ["product", "batch"]
    fields = ["product", "batch", "masked_card_no", "status", "key_id", "expires_at", "created_at", "sold_at", "voided_at"]
    readonly_fields = fields
    show_full_result_count = False
    actions = ["void_selected_keys"]

    def has_void_permission(self, request):
        return request.user.has_perm("catalog.change_cardkey")

    @admin.action(description=_("作废所选卡密"), permissions=["void"])
    def void_selected_keys(self, request, queryset):
        """Asks for a reason first (an intermediate page), then voids through the service:
        all or nothing, so a selection with a sold key changes nothing."""
        form = VoidCardKeysForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            try:
                voided = services.void_card_keys(
                    card_key_ids=queryset.values_list("pk", flat=True),
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                    request=request,
                )
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.message_user(
                    request, ngettext("已作废 %(count)d 张卡密", "已作废 %(count)d 张卡密", voided) % {"count": voided}
                )
            return None
        by_status = dict(queryset.order_by().values_list("status").annotate(total=Count("id")))
        return TemplateResponse(
            request,
            "catalog/console/stock_void_keys.html",
            self.admin_site.each_context(request)
            | {
                "title": gettext("作废卡密"),
                "opts": self.model._meta,
                "form": form,
                "preview": queryset.select_related("product")[:100],
                "selected_count": sum(by_status.values()),
                "available_count": by_status.get(CardKeyStatus.AVAILABLE, 0),
                "taken_count": by_status.get(CardKeyStatus.SOLD, 0) + by_status.get(CardKeyStatus.RESERVED, 0),
                "void_count": by_status.get(CardKeyStatus.VOID, 0),
                "selected_ids": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across", "0"),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.display(description=_("卡号"))
    def masked_card_no(self, card_key):
        return card_key.masked_card_no or "—"

    @admin.display(description=_("卡密"))
    def reveal_link(self, card_key):
        return format_html('<a href="{}">{}</a>', reverse("console:card-key-reveal", args=[card_key.pk]), _("查看"))


class VoidCardKeysForm(forms.Form):
    reason = forms.CharField(
        label=_("作废原因"),
        max_length=VOID_REASON_MAX_LENGTH,
        widget=forms.TextInput(attrs={"size": 60}),
        error_messages={"required": _("请填写作废原因")},
    )


@admin.register(CardKeyBatch)
class CardKeyBatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "product", "supplier", "key_count", "unit_cost", "imported_by", "imported_at", "note"]
    list_filter = ["product", "supplier"]
    list_select_related = ["product", "supplier", "imported_by"]


@admin.register(CardKeyImport)
class CardKeyImportAdmin(ReadOnlyAdmin):
    list_display = ["id", "product", "status", "source_name", "valid_count", "rejected_count", "imported_count", "created_by", "created_at", "detail_link"]
    list_filter = ["status", "product"]
    list_select_related = ["product", "created_by"]
    exclude = ["payload_ciphertext", "payload_key_id"]

    @admin.display(description=_("详情"))
    def detail_link(self, import_job):
        return format_html('<a href="{}">{}</a>', reverse("console:card-key-import-detail", args=[import_job.pk]), _("查看"))


@admin.register(StockAlert)
class StockAlertAdmin(ReadOnlyAdmin):
    list_display = ["product", "threshold", "available_count", "created_at", "emailed_at", "resolved_at"]
    list_filter = ["resolved_at"]


class ReusableCardKeyForm(forms.ModelForm):
    """The secret is a write-only field: never pre-filled, never rendered back. Left empty on
    change, the stored secret stays as it is."""

    new_secret = forms.CharField(
        label=_("循环卡密内容"),
        required=False,
        strip=True,
        max_length=services.REUSABLE_SECRET_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
        help_text=_("每位买家收到的相同内容（下载链接、教程等）。保存后不再显示；修改时留空表示不变。"),
    )

    class Meta:
        model = ReusableCardKey
        fields = ["product", "sales_cap", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "product" in self.fields:
            self.fields["product"].queryset = Product.objects.filter(
                product_type=ProductType.CARD_KEY, reusable_key__isnull=True
            ).order_by("name")
            self.fields["product"].help_text = _("启用循环卡密后，此商品发货时发送同一内容，不再消耗普通卡密库存。")

    def clean_sales_cap(self):
        sold = self.instance.sold_count if self.instance.pk else 0
        try:
            return services.validate_reusable_key_cap(self.cleaned_data.get("sales_cap"), sold_count=sold)
        except ValidationError as error:
            raise ValidationError(error.message_dict["sales_cap"]) from None

    def clean(self):
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("new_secret"):
            self.add_error("new_secret", gettext("请填写循环卡密内容"))
        return cleaned


@admin.register(ReusableCardKey)
class ReusableCardKeyAdmin(admin.ModelAdmin):
    form = ReusableCardKeyForm
    list_display = ["product", "sold_display", "is_active", "key_id", "updated_at", "reveal_link"]
    list_filter = ["is_active"]
    list_select_related = ["product"]
    search_fields = ["product__name"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["product", "new_secret", "sales_cap", "is_active"]
        return ["product", "sold_count", "new_secret", "sales_cap", "is_active", "key_id", "updated_at", "reveal_link"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["product", "sold_count", "key_id", "updated_at", "reveal_link"]

    def has_delete_permission(self, request, obj=None):
        # Deleting would forget how many were sold; deactivate instead.
        return False

    @admin.display(description=_("已售 / 上限"))
    def sold_display(self, reusable_key):
        cap = gettext("不限") if reusable_key.sales_cap is None else reusable_key.sales_cap
        return f"{reusable_key.sold_count} / {cap}"

    @admin.display(description=_("卡密"))
    def reveal_link(self, reusable_key):
        if reusable_key.pk is None:
            return "—"
        return format_html(
            '<a href="{}">{}</a>', reverse("console:reusable-key-reveal", args=[reusable_key.pk]), _("查看")
        )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        actor = request.user
        with transaction.atomic():
            if not change:
                reusable = services.set_reusable_key_secret(
                    product=data["product"], secret=data["new_secret"], actor=actor, request=request
                )
            else:
                reusable = ReusableCardKey.objects.get(pk=obj.pk)
                if data.get("new_secret"):
                    services.set_reusable_key_secret(product=reusable.product, secret=data["new_secret"], actor=actor, request=request)
            if not change or "sales_cap" in form.changed_data:
                services.set_reusable_key_cap(reusable_key=reusable, sales_cap=data.get("sales_cap"), actor=actor, request=request)
            if data.get("is_active", True) != reusable.is_active:
                if data.get("is_active", True):
                    services.activate_reusable_key(reusable_key=reusable, actor=actor, request=request)
                else:
                    services.deactivate_reusable_key(reusable_key=reusable, actor=actor, request=request)
        obj.pk = reusable.pk
        obj.refresh_from_db()
        obj._state.adding = False
