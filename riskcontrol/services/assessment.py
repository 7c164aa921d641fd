"""The checkout assessment: ``assess_checkout`` runs every enabled rule against one checkout in a handful of indexed
queries (blacklist, one aggregate over recent checkouts, the distributor chain), records the
observation with its verdict, and returns "allow", "review" (the order is placed but its
fulfilment held until staff decide) or "block" (refused with a message). Every rule that fired
leaves a ``RiskEvent`` saying which rule and which signal.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from psycopg import sql

from kamen.db import fetch_rows, fetch_rows_in_one_round_trip

from .. import sql as risk_sql
from ..fingerprint import current_device
from ..models import (
    ACTION_SEVERITY,
    Action,
    BlacklistEntry,
    BlacklistKind,
    RiskEvent,
    RiskSignal,
    RuleCode,
    SignalKind,
    Verdict,
)
from ..rules import Rule, active_rules
from .blacklist import add_to_blacklist
from .signals import (
    contact_index,
    mask_contact,
    payment_account_index,
)

logger = logging.getLogger(__name__)

ALLOW = "allow"
REVIEW = "review"
BLOCK = "block"

# How long an automatic blacklist entry (the "blacklist" action) lasts.
AUTO_BLACKLIST_DAYS = 30
DAY_COUNTER_SECONDS = 60 * 60 * 26
ZERO = Decimal(0)


# --- the checkout assessment -------------------------------------------------------------------
@dataclass
class Hit:
    rule: Rule
    matched_on: str
    explanation: str
    blacklist: list[tuple[str, str]] = field(default_factory=list)  # (kind, raw value) to add


@dataclass
class Assessment:
    verdict: str
    hits: list[Hit]
    signal: RiskSignal | None

    @property
    def message(self) -> str:
        """For staff: every rule that fired and why."""
        return "；".join(hit.explanation for hit in self.hits)

    @property
    def buyer_message(self) -> str:
        """For the buyer of a blocked checkout: clear about limits they can respect, silent
        about the rules a fraudster could learn to dodge."""
        codes = {hit.rule.code: hit.rule for hit in self.hits if hit.rule.action in (Action.BLOCK, Action.BLACKLIST)}
        if RuleCode.BLACKLIST in codes:
            return _("您已被限制下单（黑名单），如有疑问请联系客服")
        if RuleCode.ORDER_AMOUNT_LIMIT in codes:
            return _("单笔订单金额不能超过 ¥%(limit)s，请减少购买数量") % {
                "limit": codes[RuleCode.ORDER_AMOUNT_LIMIT].threshold
            }
        if RuleCode.BUYER_DAILY_LIMIT in codes:
            return _("今日购买金额已达上限 ¥%(limit)s，请明天再试") % {
                "limit": codes[RuleCode.BUYER_DAILY_LIMIT].threshold
            }
        return _("该订单未通过风控检查，请联系客服")


def _blacklist_subquery(*, ip, device_id, contact_idx, payment_idx, distributor_id) -> tuple[sql.Composable, list]:
    """The id of the first active blacklist entry this checkout matches, as a scalar subquery
    that rides along with the figures query (one round trip for both). Each value and the
    network are a look-up of their own so each uses its index (``blacklist_value_idx``; the
    GiST index on the IP entries' networks): one OR over all made PostgreSQL read the table."""
    hits, params = [], []
    for kind, value in (
        (BlacklistKind.DEVICE, device_id),
        (BlacklistKind.CONTACT, contact_idx),
        (BlacklistKind.PAYMENT_ACCOUNT, payment_idx),
        (BlacklistKind.DISTRIBUTOR, str(distributor_id) if distributor_id else ""),
    ):
        if value:
            hits.append(risk_sql.BLACKLIST_VALUE_HIT)
            params += [kind, value]
    if ip:
        hits.append(risk_sql.BLACKLIST_IP_HIT)
        params.append(ip)
    return risk_sql.first_hit(hits), params


def _recent_figures(
    *,
    rules,
    ip,
    device_id,
    contact_idx,
    payment_idx,
    product_id,
    distributor_id,
    chain_ids,
    now,
    amount=ZERO,
    signal: RiskSignal | None = None,
    docking_site_id: int | None = None,
) -> dict:
    """One aggregate query: over recent checkouts (not blocked ones) of this IP, device or
    buyer, the velocity counts and today's total; and over the sign-up, log-in and payout
    signals of the attributed chain, whether one shares this buyer's IP, device, contact or
    payment account (self-referral). The same statement records ``signal`` and
    counts the checkout into the distributor's day total (``distributor_today``)."""
    day_start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)

    def since(code: str):
        return now - timedelta(minutes=max(int(rules[code].window_minutes), 1))

    ip_since, device_since, repeat_since = (
        since(RuleCode.IP_VELOCITY),
        since(RuleCode.DEVICE_VELOCITY),
        since(RuleCode.REPEAT_PURCHASE),
    )
    earliest = min(ip_since, device_since, repeat_since, day_start)
    docking_since = since(RuleCode.DOCKING_VELOCITY) if docking_site_id else None
    blacklist_values = None
    if docking_site_id:
        # An API order of a docking site: its IP and contact are the site's, shared by all
        # its orders, so the buyer counts are not taken (they would read the site's whole day
        # on every order); the blacklist still looks at them. Counted per site instead.
        blacklist_values = {"ip": ip, "device_id": device_id, "contact_idx": contact_idx}
        ip = device_id = contact_idx = None
    return _recent_figures_sql(
        ip=ip,
        device_id=device_id,
        contact_idx=contact_idx,
        payment_idx=payment_idx,
        product_id=product_id,
        distributor_id=distributor_id,
        chain_ids=chain_ids,
        since={
            "ip": ip_since,
            "device": device_since,
            "repeat": repeat_since,
            "day": day_start,
            "earliest": earliest,
        },
        signal=signal,
        day_total=(distributor_id, day_start.date(), amount)
        if distributor_id and rules[RuleCode.DISTRIBUTOR_DAILY_LIMIT].is_enabled
        else None,
        blacklist_values=blacklist_values,
        docking=(docking_site_id, docking_since) if docking_site_id else None,
    )


