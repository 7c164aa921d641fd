"""Payout adapters: how approved withdrawals leave Kamen (Alipay transfer, WeChat, bank).

Kamen ships a sandbox adapter whose outcome is set with ``COMMISSIONS_SANDBOX_PAYOUT_OUTCOME``
("success" or "failure"). A real adapter implements ``pay`` and must be idempotent on
``payout_no`` (the provider deduplicates on our out_biz_no).
"""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils.module_loading import import_string


class PayoutError(Exception):
    pass


@dataclass(frozen=True)
class PayoutResult:
    provider_payout_no: str


class PayoutAdapter:
    def pay(
        self,
        *,
        payout_no: str,
        method: str,
        account: str,
        holder_name: str,
        amount: Decimal,
    ) -> PayoutResult:
        raise NotImplementedError


class SandboxPayoutAdapter(PayoutAdapter):
    def pay(self, *, payout_no, method, account, holder_name, amount):
        outcome = getattr(settings, "COMMISSIONS_SANDBOX_PAYOUT_OUTCOME", "success")
        if outcome != "success":
            raise PayoutError("sandbox: payout refused (configured to fail)")
        return PayoutResult(provider_payout_no=f"SBX{payout_no}")


def get_payout_adapter() -> PayoutAdapter:
    path = getattr(
        settings,
        "COMMISSIONS_PAYOUT_ADAPTER",
        "commissions.payouts.SandboxPayoutAdapter",
    )
    return import_string(path)()
