"""What the catalog adds to the console's index (``kamen.admin_site.add_index_panel``)."""


def console_index_panel(request) -> dict:
    """The stock and sales dashboard, and the open supplier alerts for staff who may see them."""
    from catalog.selectors.products import console_dashboard
    from catalog.selectors.suppliers import open_supplier_alerts

    panel = {"dashboard": console_dashboard()}
    if request.user.has_perm("catalog.view_supplieralert"):
        panel["supplier_alerts"] = list(open_supplier_alerts()[:8])
    return panel
