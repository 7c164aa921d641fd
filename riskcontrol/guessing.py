"""Guessing at the buyer's look-up and at order / card-key pages.

The look-up locks an order number or an IP out after a few wrong passwords (``orders``); these
rules see the pattern across them: one IP or one device failing look-ups for many order numbers
(``lookup_guessing``), or asking for order, voucher and card-key pages it holds no grant for —
a forged or foreign signed link, no link at all (``page_guessing``). Each failure is a
``RiskSignal``; when one IP or device has more than the rule's threshold within its window the
rule fires with the rule's action: flag (an event for staff), block (that IP or device is
refused for the rule's window, a cache entry) or blacklist (an expiring blacklist entry, which
also stops its checkouts). A refused browser gets a clear 429 page, never a hint whether the
order exists; a buyer who already holds a grant for their order still sees it.
"""

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.translation import gettext as _

from kamen.security import counters

from .models import Action, BlacklistKind, RiskEvent, RiskSignal, RuleCode, SignalKind
from .rules import Rule, active_rules

logger = logging.getLogger(__name__)

# How long the "blacklist" action keeps a guessing IP or device out (IPs are shared and change
# hands; a day stops a run without punishing the next user of the address for a month).
GUESS_BLACKLIST_HOURS = 24
_BLOCK_PREFIX = "risk:guess-block"
RULE_FOR_KIND = {
    SignalKind.LOOKUP_FAILED: RuleCode.LOOKUP_GUESSING,
    SignalKind.PAGE_DENIED: RuleCode.PAGE_GUESSING,
}
REFUSING_ACTIONS = (Action.BLOCK, Action.BLACKLIST)