def _recent_figures_sql(
    *,
    ip,
    device_id,
    contact_idx,
    payment_idx,
    product_id,
    distributor_id,
    chain_ids,
    since,
    signal: RiskSignal | None = None,
    day_total: tuple | None = None,
    blacklist_values: dict | None = None,
    docking: tuple | None = None,
) -> dict:
    """The same aggregate as the ORM path below, as one hand-written statement (PostgreSQL):
    the ORM spent several times longer building it than PostgreSQL spent running it.

    The statement also inserts ``signal`` (verdict "allow"; the caller corrects it when a rule
    fires) and adds the amount to the distributor's day total (``day_total``: id, day, amount),
    returning ``signal_id`` and ``distributor_today``: one round trip for the whole check
    instead of three (figures, insert, the day counter in Redis). Outside a transaction it
    does not wait for the WAL flush (``synchronous_commit`` off for this statement only): the
    signal is an observation, and the order the checkout commits next flushes it anyway."""
    # Each figure comes from an arm of its own, one index look-up each (the buyer's IP, device
    # or contact with created_at; the chain's partial index), cross-joined as one-row
    # aggregates. One scan with an OR over the arms was cheaper to PostgreSQL as a full read of
    # an empty table, and a connection keeps the generic plan it settles on in its first
    # checkouts: on a fresh shop every checkout then read the whole table. No index on kind may
    # serve a buyer's arm (``riskcontrol.sql.A_CHECKOUT``).
    arms: list[tuple[list[tuple[sql.Composable, str]], sql.Composable, list]] = []  # (named aggregates, WHERE, params)
    if ip:
        arms.append(([(risk_sql.UNBLOCKED_COUNT, "ip_count")], risk_sql.IP_ARM, [ip, since["ip"]]))
    if device_id:
        arms.append(([(risk_sql.UNBLOCKED_COUNT, "device_count")], risk_sql.DEVICE_ARM, [device_id, since["device"]]))
    if contact_idx:
        arms.append(
            (
                [(risk_sql.REPEAT_COUNT, "repeat_count"), (risk_sql.BUYER_TODAY, "buyer_today")],
                risk_sql.CONTACT_ARM,
                [product_id, since["repeat"], since["day"], contact_idx, min(since["repeat"], since["day"])],
            )
        )
    if chain_ids:
        # Sign-up, log-in and payout signals of the chain (``risk_signal_chain_idx``) that share
        # one of this buyer's values: self-referral.
        same, columns_same, params_same = [], [], []
        for name, condition, value in (
            ("self_ip", risk_sql.SAME_IP, ip),
            ("self_device", risk_sql.SAME_DEVICE, device_id),
            ("self_contact", risk_sql.SAME_CONTACT, contact_idx),
            ("self_payment", risk_sql.SAME_PAYMENT, payment_idx),
        ):
            if value:
                columns_same.append((risk_sql.chain_match(condition), name))
                same.append(condition)
                params_same.append(value)
        if same:
            arms.append((columns_same, risk_sql.chain_arm(same), [*params_same, list(chain_ids), *params_same]))
    blacklisted = blacklist_values or {"ip": ip, "device_id": device_id, "contact_idx": contact_idx}
    blacklist_hit, blacklist_params = _blacklist_subquery(
        payment_idx=payment_idx, distributor_id=distributor_id, **blacklisted
    )
    columns, names, params = [risk_sql.named(blacklist_hit, "blacklist_id")], ["blacklist_id"], list(blacklist_params)
    if docking is not None:
        # The docking site's recent API orders (``risk_signal_docking_idx``), in the same round trip.
        columns.append(risk_sql.named(risk_sql.DOCKING_COUNT, "docking_count"))
        names.append("docking_count")
        params += list(docking)
    arm_sources = []
    for number, (aggregates, where, arm_params) in enumerate(arms):
        columns += [sql.Identifier(name) for _aggregate, name in aggregates]
        names += [name for _aggregate, name in aggregates]
        arm_sources.append(risk_sql.arm([risk_sql.named(*aggregate) for aggregate in aggregates], where, number))
        params += arm_params
    statement = risk_sql.figures(columns, arm_sources)
    if signal is not None or day_total is not None:
        ctes, outer, sources = [risk_sql.figures_cte(statement)], [risk_sql.ALL_FIGURES], [risk_sql.FIGURES]
        if signal is not None:
            ctes.append(risk_sql.new_signal(_SIGNAL_COLUMNS))
            params += [getattr(signal, column) for column in _SIGNAL_COLUMNS]
            outer.append(risk_sql.named(risk_sql.NEW_SIGNAL_ID, "signal_id"))
            names.append("signal_id")
        if day_total is not None:
            ctes.append(risk_sql.DAY_TOTAL_ADD)
            params += list(day_total)
            outer.append(risk_sql.named(risk_sql.DAY_TOTAL_NOW, "distributor_today"))
            names.append("distributor_today")
        if not transaction.get_connection().in_atomic_block:
            ctes.append(risk_sql.NO_FLUSH)
            sources.append(risk_sql.NO_FLUSH_SOURCE)
        statement = risk_sql.with_writes(ctes, outer, sources)
    sql_text = risk_sql.text(statement)
    row = _fetch_row(sql_text, params)
    figures = dict(zip(names, row, strict=True))
    if signal is not None:
        signal.pk = figures.pop("signal_id")
        signal._state.adding = False
    return figures


