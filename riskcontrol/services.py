"""Writes and checks of risk control, its public face for other apps.

The rules engine arrives with the risk-control issue; until then every checkout is allowed.
"""

ALLOW = "allow"
REVIEW = "review"
BLOCK = "block"


def assess_checkout(*, product, quantity: int, contact: str, buyer_ip: str | None, amount, distributor_id=None) -> str:
    """"allow", "review" (the order is placed but held for staff) or "block" (refused with a
    message). Called by checkout before anything is reserved."""
    return ALLOW
