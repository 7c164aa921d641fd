"""Merchant console pages for suppliers (货源), their channels, alerts and top-up attempts, and
for the sandbox supplier Kamen ships.

Secrets are write-only: the form has an empty password box ("leave empty to keep"), the stored
ciphertext is never a field, and audit rows show "***". Every save goes through the services,
so console edits are validated and audited like any other change.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from catalog import services
from catalog.models import (
    SandboxAccount,
    SandboxOrder,
    SandboxSku,
    Supplier,
    SupplierAlert,
    SupplierChannel,
    SupplierPriceChange,
    SupplierRechargeAttempt,
)
from catalog.sandbox_services import set_account_secret
from kamen.audit import diff_fields, record_audit


def _add_service_errors(form: forms.BaseForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, field_errors in error.message_dict.items():
            form.add_error(name if name in form.fields else None, field_errors)
    else:
        form.add_error(None, error.messages)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- suppliers and channels ----------------------------------------------------------------------
class SupplierAdminForm(forms.ModelForm):
    # A plain text box: the service checks the URL, accepting in-cluster host names without a TLD.
    base_url = forms.CharField(label=_("接口地址"), max_length=300)
    app_secret = forms.CharField(
        label=_("App 密钥"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("只写不读：保存后加密存储，不会再显示。修改时留空表示保持不变。"),
    )

    class Meta:
        model = Supplier
        fields = ["name", "adapter", "base_url", "app_id", "app_secret", "is_active", "low_balance_threshold"]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            services.validate_supplier_fields(
                values={name: cleaned.get(name) for name in services.SUPPLIER_FIELDS},
                app_secret=cleaned.get("app_secret"),
                is_new=self.instance.pk is None,
            )
        except ValidationError as error:
            _add_service_errors(self, error)
        return cleaned


class SupplierChannelForm(forms.ModelForm):
    class Meta:
        model = SupplierChannel
        fields = ["product", "supplier_sku", "priority", "cost", "cost_ceiling", "is_active"]

    def clean(self):
        cleaned = super().clean()
        if self.errors or not self.has_changed() or cleaned.get("DELETE"):
            return cleaned
        supplier = getattr(self, "parent_supplier", None)
        try:
            services.validate_channel_fields(
                values={name: cleaned.get(name) for name in self.Meta.fields}
                | {"supplier": supplier if supplier is not None and supplier.pk else Supplier(name="?")}
            )
        except ValidationError as error:
            _add_service_errors(self, error)
        return cleaned


class SupplierChannelFormSet(forms.BaseInlineFormSet):
    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        form.parent_supplier = self.instance
        return form

    def clean(self):
        super().clean()
        for form in self.deleted_forms:
            if form.instance.pk and form.instance.attempts.exists():
                raise ValidationError(gettext("渠道“%(channel)s”已有直充记录，不能删除；请改为停用") % {"channel": form.instance})


class SupplierChannelInline(admin.TabularInline):
    model = SupplierChannel
    form = SupplierChannelForm
    formset = SupplierChannelFormSet
    extra = 0
    autocomplete_fields = ["product"]
    fields = [
        "product", "supplier_sku", "priority", "cost", "cost_ceiling", "is_active",
        "is_in_stock", "consecutive_failures", "circuit_open_until", "cost_synced_at", "last_error",
    ]
    readonly_fields = ["is_in_stock", "consecutive_failures", "circuit_open_until", "cost_synced_at", "last_error"]


@admin.register(Supplier)
class SupplierAdmin(admin.ModelAdmin):
    form = SupplierAdminForm
    inlines = [SupplierChannelInline]
    list_display = [
        "name", "adapter", "is_active", "balance", "low_balance_threshold", "balance_synced_at",
        "open_alert_count", "last_sync_error",
    ]
    list_filter = ["adapter", "is_active"]
    search_fields = ["name", "app_id"]
    readonly_fields = ["balance", "balance_synced_at", "prices_synced_at", "last_sync_error", "created_at"]
    fieldsets = [
        (None, {"fields": ["name", "adapter", "base_url", "app_id", "app_secret", "is_active"]}),
        (_("余额与同步"), {"fields": ["balance", "low_balance_threshold", "balance_synced_at", "prices_synced_at", "last_sync_error", "created_at"]}),
    ]
    actions = ["sync_now"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            open_alerts=Count("alerts", filter=Q(alerts__resolved_at__isnull=True))
        )

    @admin.display(description=_("未处理预警"), ordering="open_alerts")
    def open_alert_count(self, supplier):
        return supplier.open_alerts

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = {name: data.get(name) for name in services.SUPPLIER_FIELDS}
        if not change:
            supplier = services.create_supplier(actor=request.user, request=request, app_secret=data["app_secret"], **fields)
            obj.pk = supplier.pk
            obj.refresh_from_db()
            obj._state.adding = False
            return
        services.update_supplier(supplier=obj, actor=request.user, request=request, app_secret=data.get("app_secret") or None, **fields)

    def save_formset(self, request, form, formset, change):
        if formset.model is not SupplierChannel:
            return super().save_formset(request, form, formset, change)
        supplier = form.instance
        # What the admin's own change message reads; filled as the services save.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for channel_form in formset.forms:
            if not hasattr(channel_form, "cleaned_data") or not channel_form.cleaned_data:
                continue
            instance = channel_form.instance
            if channel_form in formset.deleted_forms:
                if instance.pk:
                    services.delete_supplier_channel(channel=instance, actor=request.user, request=request)
                    formset.deleted_objects.append(instance)
                continue
            if not channel_form.has_changed():
                continue
            values = {name: channel_form.cleaned_data.get(name) for name in SupplierChannelForm.Meta.fields}
            is_new = instance.pk is None
            saved = services.save_supplier_channel(
                actor=request.user,
                channel=None if is_new else instance,
                request=request,
                supplier=supplier,
                **values,
            )
            if is_new:
                formset.new_objects.append(saved)
            else:
                formset.changed_objects.append((saved, channel_form.changed_data))

    @admin.action(description=_("立即同步价格与余额"))
    def sync_now(self, request, queryset):
        for supplier in queryset:
            report = services.sync_supplier(supplier=supplier)
            if report.error:
                self.message_user(request, gettext("%(supplier)s 同步失败：%(error)s") % {"supplier": supplier, "error": report.error}, messages.ERROR)
            else:
                self.message_user(
                    request,
                    gettext("%(supplier)s 已同步：余额 %(balance)s，%(changes)s 个价格变动，%(off)s 个商品自动下架")
                    % {"supplier": supplier, "balance": report.balance, "changes": report.price_changes, "off": len(report.taken_off_shelf)},
                )


@admin.register(SupplierAlert)
class SupplierAlertAdmin(ReadOnlyAdmin):
    list_display = ["kind", "supplier", "product", "message", "created_at", "emailed_at", "resolved_at"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter), "supplier"]
    list_select_related = ["supplier", "product"]


@admin.register(SupplierRechargeAttempt)
class SupplierRechargeAttemptAdmin(ReadOnlyAdmin):
    list_display = ["reference", "product", "supplier", "status", "out_order_no", "supplier_order_no", "cost", "created_at", "finished_at", "message"]
    list_filter = ["status", "supplier"]
    list_select_related = ["product", "supplier"]
    search_fields = ["reference", "out_order_no", "supplier_order_no"]


@admin.register(SupplierPriceChange)
class SupplierPriceChangeAdmin(ReadOnlyAdmin):
    list_display = ["channel", "old_cost", "new_cost", "created_at"]
    list_select_related = ["channel__product", "channel__supplier"]
    list_filter = ["channel__supplier"]


# --- the sandbox supplier ------------------------------------------------------------------------
SANDBOX_ACCOUNT_FIELDS = ["name", "app_id", "balance", "is_active", "latency_ms", "failure_rate", "pending_rate"]


class SandboxAccountForm(forms.ModelForm):
    app_secret = forms.CharField(
        label=_("App 密钥"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("只写不读。修改时留空表示保持不变。"),
    )

    class Meta:
        model = SandboxAccount
        fields = SANDBOX_ACCOUNT_FIELDS + ["app_secret"]

    def clean(self):
        cleaned = super().clean()
        secret = cleaned.get("app_secret")
        if self.instance.pk is None or secret:
            try:
                set_account_secret(self.instance, secret or "")
            except ValidationError as error:
                _add_service_errors(self, error)
        return cleaned


@admin.register(SandboxAccount)
class SandboxAccountAdmin(admin.ModelAdmin):
    """Rehearse failures: slow answers, failures, 'processing' answers, a low balance."""

    form = SandboxAccountForm
    list_display = ["name", "app_id", "balance", "is_active", "latency_ms", "failure_rate", "pending_rate"]

    def save_model(self, request, obj, form, change):
        before = {name: form.initial.get(name) for name in SANDBOX_ACCOUNT_FIELDS} if change else {}
        super().save_model(request, obj, form, change)
        changes = diff_fields(before=before, after={name: getattr(obj, name) for name in SANDBOX_ACCOUNT_FIELDS})
        if form.cleaned_data.get("app_secret"):
            changes["app_secret"] = ["***", "***"]
        record_audit(actor=request.user, action="catalog.sandbox_account." + ("update" if change else "create"), target=obj, changes=changes, request=request)


@admin.register(SandboxSku)
class SandboxSkuAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price", "stock", "is_out_of_stock", "updated_at"]
    list_editable = ["price", "stock", "is_out_of_stock"]
    search_fields = ["sku", "name"]


@admin.register(SandboxOrder)
class SandboxOrderAdmin(ReadOnlyAdmin):
    list_display = ["order_no", "account", "out_order_no", "sku", "target", "quantity", "amount", "status", "created_at"]
    list_filter = ["status", "account"]
    search_fields = ["order_no", "out_order_no"]
