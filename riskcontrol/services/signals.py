"""Signals: what buyers and distributors show of themselves (contacts, payout accounts,
devices, addresses), kept as blind indexes and masks, never in plaintext; the distributor
signals the self-referral and linked-account rules compare checkouts with."""

import re

from kamen import crypto

from ..models import RiskSignal, SignalKind


def normalize_contact(contact: str) -> str:
    value = re.sub(r"\s+", "", str(contact or "")).lower()
    value = value.removeprefix("+86")
    return value


def contact_index(contact: str) -> str:
    value = normalize_contact(contact)
    return crypto.blind_index("contact:" + value) if value else ""


def payment_account_index(account: str) -> str:
    value = re.sub(r"\s+", "", str(account or "")).lower()
    return crypto.blind_index("payment:" + value) if value else ""


def mask_contact(contact: str) -> str:
    value = normalize_contact(contact)
    if not value:
        return ""
    if "@" in value:
        name, _at, domain = value.partition("@")
        return f"{name[:1]}***@{domain}"[:64]
    if len(value) >= 7:
        return f"{value[:3]}****{value[-4:]}"
    return "****"


DISTRIBUTOR_SIGNAL_KINDS = [
    SignalKind.SIGNUP,
    SignalKind.LOGIN,
    SignalKind.PAYOUT_ACCOUNT,
]


def record_distributor_signal(
    *,
    kind: str,
    distributor_id: int,
    user_id: int | None = None,
    ip: str | None = None,
    device_id: str = "",
    device_hash: str = "",
    contacts: tuple[str, ...] = (),
    payment_account: str = "",
) -> list[RiskSignal]:
    """What a distributor signs up, logs in or gets paid with: the other side of the
    self-referral and linked-account rules. One row per contact (a phone and an e-mail)."""
    if kind not in SignalKind.values or kind == SignalKind.CHECKOUT:
        raise ValueError(f"not a distributor signal kind: {kind!r}")
    indexes = [
        contact_index(contact) for contact in contacts if normalize_contact(contact)
    ] or [""]
    masks = [
        mask_contact(contact) for contact in contacts if normalize_contact(contact)
    ] or [""]
    payment_idx = payment_account_index(payment_account)
    return RiskSignal.objects.bulk_create(
        [
            RiskSignal(
                kind=kind,
                ip=ip or None,
                device_id=(device_id or "")[:64],
                device_hash=(device_hash or "")[:64],
                contact_index=index,
                contact_mask=mask,
                payment_account_index=payment_idx,
                distributor_id=distributor_id,
                user_id=user_id,
            )
            for index, mask in zip(indexes, masks, strict=True)
        ]
    )


def record_forged_callback(*, ip: str | None, gateway_code: str, reason: str) -> RiskSignal:
    """A payment notification whose signature did not verify, by the address that sent it: a
    probe of the callback endpoint, which staff see with the other signals of that address."""
    return RiskSignal.objects.create(
        kind=SignalKind.CALLBACK_FORGED,
        ip=ip or None,
        explanation=f"{gateway_code[:20]}: {reason}"[:200],
    )


def record_payout_account(*, distributor, account: str) -> None:
    """The commissions app calls this when a payout account is added, so linked-account and
    self-referral rules see it (as a blind index only)."""
    record_distributor_signal(
        kind=SignalKind.PAYOUT_ACCOUNT,
        distributor_id=distributor.pk,
        payment_account=account,
    )
