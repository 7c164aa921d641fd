"""Payout adapters: how approved withdrawals leave Kamen (Alipay transfer, WeChat transfer, sandbox).

An adapter answers three ways, and the withdrawal service acts on each (ADR 0021):

- ``PayoutResult(outcome=PAID)`` — the money reached the payee;
- ``PayoutResult(outcome=FAILED)`` or ``PayoutError`` — the provider refused, nothing was sent,
  the funds go back to the distributor;
- ``PayoutResult(outcome=PENDING)`` or ``PayoutUnknown`` — accepted but not finished, or we do
  not know (timeout, system error, an answer we cannot verify). The withdrawal stays "paying"
  and is asked about later with ``query``; it is never failed on a guess, since the money may
  already be on its way.

Every call carries ``payout_no`` (the withdrawal's number) as the provider's idempotency key
(Alipay ``out_biz_no``, WeChat ``out_bill_no``): sending the same payout again never pays twice
at the provider, and recording the result is idempotent on our side.

Which adapter pays which method: ``COMMISSIONS_PAYOUT_ADAPTERS`` (method → dotted path of a
class or factory taking no arguments), else ``COMMISSIONS_PAYOUT_ADAPTER`` (the sandbox, whose
outcome is ``COMMISSIONS_SANDBOX_PAYOUT_OUTCOME``: "success", "failure" or "pending").
"""

import enum
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils.module_loading import import_string


class PayoutError(Exception):
    """The provider refused the payout: nothing was sent (the funds can go back)."""


class PayoutUnknown(Exception):
    """We cannot tell whether the payout went out: ask the provider later, never fail it."""


class PayoutOutcome(enum.StrEnum):
    PAID = "paid"
    FAILED = "failed"
    PENDING = "pending"


@dataclass(frozen=True)
class PayoutResult:
    provider_payout_no: str = ""
    outcome: PayoutOutcome = PayoutOutcome.PAID
    failure_reason: str = ""


class NotificationRefused(Exception):
    """A result notification that is not signed by the provider, or not one we understand."""


@dataclass(frozen=True)
class PayoutNotification:
    """A verified result notification: which payout, what happened, for how much."""

    payout_no: str
    result: PayoutResult
    amount: Decimal | None


@dataclass(frozen=True)
class NotificationAnswer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


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

    def query(self, *, payout_no: str, amount: Decimal) -> PayoutResult | None:
        """The provider's word on ``payout_no``; None when the provider has never seen it."""
        raise PayoutUnknown("this adapter cannot query payouts")

    def parse_notification(self, *, body: bytes, headers) -> PayoutNotification:
        """Verify and read a result notification the provider posted (NotificationRefused)."""
        raise NotificationRefused("this adapter receives no notifications")

    def answer_notification(self, *, accepted: bool) -> NotificationAnswer:
        return NotificationAnswer(status=200 if accepted else 400, body="success" if accepted else "fail")


class SandboxPayoutAdapter(PayoutAdapter):
    def _outcome(self, payout_no):
        outcome = getattr(settings, "COMMISSIONS_SANDBOX_PAYOUT_OUTCOME", "success")
        if outcome == "pending":
            return PayoutResult(provider_payout_no=f"SBX{payout_no}", outcome=PayoutOutcome.PENDING)
        if outcome != "success":
            return PayoutResult(
                outcome=PayoutOutcome.FAILED, failure_reason="sandbox: payout refused (configured to fail)"
            )
        return PayoutResult(provider_payout_no=f"SBX{payout_no}")

    def pay(self, *, payout_no, method, account, holder_name, amount):
        result = self._outcome(payout_no)
        if result.outcome == PayoutOutcome.FAILED:
            raise PayoutError(result.failure_reason)
        return result

    def query(self, *, payout_no, amount):
        return self._outcome(payout_no)


def get_payout_adapter(method: str | None = None) -> PayoutAdapter:
    paths = getattr(settings, "COMMISSIONS_PAYOUT_ADAPTERS", {}) or {}
    path = paths.get(method) if method else None
    path = path or getattr(settings, "COMMISSIONS_PAYOUT_ADAPTER", "commissions.payouts.SandboxPayoutAdapter")
    return import_string(path)()
