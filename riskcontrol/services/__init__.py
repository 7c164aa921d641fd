"""Writes and checks of risk control, its public face for other apps, by topic: the checkout
assessment and the rules' actions (``assessment``), buyers' and distributors' signals
(``signals``), the blacklist (``blacklist``) and the review cases (``cases``). Import from
the module that owns the function."""