def _fetch_row(sql: str, params: list):
    """The check's statement has a handful of shapes (which of IP, device, contact, chain are
    present); the driver prepares each once per connection (``kamen.db``); it returns one row."""
    return fetch_rows(sql, params)[0]


def distributor_chain_ids(distributor_id: int, *, depth: int = 2) -> list[int]:
    """The distributor and up to ``depth`` ancestors, nearest first (one query up the parent
    column: the nested-set form scanned a whole tree, ~30 ms on 100k distributors). By default
    the people an order can pay and an attribution snapshot holds: the seller and two above."""
    from distribution.selectors import upline_ids

    return [distributor_id, *upline_ids(distributor_id, depth=depth)]


def _evaluate(
    *,
    rules,
    ip,
    device_id,
    contact,
    contact_idx,
    payment_idx,
    product_id,
    amount,
    distributor_id,
    chain_ids,
    now,
    signal: RiskSignal | None = None,
    docking_site_id: int | None = None,
    docking_order_limit: int | None = None,
) -> list[Hit]:
    hits: list[Hit] = []
    enabled = {code: rule for code, rule in rules.items() if rule.is_enabled}
    if docking_site_id:
        # A docking site's API order (ADR 0019): the contact, IP and device are the site's,
        # shared by every order it places, so the buyer rules would read one busy site as one
        # abusive buyer. Its velocity is counted per site instead; the blacklist and the
        # amount rule stay; the money is bounded by its prepaid balance and credit limit.
        for code in _BUYER_RULES:
            enabled.pop(code, None)
    else:
        enabled.pop(RuleCode.DOCKING_VELOCITY, None)

    rule = enabled.get(RuleCode.ORDER_AMOUNT_LIMIT)
    if rule and rule.threshold and amount > rule.threshold:
        hits.append(
            Hit(
                rule,
                "amount",
                _("单笔金额 ¥%(amount)s 超过上限 ¥%(limit)s") % {"amount": amount, "limit": rule.threshold},
                [(BlacklistKind.CONTACT, contact)],
            )
        )

    if distributor_id and RuleCode.SELF_REFERRAL in enabled and chain_ids is None:
        chain_ids = distributor_chain_ids(distributor_id)
    figures = _recent_figures(
        rules=rules,
        ip=ip,
        device_id=device_id,
        contact_idx=contact_idx,
        payment_idx=payment_idx,
        product_id=product_id,
        distributor_id=distributor_id,
        chain_ids=chain_ids if RuleCode.SELF_REFERRAL in enabled else None,
        now=now,
        amount=amount,
        signal=signal,
        docking_site_id=docking_site_id if RuleCode.DOCKING_VELOCITY in enabled else None,
    )
    blacklist_id = figures.get("blacklist_id")
    blacklisted = BlacklistEntry.objects.filter(pk=blacklist_id).first() if blacklist_id else None
    if blacklisted is not None:
        hits.insert(
            0,
            Hit(
                Rule(RuleCode.BLACKLIST, True, ZERO, 0, Action.BLOCK),
                blacklisted.kind,
                _("命中黑名单（%(kind)s %(value)s）")
                % {
                    "kind": blacklisted.get_kind_display(),
                    "value": blacklisted.display_value,
                },
            ),
        )
    checks = [
        (
            RuleCode.IP_VELOCITY,
            "ip_count",
            "ip",
            BlacklistKind.IP,
            ip,
            _("同一 IP（%(value)s）%(window)s 分钟内已下单 %(count)s 笔，超过 %(limit)s 笔"),
        ),
        (
            RuleCode.DEVICE_VELOCITY,
            "device_count",
            "device",
            BlacklistKind.DEVICE,
            device_id,
            _("同一设备（%(value)s）%(window)s 分钟内已下单 %(count)s 笔，超过 %(limit)s 笔"),
        ),
        (
            RuleCode.REPEAT_PURCHASE,
            "repeat_count",
            "contact",
            BlacklistKind.CONTACT,
            contact,
            _("买家 %(value)s %(window)s 分钟内已购买该商品 %(count)s 次，超过 %(limit)s 次"),
        ),
    ]
    for code, key, matched_on, blacklist_kind, raw, message in checks:
        rule = enabled.get(code)
        count = figures.get(key) or 0
        # "More than N orders": this checkout is order number count + 1.
        if rule and raw and count + 1 > rule.threshold:
            shown = mask_contact(raw) if matched_on == "contact" else (raw[:8] + "…" if matched_on == "device" else raw)
            hits.append(
                Hit(
                    rule,
                    matched_on,
                    message
                    % {
                        "value": shown,
                        "window": rule.window_minutes,
                        "count": count + 1,
                        "limit": int(rule.threshold),
                    },
                    [(blacklist_kind, raw)],
                )
            )

    rule = enabled.get(RuleCode.DOCKING_VELOCITY)
    if rule and docking_site_id:
        limit = int(docking_order_limit or rule.threshold)
        count = figures.get("docking_count") or 0
        if limit and count + 1 > limit:
            hits.append(
                Hit(
                    rule,
                    "docking_site",
                    _("对接商户 #%(id)s %(window)s 分钟内已下单 %(count)s 笔，超过 %(limit)s 笔")
                    % {"id": docking_site_id, "window": rule.window_minutes, "count": count + 1, "limit": limit},
                )
            )

    # The day's totals, this checkout included, against their limits: the buyer's (by contact)
    # and the attributed distributor's.
    for code, present, total, matched_on, message, shown, blacklisted_on in (
        (
            RuleCode.BUYER_DAILY_LIMIT,
            contact_idx,
            (figures.get("buyer_today") or ZERO) + amount,
            "contact",
            _("买家 %(value)s 今日累计 ¥%(total)s，超过单日上限 ¥%(limit)s"),
            {"value": mask_contact(contact)},
            (BlacklistKind.CONTACT, contact),
        ),
        (
            RuleCode.DISTRIBUTOR_DAILY_LIMIT,
            distributor_id,
            figures.get("distributor_today") or ZERO,
            "distributor",
            _("分销商 #%(id)s 今日归属成交 ¥%(total)s，超过单日上限 ¥%(limit)s"),
            {"id": distributor_id},
            (BlacklistKind.DISTRIBUTOR, str(distributor_id)),
        ),
    ):
        rule = enabled.get(code)
        if rule and present and rule.threshold and total > rule.threshold:
            values = {**shown, "total": total, "limit": rule.threshold}
            hits.append(Hit(rule, matched_on, message % values, [blacklisted_on]))

    rule = enabled.get(RuleCode.SELF_REFERRAL)
    for key, matched_on, shown in (
        ("self_ip", "ip", ip),
        ("self_device", "device", (device_id or "")[:8] + "…"),
        ("self_contact", "contact", mask_contact(contact)),
        ("self_payment", "payment_account", _("支付账户")),
    ):
        match_id = figures.get(key)
        if rule and match_id:
            who = _("归属分销商") if match_id == distributor_id else _("其上级")
            hits.append(
                Hit(
                    rule,
                    matched_on,
                    _("自购返佣：买家的 %(on)s（%(value)s）与%(who)s #%(id)s 的注册、登录或收款记录相同")
                    % {"on": matched_on, "value": shown, "who": who, "id": match_id},
                    [(BlacklistKind.DISTRIBUTOR, str(distributor_id))],
                )
            )
            break
    return hits


