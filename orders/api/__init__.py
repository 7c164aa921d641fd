"""The open API (docs/adr/0019): docking sites read the catalog at their price, place orders
paid from their prepaid balance, read their orders and goods, balance and statement, and ask
for refunds. Signed requests (``kamen.api_signing``), verified by
``distribution.docking.services.verify_signed_request``; orders go through the shop's own
checkout, payment and fulfilment services."""
