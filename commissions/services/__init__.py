"""The commissions app's public face: other apps call these (orders: ``split_commissions``,
``reverse_commissions``, ``pay_from_wallet``; risk control: ``freeze_commissions``)."""

from .auto_approval import (
    auto_review_withdrawal,
    clean_auto_approval_policy,
    get_auto_approval_policy,
    save_auto_approval_policy,
)
from .ledger import UnbalancedTransaction, post_journal_transaction
from .lifecycle import (
    freeze_commissions,
    release_commissions,
    reverse_commissions,
    run_settlement,
    settlement_key,
)
from .rules import (
    check_without_saving,
    get_policy,
    rule_set_problems,
    save_campaign,
    save_commission_rule,
    save_commission_tiers,
    save_policy,
    save_product_bonus,
)
from .split import plan_split, split_commissions, split_inputs_statement  # noqa: F401
from .stock import plan_stock_commissions, split_stock_purchase
from .team_bonus import (
    previous_month,
    run_team_bonuses,
    save_team_bonus_rule,
    team_bonus_rule_problems,
)
from .wallets import active_distributor_of, credit_wallet_top_up, debit_wallet_for_order
from .withdrawals import (
    InsufficientBalance,
    add_payout_account,
    approve_withdrawal,
    check_payout,
    labour_remuneration_tax,
    new_request_token,
    pay_from_wallet,
    pay_withdrawal,
    record_payout_notification,
    record_payout_result,
    reject_withdrawal,
    request_withdrawal,
    reveal_payout_account,
)

__all__ = [
    "plan_stock_commissions",
    "split_stock_purchase",
    "InsufficientBalance",
    "UnbalancedTransaction",
    "active_distributor_of",
    "add_payout_account",
    "credit_wallet_top_up",
    "debit_wallet_for_order",
    "approve_withdrawal",
    "auto_review_withdrawal",
    "check_payout",
    "clean_auto_approval_policy",
    "get_auto_approval_policy",
    "check_without_saving",
    "freeze_commissions",
    "get_policy",
    "labour_remuneration_tax",
    "new_request_token",
    "pay_from_wallet",
    "pay_withdrawal",
    "plan_split",
    "previous_month",
    "post_journal_transaction",
    "record_payout_notification",
    "record_payout_result",
    "reject_withdrawal",
    "release_commissions",
    "request_withdrawal",
    "reveal_payout_account",
    "reverse_commissions",
    "rule_set_problems",
    "run_settlement",
    "run_team_bonuses",
    "save_auto_approval_policy",
    "save_campaign",
    "save_commission_rule",
    "save_commission_tiers",
    "save_policy",
    "save_product_bonus",
    "save_team_bonus_rule",
    "settlement_key",
    "split_commissions",
    "team_bonus_rule_problems",
]