class GuessingRefused(Exception):
    """This IP or device is refused for guessing; ``DeviceMiddleware`` answers 429 with the
    message."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class GuessDecision:
    rule: Rule
    matched_on: str  # "ip" or "device"
    explanation: str
    outcome: str
    event: RiskEvent | None  # None when the same finding was already recorded in this window

    @property
    def refused(self) -> bool:
        return self.rule.action in REFUSING_ACTIONS

    @property
    def message(self) -> str:
        """For the refused browser: what happened and for how long, nothing about the order."""
        if self.rule.action == Action.BLACKLIST:
            return _("失败次数过多，您的网络或设备已被限制访问，如有疑问请联系客服")
        return _("失败次数过多，已被暂时限制访问，请 %(minutes)s 分钟后再试") % {
            "minutes": max(self.rule.window_minutes, 1)
        }


def _who(request, ip, device_id, device_hash="") -> tuple[str | None, str, str]:
    if request is not None:
        from .fingerprint import device_from_request

        device = device_from_request(request)
        ip = ip or device.ip
        device_id = device_id or device.device_id
        device_hash = device_hash or device.device_hash
    return ip or None, (device_id or "")[:64], (device_hash or "")[:64]


def _block_key(matched_on: str, value: str) -> str:
    digest = hashlib.sha256(f"{matched_on}:{value}".encode()).hexdigest()[:32]
    return f"{_BLOCK_PREFIX}:{matched_on}:{digest}"


def _subjects(ip, device_id) -> list[tuple[str, str]]:
    return [(on, value) for on, value in (("ip", ip), ("device", device_id)) if value]


def guessing_refusal(*, request=None, ip: str | None = None, device_id: str = "") -> str | None:
    """The message refusing this IP or device — blocked by a guessing rule (until its window
    passes) or on the blacklist — or None. One cache round trip and one indexed query."""
    from .services.blacklist import first_blacklist_match

    ip, device_id, _hash = _who(request, ip, device_id)
    subjects = _subjects(ip, device_id)
    if not subjects:
        return None
    try:
        blocked = counters.get_many([_block_key(on, value) for on, value in subjects])
    except Exception:  # noqa: BLE001 — the cache down must not take the look-up down
        logger.exception("riskcontrol.guess_block_unreadable")
        blocked = {}
    until = max((float(value) for value in blocked.values() if value), default=0.0)
    if until > time.time():
        return _("失败次数过多，已被暂时限制访问，请 %(minutes)s 分钟后再试") % {
            "minutes": max(1, math.ceil((until - time.time()) / 60))
        }
    values = Q(kind=BlacklistKind.DEVICE, value_index=device_id.lower()) if device_id else Q()
    if first_blacklist_match(values=values, ip=ip, now=timezone.now()) is not None:
        return _("您的网络或设备已被限制访问（黑名单），如有疑问请联系客服")
    return None


def record_guess(
    *,
    kind: str,
    request=None,
    ip: str | None = None,
    device_id: str = "",
    device_hash: str = "",
    order_no: str = "",
    contact: str = "",
    reason: str = "",
) -> GuessDecision | None:
    """Record one failed look-up or refused page and apply its rule: the decision of the first
    IP or device over the threshold (each one over it gets the action), else None."""
    from .services.signals import contact_index, mask_contact

    rule = active_rules()[RULE_FOR_KIND[kind]]
    ip, device_id, device_hash = _who(request, ip, device_id, device_hash)
    if not rule.is_enabled or not (ip or device_id):
        return None
    now = timezone.now()
    signal = RiskSignal.objects.create(
        kind=kind,
        ip=ip,
        device_id=device_id,
        device_hash=device_hash,
        order_no=(order_no or "")[:32],
        contact_index=contact_index(contact) if contact else "",
        contact_mask=mask_contact(contact) if contact else "",
        explanation=reason[:200],
    )
    since = now - timedelta(minutes=max(rule.window_minutes, 1))
    target = Concat("order_no", "contact_index")
    aggregates, who = {}, Q()
    for on, value in _subjects(ip, device_id):
        same = Q(ip=value) if on == "ip" else Q(device_id=value)
        who |= same
        aggregates[f"{on}_count"] = Count("id", filter=same)
        aggregates[f"{on}_targets"] = Count(target, filter=same, distinct=True)
    figures = (
        RiskSignal.objects.filter(who, kind=kind, created_at__gte=since)
        .order_by()
        .aggregate(**aggregates)
    )
    decisions = []
    for on, value in _subjects(ip, device_id):
        count = figures.get(f"{on}_count") or 0
        if count <= rule.threshold:
            continue
        decisions.append(
            _fire(
                rule=rule,
                kind=kind,
                signal=signal,
                matched_on=on,
                value=value,
                count=count,
                targets=figures.get(f"{on}_targets") or 0,
                reason=reason,
                now=now,
            )
        )
    return decisions[0] if decisions else None


def _fire(*, rule, kind, signal, matched_on, value, count, targets, reason, now) -> GuessDecision:
    from .services.blacklist import add_to_blacklist

    shown = value if matched_on == "ip" else value[:8] + "…"
    label = "IP" if matched_on == "ip" else _("设备")
    if kind == SignalKind.LOOKUP_FAILED:
        explanation = _(
            "猜测查单：%(label)s %(value)s 在 %(window)s 分钟内查单失败 %(count)s 次"
            "（涉及 %(targets)s 个订单号或联系方式），超过 %(limit)s 次"
        )
    else:
        explanation = _(
            "猜测订单页：%(label)s %(value)s 在 %(window)s 分钟内 %(count)s 次打开无权查看的"
            "订单或卡密页面（涉及 %(targets)s 个订单，最近一次：%(reason)s），超过 %(limit)s 次"
        )
    explanation = explanation % {
        "label": label,
        "value": shown,
        "window": rule.window_minutes,
        "count": count,
        "targets": targets,
        "reason": reason or "—",
        "limit": int(rule.threshold),
    }
    window_seconds = max(rule.window_minutes, 1) * 60
    outcome = ""
    if rule.action == Action.BLOCK:
        try:
            counters.set(_block_key(matched_on, value), time.time() + window_seconds, window_seconds)
            outcome = _("已限制该%(label)s访问 %(minutes)s 分钟") % {
                "label": label,
                "minutes": window_seconds // 60,
            }
        except Exception:  # noqa: BLE001 — reported on the event; the request is still refused
            logger.exception("riskcontrol.guess_block_failed")
            outcome = _("限制访问失败（缓存不可用）")
    elif rule.action == Action.BLACKLIST:
        try:
            entry = add_to_blacklist(
                kind=BlacklistKind.IP if matched_on == "ip" else BlacklistKind.DEVICE,
                value=value,
                reason=explanation[:200],
                actor=None,
                expires_at=now + timedelta(hours=GUESS_BLACKLIST_HOURS),
            )
            outcome = _("已加入黑名单：%(entry)s，至 %(until)s") % {
                "entry": entry,
                "until": timezone.localtime(entry.expires_at).strftime("%Y-%m-%d %H:%M"),
            }
        except ValidationError:  # a value the blacklist cannot hold (a malformed device id)
            logger.warning("riskcontrol.auto_blacklist_refused", extra={"kind": matched_on})
            outcome = _("未能加入黑名单")
    # One event per IP or device per window, however many more failures follow.
    bucket = int(now.timestamp() // window_seconds)
    digest = hashlib.sha256(value.encode()).hexdigest()[:24]
    event = None
    try:
        with transaction.atomic():
            event = RiskEvent.objects.create(
                rule=rule.code,
                action=rule.action,
                signal=signal,
                order_no=signal.order_no,
                matched_on=matched_on,
                explanation=explanation[:300],
                outcome=outcome[:200],
                dedupe_key=f"{rule.code}:{matched_on}:{digest}:{bucket}",
            )
    except IntegrityError:
        pass
    if event is not None:
        logger.info(
            "riskcontrol.guessing",
            extra={"rule": rule.code, "on": matched_on, "action": rule.action, "count": count},
        )
    return GuessDecision(rule, matched_on, explanation, outcome, event)


# --- the hooks the order views call -------------------------------------------------------------
def check_lookup_allowed(*, request) -> None:
    """Before a look-up is tried: raises GuessingRefused for a blocked or blacklisted IP or
    device — even the right password is refused then, so the block cannot be probed."""
    message = guessing_refusal(request=request)
    if message:
        raise GuessingRefused(message)


def lookup_failed(*, request, order_no: str = "", contact: str = "") -> None:
    """After a failed (or locked-out) look-up; raises GuessingRefused when the rule refuses."""
    decision = record_guess(
        kind=SignalKind.LOOKUP_FAILED, request=request, order_no=order_no, contact=contact
    )
    if decision is not None and decision.refused:
        raise GuessingRefused(decision.message)


def page_denied(*, request, order_no: str = "", linked_order_no: str | None = None) -> None:
    """An order, voucher or card-key page refused to this browser (the caller answers 404
    next). Raises GuessingRefused when the IP or device is blocked, or is blocked now.

    ``linked_order_no``: the order number the request's signed link (``?t=``) names, None when
    it names none or is invalid or expired (the orders app reads its own tokens)."""
    message = guessing_refusal(request=request)
    if message:
        raise GuessingRefused(message)
    decision = record_guess(
        kind=SignalKind.PAGE_DENIED,
        request=request,
        order_no=order_no,
        reason=_denial_reason(request, order_no, linked_order_no),
    )
    if decision is not None and decision.refused:
        raise GuessingRefused(decision.message)


def _denial_reason(request, order_no: str, named: str | None) -> str:
    token = request.GET.get("t", "")
    if not token:
        return _("无链接且会话无授权")
    if named is None:
        return _("链接签名无效或已过期")
    if named != order_no:
        return _("链接属于其他订单")
    return _("订单不存在")