_BUYER_RULES = (
    RuleCode.IP_VELOCITY,
    RuleCode.DEVICE_VELOCITY,
    RuleCode.REPEAT_PURCHASE,
    RuleCode.BUYER_DAILY_LIMIT,
    RuleCode.SELF_REFERRAL,
)


def _verdict(hits: list[Hit]) -> str:
    if not hits:
        return ALLOW
    strongest = max(ACTION_SEVERITY[hit.rule.action] for hit in hits)
    if strongest >= ACTION_SEVERITY[Action.BLOCK]:
        return BLOCK
    if strongest >= ACTION_SEVERITY[Action.REVIEW]:
        return REVIEW
    return ALLOW


def assess_checkout(
    *,
    product,
    quantity: int,
    contact: str,
    buyer_ip: str | None,
    amount,
    distributor_id=None,
    device_id: str | None = None,
    device_hash: str | None = None,
    payment_account: str = "",
    attribution: dict | None = None,
    checkout_token: str = "",
    request=None,
) -> str:
    """ "allow", "review" (the order is placed but held for staff) or "block" (refused with a
    message). Called by checkout before anything is reserved.

    The device comes from ``device_id``/``device_hash``, else ``request``, else the request
    being served (``DeviceMiddleware``). ``attribution`` (the checkout snapshot) saves a query
    for the distributor's chain. Never raises for a rule's sake: a failure of the engine itself
    is logged and the checkout allowed, so risk control cannot take the shop down.
    """
    try:
        return assess_checkout_in_full(
            product=product,
            quantity=quantity,
            contact=contact,
            buyer_ip=buyer_ip,
            amount=amount,
            distributor_id=distributor_id,
            device_id=device_id,
            device_hash=device_hash,
            payment_account=payment_account,
            attribution=attribution,
            checkout_token=checkout_token,
            request=request,
        ).verdict
    except Exception:
        logger.exception("riskcontrol.assessment_failed")
        return ALLOW


