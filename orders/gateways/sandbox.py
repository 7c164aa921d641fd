"""The sandbox payment gateway Kamen ships: a cashier page and signed async notifications.

It behaves like a real provider so the pipeline is exercised for real: the buyer clicks
支付成功 / 支付失败 on its cashier page; the sandbox then POSTs an HMAC-SHA256-signed JSON
notification to Kamen's notify URL, retried with backoff until Kamen answers ``success``,
sometimes twice (duplicates) and sometimes after a stale "still waiting" event (out of order),
with probabilities from the settings. It keeps its own books (SandboxPayment) and answers
active queries and refunds from them. Kamen's order code talks to it only through the
``PaymentGateway`` interface.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import random
import secrets
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .base import (
    GatewayError,
    MalformedNotification,
    NotificationAnswer,
    PaymentGateway,
    PaymentNotification,
    PaymentOutcome,
    PaymentRequest,
    PaymentStart,
    RefundResult,
    SignatureInvalid,
)
from .statements import StatementLine, alipay_statement

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-sandbox-signature"
_OUTCOMES = {
    "succeeded": PaymentOutcome.SUCCEEDED,
    "pending": PaymentOutcome.PENDING,
    "failed": PaymentOutcome.FAILED,
    "closed": PaymentOutcome.CLOSED,
    "refunded": PaymentOutcome.REFUNDED,
}


def sign(body: bytes) -> str:
    return hmac.new(settings.SANDBOX_GATEWAY_SECRET.encode(), body, hashlib.sha256).hexdigest()


class SandboxGateway(PaymentGateway):
    code = "sandbox"

    @property
    def app_id(self) -> str:
        return settings.SANDBOX_GATEWAY_APP_ID

    # --- The interface Kamen calls ---------------------------------------------------------
    def start_payment(self, request: PaymentRequest) -> PaymentStart:
        from orders.models import SandboxPayment

        payment = SandboxPayment(
            trade_no="SBX" + secrets.token_hex(10).upper(),
            app_id=self.app_id,
            out_trade_no=request.out_trade_no,
            amount=request.amount,
            subject=request.subject[:200],
            notify_url=request.notify_url,
            return_url=request.return_url,
        )
        try:
            # One INSERT: the unique out_trade_no is the look-up, however many ask at once.
            with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
                payment.save(force_insert=True)
        except IntegrityError:
            payment = SandboxPayment.objects.filter(out_trade_no=request.out_trade_no).first()
            if payment is None:
                raise
            if payment.amount != request.amount:
                raise GatewayError("out_trade_no already used with another amount") from None
        return PaymentStart(
            redirect_url=reverse("orders:sandbox-cashier", args=[payment.trade_no]), gateway_trade_no=payment.trade_no
        )

    def parse_notification(self, *, body: bytes, headers: Mapping[str, str]) -> PaymentNotification:
        signature = headers.get(SIGNATURE_HEADER, "")
        if not signature or not hmac.compare_digest(signature, sign(body)):
            raise SignatureInvalid("sandbox signature does not verify")
        try:
            data = json.loads(body.decode("utf-8"))
            amount = Decimal(str(data["amount"]))
            outcome = _OUTCOMES[data["status"]]
            return PaymentNotification(
                gateway=self.code,
                event_id=str(data["event_id"]),
                out_trade_no=str(data["out_trade_no"]),
                gateway_trade_no=str(data["trade_no"]),
                app_id=str(data["app_id"]),
                amount=amount,
                currency=str(data["currency"]),
                outcome=outcome,
                paid_at=parse_datetime(data["paid_at"]) if data.get("paid_at") else None,
                raw=data,
            )
        except (ValueError, KeyError, TypeError, InvalidOperation, UnicodeDecodeError) as error:
            raise MalformedNotification(f"sandbox notification unreadable: {error.__class__.__name__}") from None

    def answer_notification(self, *, accepted: bool) -> NotificationAnswer:
        return NotificationAnswer(status=200, body="success") if accepted else NotificationAnswer(status=400, body="fail")

    def query_payment(self, *, out_trade_no: str) -> PaymentNotification | None:
        from orders.models import SandboxPayment

        payment = SandboxPayment.objects.filter(out_trade_no=out_trade_no).first()
        if payment is None:
            return None
        payload = payment_payload(payment, event_id=f"query-{payment.trade_no}-{payment.status}")
        return PaymentNotification(
            gateway=self.code,
            event_id=payload["event_id"],
            out_trade_no=payment.out_trade_no,
            gateway_trade_no=payment.trade_no,
            app_id=payment.app_id,
            amount=payment.amount,
            currency="CNY",
            outcome=_OUTCOMES[payload["status"]],
            paid_at=payment.paid_at,
            raw=payload,
        )

    def refund(
        self, *, out_trade_no: str, out_refund_no: str, refund_amount: Decimal, total_amount: Decimal, reason: str
    ) -> RefundResult:
        from orders.models import SandboxPayment, SandboxPaymentStatus, SandboxRefund

        with transaction.atomic():
            payment = SandboxPayment.objects.select_for_update().filter(out_trade_no=out_trade_no).first()
            if payment is None:
                raise GatewayError("sandbox: unknown trade")
            done = SandboxRefund.objects.filter(out_refund_no=out_refund_no).first()
            if done is None:
                if payment.status not in (SandboxPaymentStatus.SUCCEEDED, SandboxPaymentStatus.REFUNDED):
                    raise GatewayError("sandbox: trade not paid")
                if payment.refunded_amount + refund_amount > payment.amount:
                    raise GatewayError("sandbox: refund exceeds the amount paid")
                done = SandboxRefund.objects.create(
                    payment=payment,
                    out_refund_no=out_refund_no,
                    refund_no="SBR" + secrets.token_hex(10).upper(),
                    amount=refund_amount,
                )
                payment.refunded_amount += refund_amount
                if payment.refunded_amount == payment.amount:
                    payment.status = SandboxPaymentStatus.REFUNDED
                payment.save(update_fields=["refunded_amount", "status"])
        return RefundResult(
            out_refund_no=out_refund_no,
            gateway_refund_no=done.refund_no,
            amount=done.amount,
            is_succeeded=True,
            raw={"refund_no": done.refund_no, "amount": str(done.amount)},
        )


    def download_statement(self, *, day) -> tuple[str, bytes]:
        """The day's statement from the sandbox's own books, in Alipay's trade-bill format:
        its payments and refunds, with the fee the merchant's sandbox fee settings give (and
        return, in proportion, with a refund when they say the gateway returns it)."""
        return "alipay", alipay_statement(sandbox_statement_lines(day=day), day=day.isoformat())


def sandbox_statement_lines(*, day) -> list[StatementLine]:
    import datetime as dt

    from orders.models import SandboxPayment, SandboxPaymentStatus, SandboxRefund

    from .configured import fee_schedule

    start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    end = start + dt.timedelta(days=1)
    fees = fee_schedule(SandboxGateway.code)
    lines = [
        StatementLine(False, payment.out_trade_no, "", payment.trade_no, payment.amount, fees.fee(payment.amount))
        for payment in SandboxPayment.objects.filter(
            status__in=[SandboxPaymentStatus.SUCCEEDED, SandboxPaymentStatus.REFUNDED],
            paid_at__gte=start,
            paid_at__lt=end,
        ).order_by("paid_at", "id")
    ]
    refunded: dict[int, Decimal] = {}
    for refund in SandboxRefund.objects.select_related("payment").order_by("payment_id", "created_at", "id"):
        payment = refund.payment
        before = refunded.get(payment.pk, Decimal("0.00"))
        after = refunded[payment.pk] = before + refund.amount
        if not (start <= refund.created_at < end):
            continue
        returned = Decimal("0.00")
        if fees.is_refunded:
            fee = fees.fee(payment.amount)
            returned = _fee_left(fee, before, payment.amount) - _fee_left(fee, after, payment.amount)
        lines.append(
            StatementLine(True, payment.out_trade_no, refund.out_refund_no, payment.trade_no, refund.amount, returned)
        )
    return lines


def _fee_left(fee: Decimal, refunded: Decimal, paid: Decimal) -> Decimal:
    """The fee left after ``refunded`` of ``paid`` came back: the books' own rule (to the fen,
    rounded down, none after a full refund)."""
    from kamen.money import to_fen

    if refunded >= paid:
        return Decimal("0.00")
    return fee - to_fen(fee * refunded / paid)


# --- The sandbox's own side: the cashier and the notifications it sends ----------------------
def payment_payload(payment, *, event_id: str, status: str | None = None) -> dict:
    return {
        "app_id": payment.app_id,
        "event_id": event_id,
        "out_trade_no": payment.out_trade_no,
        "trade_no": payment.trade_no,
        "amount": f"{payment.amount:.2f}",
        "currency": "CNY",
        "status": status or payment.status,
        "paid_at": payment.paid_at.isoformat() if payment.paid_at else None,
    }


def signed_body(payload: dict) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return body, {SIGNATURE_HEADER: sign(body), "content-type": "application/json"}


def complete_sandbox_payment(*, trade_no: str, succeeded: bool, rng: random.Random | None = None) -> list[int]:
    """The buyer clicked 支付成功 or 支付失败 on the cashier: settle the sandbox's books once and
    queue the notifications (ids returned). Clicking again changes nothing."""
    from orders.models import SandboxNotification, SandboxPayment, SandboxPaymentStatus

    rng = rng or random.Random()
    with transaction.atomic():
        payment = SandboxPayment.objects.select_for_update().get(trade_no=trade_no)
        if payment.status != SandboxPaymentStatus.PENDING:
            return []
        payment.status = SandboxPaymentStatus.SUCCEEDED if succeeded else SandboxPaymentStatus.FAILED
        payment.paid_at = timezone.now() if succeeded else None
        payment.save(update_fields=["status", "paid_at"])
        events = []
        if rng.random() < settings.SANDBOX_NOTIFY_OUT_OF_ORDER_PROBABILITY:
            # A stale "still waiting" event that arrives after the final one, as gateways do.
            stale = payment_payload(payment, event_id="EVT" + secrets.token_hex(8).upper(), status="pending")
            stale["paid_at"] = None
            events.append(stale)
        events.insert(0, payment_payload(payment, event_id="EVT" + secrets.token_hex(8).upper()))
        deliveries = []
        for payload in events:
            body, _headers = signed_body(payload)
            notification = SandboxNotification.objects.create(
                payment=payment, event_id=payload["event_id"], body=body.decode()
            )
            deliveries.append(notification.pk)
            if rng.random() < settings.SANDBOX_NOTIFY_DUPLICATE_PROBABILITY:
                deliveries.append(notification.pk)
        from orders.services.enqueue import enqueue_after_commit

        for notification_id in deliveries:
            enqueue_after_commit("deliver_sandbox_notification_task", notification_id=notification_id)
    return deliveries


def sandbox_retry_delay(attempts: int) -> int:
    """Seconds between the sandbox's attempts after ``attempts`` of them: 2, 4, 8, … 600."""
    return min(2 ** max(attempts - 1, 0) * 2, 600)


