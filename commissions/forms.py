from django import forms
from django.utils.translation import gettext_lazy as _

from .models import PayoutMethod


class WithdrawalForm(forms.Form):
    payout_account = forms.TypedChoiceField(label=_("收款账户"), coerce=int)
    amount = forms.CharField(label=_("提现金额"), max_length=20)
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, accounts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["payout_account"].choices = [
            (account.pk, str(account)) for account in accounts
        ]


class PayoutAccountForm(forms.Form):
    method = forms.ChoiceField(label=_("收款方式"), choices=PayoutMethod.choices)
    holder_name = forms.CharField(label=_("户名"), max_length=40)
    account = forms.CharField(label=_("账号"), max_length=60)
    bank_name = forms.CharField(
        label=_("开户行（银行卡必填）"), max_length=60, required=False
    )