def assess_checkout_in_full(
    *,
    product,
    quantity: int,
    contact: str,
    buyer_ip: str | None,
    amount,
    distributor_id=None,
    device_id: str | None = None,
    device_hash: str | None = None,
    payment_account: str = "",
    attribution: dict | None = None,
    checkout_token: str = "",
    request=None,
    docking_site_id: int | None = None,
    docking_order_limit: int | None = None,
) -> Assessment:
    """``assess_checkout`` with the hits and the recorded signal (for tests and the console).

    ``docking_site_id``: an API order of that docking site, judged by the docking policy
    (ADR 0019): velocity per site, at most ``docking_order_limit`` (the site's own, else the
    ``docking_velocity`` rule's threshold) within the rule's window; no buyer rules."""
    now = timezone.now()
    device = None
    if request is not None:
        from ..fingerprint import device_from_request

        device = device_from_request(request)
    elif device_id is None:
        device = current_device()
    if device is not None:
        device_id = device_id if device_id is not None else device.device_id
        device_hash = device_hash if device_hash is not None else device.device_hash
        buyer_ip = buyer_ip or device.ip
    device_id = (device_id or "")[:64]
    amount = Decimal(str(amount or 0)).quantize(Decimal("0.01"))
    contact_idx = contact_index(contact)
    payment_idx = payment_account_index(payment_account)
    distributor_id = int(distributor_id) if distributor_id else None
    chain_ids = None
    if distributor_id and attribution and attribution.get("matched") is not False and "chain" in attribution:
        chain_ids = [
            distributor_id,
            *[int(pk) for pk in attribution.get("chain") or []],
        ]
    rules = active_rules()
    signal = RiskSignal(
        kind=SignalKind.CHECKOUT,
        created_at=now,
        ip=buyer_ip or None,
        device_id=device_id,
        device_hash=(device_hash or "")[:64],
        contact_index=contact_idx,
        contact_mask=mask_contact(contact),
        payment_account_index=payment_idx,
        distributor_id=distributor_id,
        product_id=getattr(product, "pk", None),
        quantity=int(quantity or 0),
        amount=amount,
        checkout_token=(checkout_token or "")[:64],
        verdict=Verdict.ALLOW,
        docking_site_id=int(docking_site_id) if docking_site_id else None,
    )
    hits = _evaluate(
        rules=rules,
        ip=buyer_ip,
        device_id=device_id,
        contact=contact,
        contact_idx=contact_idx,
        payment_idx=payment_idx,
        product_id=getattr(product, "pk", None),
        amount=amount,
        distributor_id=distributor_id,
        chain_ids=chain_ids,
        now=now,
        signal=signal,  # recorded by the figures statement
        docking_site_id=int(docking_site_id) if docking_site_id else None,
        docking_order_limit=docking_order_limit,
    )
    verdict = _verdict(hits)
    signal.verdict = verdict
    signal.explanation = "；".join(hit.explanation for hit in hits)[:2000]
    take_back = distributor_id and verdict == BLOCK and rules[RuleCode.DISTRIBUTOR_DAILY_LIMIT].is_enabled
    day = timezone.localtime(now).date()
    if hits:
        # Recorded as "allow" with the figures; now what the rules decided (one round trip).
        # Two statements in a pipeline: a prepared statement holds one command, not two.
        statements = [
            (
                risk_sql.SET_VERDICT,
                [verdict, signal.explanation, signal.pk],
            )
        ]
        if take_back:
            statements.append(
                (
                    risk_sql.TAKE_BACK_DAY_TOTAL,
                    [amount, distributor_id, day],
                )
            )
        fetch_rows_in_one_round_trip(statements)
    if hits:
        _act_on_hits(hits=hits, signal=signal, distributor_id=distributor_id)
    return Assessment(verdict=verdict, hits=hits, signal=signal)