def deliver_sandbox_notification(*, notification_id: int, transport=None) -> bool:
    """POST one notification to the merchant's notify URL; True once answered ``success``."""
    from orders.models import SandboxNotification

    notification = SandboxNotification.objects.select_related("payment").get(pk=notification_id)
    body = notification.body.encode()
    headers = {SIGNATURE_HEADER: sign(body), "Content-Type": "application/json"}
    gateway = SandboxGateway(transport=transport)
    # counted with the outcome, and the next attempt scheduled: one write per attempt
    next_attempt_at = timezone.now() + timedelta(seconds=sandbox_retry_delay(notification.attempts + 1))
    attempted = {"attempts": F("attempts") + 1, "next_attempt_at": next_attempt_at}
    try:
        response = gateway.transport("POST", notification.payment.notify_url, headers, body)
    except GatewayError as error:
        SandboxNotification.objects.filter(pk=notification_id).update(**attempted, last_answer=str(error)[:200])
        return False
    answer = response.body.decode("utf-8", "replace").strip()
    delivered = response.status == 200 and answer == "success"
    SandboxNotification.objects.filter(pk=notification_id).update(
        **attempted,
        last_answer=f"{response.status} {answer}"[:200],
        **({"delivered_at": timezone.now()} if delivered else {}),
    )
    return delivered


