"""Merchant console (admin) pages for this part of the catalog."""