_SIGNAL_COLUMNS = (
    "kind", "created_at", "ip", "device_id", "device_hash", "contact_index", "contact_mask",
    "payment_account_index", "distributor_id", "docking_site_id", "user_id", "product_id", "quantity", "amount",
    "checkout_token", "order_no", "verdict", "explanation",
)  # fmt: skip


def _act_on_hits(*, hits: list[Hit], signal: RiskSignal, distributor_id: int | None) -> None:
    """Record one event per rule that fired and carry out the heavier actions."""
    events = []
    for hit in hits:
        outcome = ""
        if hit.rule.action == Action.BLACKLIST:
            added = []
            for kind, value in hit.blacklist:
                if not value:
                    continue
                try:
                    added.append(
                        add_to_blacklist(
                            kind=kind,
                            value=value,
                            reason=hit.explanation[:200],
                            actor=None,
                            expires_at=timezone.now() + timedelta(days=AUTO_BLACKLIST_DAYS),
                        )
                    )
                except ValidationError:  # a value the blacklist cannot hold; the block stands
                    logger.warning("riskcontrol.auto_blacklist_refused", extra={"kind": kind})
            outcome = _("已加入黑名单：%(entries)s") % {"entries": "、".join(str(entry) for entry in added) or "—"}
        elif hit.rule.action == Action.FREEZE_COMMISSIONS and distributor_id:
            outcome = freeze_distributor_commissions(distributor_id=distributor_id, reason=hit.explanation)
        events.append(
            RiskEvent(
                rule=hit.rule.code,
                action=hit.rule.action,
                signal=signal,
                distributor_id=distributor_id,
                matched_on=hit.matched_on[:32],
                explanation=hit.explanation[:300],
                outcome=outcome[:200],
            )
        )
    RiskEvent.objects.bulk_create(events)
    logger.info(
        "riskcontrol.rules_fired",
        extra={
            "signal": signal.pk,
            "verdict": signal.verdict,
            "rules": [hit.rule.code for hit in hits],
        },
    )


