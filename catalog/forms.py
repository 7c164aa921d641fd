from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from catalog.importing import ImportFileError, decode_import_file
from catalog.models import Product, ProductType, Supplier
from kamen import parsing


class CardKeyImportForm(forms.Form):
    product = forms.ModelChoiceField(
        label=_("商品"), queryset=Product.objects.filter(product_type=ProductType.CARD_KEY).order_by("name")
    )
    text = forms.CharField(
        label=_("粘贴卡密"), required=False, widget=forms.Textarea(attrs={"rows": 10, "autocomplete": "off"})
    )
    upload = forms.FileField(label=_("或上传 TXT/CSV 文件"), required=False)
    input_format = forms.ChoiceField(
        label=_("格式"),
        choices=[
            ("auto", _("自动识别")),
            ("secret", _("每行一个卡密")),
            ("card_no_secret", _("卡号 卡密（空格分隔）")),
            ("separated", _("卡号,卡密[,到期时间]")),
        ],
    )
    separator = forms.ChoiceField(
        label=_("分隔符"),
        required=False,
        choices=[("", _("自动")), (",", ","), (";", ";"), ("tab", _("Tab")), ("|", "|"), ("----", "----")],
    )
    supplier = forms.ModelChoiceField(label=_("货源"), queryset=Supplier.objects.all(), required=False)
    unit_cost = parsing.DecimalField(label=_("单张成本"), required=False, min_value=0, max_digits=14, decimal_places=2)
    default_expires_at = forms.DateTimeField(label=_("默认到期时间"), required=False)

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("upload")
        if upload:
            if upload.size > settings.CARD_KEY_IMPORT_MAX_BYTES:
                raise forms.ValidationError(
                    _("文件过大：上限 %(limit)d MB") % {"limit": settings.CARD_KEY_IMPORT_MAX_BYTES // (1024 * 1024)}
                )
            try:
                cleaned["text"] = decode_import_file(
                    upload.read(), filename=upload.name, max_bytes=settings.CARD_KEY_IMPORT_MAX_BYTES
                )
            except ImportFileError as error:
                raise forms.ValidationError(str(error)) from None
            cleaned["source_name"] = upload.name
        else:
            cleaned["source_name"] = str(_("粘贴"))
        if not (cleaned.get("text") or "").strip():
            raise forms.ValidationError(_("请粘贴卡密或上传文件"))
        return cleaned
