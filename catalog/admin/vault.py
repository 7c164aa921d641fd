"""Vault pages in the console. No secret column anywhere; revealing one is a separate,
permission-checked and audited page."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from catalog.models import CardKey, CardKeyBatch, CardKeyImport, StockAlert


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

    @admin.display(description=_("卡号"))
    def masked_card_no(self, card_key):
        return card_key.masked_card_no or "—"

    @admin.display(description=_("卡密"))
    def reveal_link(self, card_key):
        return format_html('<a href="{}">{}</a>', reverse("console:card-key-reveal", args=[card_key.pk]), _("查看"))


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
