"""Docking from an upstream Kamen in the console (issue 17 §2): connect an upstream with its
URL and key, list its catalog, pick products, set the markup rule, import."""

from django import forms
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from catalog.models import Category, Supplier, SupplierAdapter, SupplierChannel
from catalog.services.upstream import import_upstream_products, parse_markup, upstream_catalog
from catalog.services.upstream_sync import connect_upstream, set_upstream_webhook_secret
from catalog.suppliers import SupplierError
from kamen import parsing
from kamen.site import site_url

# Connecting an upstream creates a supplier; importing creates products and sets their prices.
PERMISSIONS = ("catalog.add_supplier", "catalog.add_product", "catalog.change_product_price")


def _guard(view):
    return staff_member_required(permission_required(PERMISSIONS, raise_exception=True)(view))


class ConnectUpstreamForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("名称"), max_length=80)
    base_url = forms.CharField(
        label=gettext_lazy("上游地址"), max_length=300, help_text=gettext_lazy("例如 https://upstream.example.com/")
    )
    app_id = forms.CharField(label=gettext_lazy("密钥 ID"), max_length=80)
    app_secret = forms.CharField(
        label=gettext_lazy("密钥"), max_length=200, widget=forms.PasswordInput(attrs={"autocomplete": "off"})
    )
    webhook_secret = forms.CharField(
        label=gettext_lazy("回调密钥"),
        max_length=200,
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text=gettext_lazy("上游为本站设置回调地址时给出的密钥；留空则只靠每小时同步"),
    )
    low_balance_threshold = parsing.DecimalField(
        label=gettext_lazy("余额预警值"), required=False, min_value=0, max_digits=14, decimal_places=2
    )


class WebhookSecretForm(forms.Form):
    webhook_secret = forms.CharField(
        label=gettext_lazy("回调密钥"), max_length=200, widget=forms.PasswordInput(attrs={"autocomplete": "off"})
    )


class ImportForm(forms.Form):
    category = forms.ModelChoiceField(
        label=gettext_lazy("放入分类"), queryset=Category.objects.filter(is_active=True).order_by("name")
    )
    markup_kind = forms.ChoiceField(
        label=gettext_lazy("加价方式"),
        choices=[("percent", gettext_lazy("按比例（%）")), ("fixed", gettext_lazy("固定金额（元）"))],
    )
    markup_value = forms.CharField(label=gettext_lazy("加价"), max_length=20)
    rounding = forms.ChoiceField(
        label=gettext_lazy("取整"),
        choices=[("fen", gettext_lazy("到分")), ("jiao", gettext_lazy("到角")), ("yuan", gettext_lazy("到元"))],
    )


def _add_errors(form: forms.Form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, errors in error.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, error.messages)


@_guard
def upstream_list(request):
    form = ConnectUpstreamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            supplier = connect_upstream(actor=request.user, request=request, **form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("已连接上游“%(name)s”，请选择要导入的商品。") % {"name": supplier.name})
            return redirect("console:upstream-import", pk=supplier.pk)
    upstreams = Supplier.objects.filter(adapter=SupplierAdapter.KAMEN_API).order_by("name")
    return render(
        request,
        "catalog/console/upstream_list.html",
        {"form": form, "upstreams": upstreams, "title": _("对接上游")},
    )


def _callback_url(supplier: Supplier) -> str:
    return site_url(reverse("distribution:upstream-webhook", kwargs={"supplier_pk": supplier.pk}))


@_guard
def upstream_import(request, pk):
    supplier = get_object_or_404(Supplier, pk=pk, adapter=SupplierAdapter.KAMEN_API)
    form = ImportForm(request.POST if request.POST.get("action") == "import" else None)
    secret_form = WebhookSecretForm(request.POST if request.POST.get("action") == "webhook" else None)
    chosen = request.POST.getlist("skus") if form.is_bound else []
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            markup = parse_markup(kind=data["markup_kind"], value=data["markup_value"], rounding=data["rounding"])
            products = import_upstream_products(
                supplier=supplier,
                skus=chosen,
                markup=markup,
                category=data["category"],
                actor=request.user,
                request=request,
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(
                request,
                _("已导入 %(count)s 个商品：%(names)s")
                % {"count": len(products), "names": "、".join(product.name for product in products)},
            )
            return redirect("console:upstream-import", pk=supplier.pk)
    if secret_form.is_bound and secret_form.is_valid():
        try:
            set_upstream_webhook_secret(
                supplier=supplier,
                secret=secret_form.cleaned_data["webhook_secret"],
                actor=request.user,
                request=request,
            )
        except ValidationError as error:
            _add_errors(secret_form, error)
        else:
            messages.success(request, _("回调密钥已保存。"))
            return redirect("console:upstream-import", pk=supplier.pk)
    catalog, catalog_error = [], ""
    try:
        catalog = upstream_catalog(supplier=supplier)
    except (SupplierError, ValidationError) as error:
        catalog_error = _("读取上游商品失败：%(error)s") % {"error": error}
    docked = dict(SupplierChannel.objects.filter(supplier=supplier).values_list("supplier_sku", "product__name"))
    return render(
        request,
        "catalog/console/upstream_import.html",
        {
            "supplier": supplier,
            "form": form,
            "secret_form": secret_form,
            "catalog": [(item, docked.get(item.sku)) for item in catalog],
            "catalog_error": catalog_error,
            "chosen": set(chosen),
            "callback_url": _callback_url(supplier),
            "has_webhook_secret": bool(supplier.webhook_secret_ciphertext),
            "title": _("从上游导入商品"),
        },
    )


urlpatterns = [
    path("upstreams/", upstream_list, name="upstreams"),
    path("upstreams/<int:pk>/import/", upstream_import, name="upstream-import"),
]
