"""Docking (对接): downstream sites that buy the merchant's goods through the open API.

A docking site (对接商户) is a distributor of the network: its grade sets its cost price and
volume tiers, exactly as for a distributor's wholesale purchase. This package holds the site,
its API keys, the single-use nonces of signed requests and the webhook outbox; the ledger
(prepaid balance) is the commissions app's, the API views are the orders app's (docs/adr/0019).
"""
