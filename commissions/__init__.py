"""Commissions: rules, the per-order split, a double-entry ledger, settlement, withdrawals.

How money moves (balance = credits − debits; every row is a ``JournalTransaction`` whose
debits equal its credits, keyed by ``reference``):

| event | debit | credit | reference |
| --- | --- | --- | --- |
| split (accrual) | merchant revenue | each beneficiary's pending | ``accrual:order:<id>`` |
| team bonus (accrual, monthly) | merchant revenue | the team leader's pending | ``team-bonus:<leader>:<YYYY-MM>`` |
| refund before settlement (cancellation) | pending | merchant revenue | ``reversal:<commission>:<target>`` |
| refund after settlement (clawback) | available (may go negative) | merchant revenue | same |
| settlement | pending | available | ``settlement:<run>:<distributor>`` |
| risk hold / release | pending, available ↔ frozen | | ``freeze:<hold>`` / ``release:<hold>`` |
| withdrawal requested | available | payouts in transit (net), tax withheld, merchant revenue (fee) | ``withdrawal:<id>`` |
| rejected / payout failed | the reverse of the request | | ``withdrawal-return:<id>`` |
| month's tax recomputed | tax withheld (or available) | available (or tax withheld) | ``tax-adjustment:<id>`` |
| payout succeeded | payouts in transit | payouts paid | ``payout:<id>`` |
| wallet payment | available | merchant revenue | ``wallet:<reference>`` |
| deposit paid (docs/adr/0023) | gateway clearing | deposit | ``deposit:<payment no>`` |
| deposit covers a clawback debt | deposit | available | ``deposit-offset:<refund>`` |
| deposit refunded (then withdrawn) | deposit | available | ``deposit-refund:<refund>`` |

Entry points for other apps are in ``commissions.services``: ``split_commissions(order=...)``
(orders' fulfilment calls it inside the delivery transaction; idempotent),
``reverse_commissions(order=...)`` (orders calls it after a refund's commit),
``pay_from_wallet(distributor=..., amount=..., reference=...)``, ``freeze_commissions`` /
``release_commissions``.
"""