# The commissions app (above riskcontrol) registers its ``freeze_commissions(*, distributor,
# reason, actor)`` here in its AppConfig.ready(): a rule whose action is "freeze the
# commissions" calls it by that name.
_commission_freezer = None


def register_commission_freezer(freeze) -> None:
    global _commission_freezer
    _commission_freezer = freeze


def freeze_distributor_commissions(*, distributor_id: int, reason: str, actor=None) -> str:
    """Freeze through the commissions app's registered ``freeze_commissions``; without one the
    intent is recorded on the event for staff to carry out. Returns what happened."""
    freeze_commissions = _commission_freezer
    if freeze_commissions is None:
        return _("已记录冻结佣金意图（佣金模块未提供冻结服务）")
    from distribution.models import Distributor

    distributor = Distributor.objects.filter(pk=distributor_id).first()
    if distributor is None:
        return _("分销商不存在，未冻结")
    try:
        freeze_commissions(distributor=distributor, reason=reason[:200], actor=actor)
    except Exception as error:  # noqa: BLE001 — a failed freeze is reported on the event, not raised
        logger.warning(
            "riskcontrol.freeze_failed",
            extra={"distributor": distributor_id, "error": error.__class__.__name__},
        )
        return _("冻结佣金失败：%(error)s") % {"error": error.__class__.__name__}
    return _("已冻结分销商佣金")