def redeliver_due_sandbox_notifications(*, now=None, limit: int = 20) -> int:
    """Attempt the sandbox's notifications whose next attempt is overdue: their Celery message
    was lost (Redis restarted empty, a worker died, the broker was down when they were queued).
    A real gateway keeps its retry schedule whatever happens to the merchant's broker; so does
    the sandbox, from its own table. A notification sent twice is harmless (the callback is
    idempotent, and the sandbox repeats some on purpose). Returns how many were attempted."""
    from orders.models import SandboxNotification

    if not settings.SANDBOX_GATEWAY_ENABLED:
        return 0
    now = now or timezone.now()
    overdue = now - timedelta(seconds=settings.SANDBOX_NOTIFY_RECOVERY_GRACE_SECONDS)
    with transaction.atomic():
        due = list(
            SandboxNotification.objects.select_for_update(skip_locked=True)
            .filter(
                delivered_at__isnull=True,
                next_attempt_at__lt=overdue,
                attempts__lt=settings.SANDBOX_NOTIFY_MAX_ATTEMPTS,
                created_at__gte=now - timedelta(days=1),
            )
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        # claimed: another worker's loop skips them while this one attempts them
        SandboxNotification.objects.filter(pk__in=due).update(next_attempt_at=now + timedelta(seconds=60))
    for notification_id in due:
        deliver_sandbox_notification(notification_id=notification_id)
    if due:
        logger.info("sandbox.notifications_redelivered count=%s", len(due))
    return len(due)
