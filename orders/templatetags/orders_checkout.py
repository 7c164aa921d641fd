"""``{% checkout_form product %}``: the buy form on the product page, with a fresh one-time
token (or the values and errors of a refused submission)."""

from django import template

from catalog.models import ProductType

register = template.Library()


@register.inclusion_tag("orders/partials/checkout_form.html", takes_context=True)
def checkout_form(context, product):
    from orders.services import new_checkout_token

    state = context.get("checkout") or {}
    values = state.get("values") or {}
    errors = state.get("errors") or {}
    given = state.get("fields") or {}
    fields = [
        {
            "name": field.name,
            "label": field.label,
            "help_text": field.help_text,
            "is_required": field.is_required,
            "value": given.get(field.name, ""),
            "errors": errors.get(field.name, []),
        }
        for field in product.custom_fields.all()
    ]
    return {
        "product": product,
        "token": state.get("token") or new_checkout_token(),
        "values": values,
        "errors": errors,
        "general_errors": list(errors.get("__all__", [])) + list(errors.get("product", [])),
        "fields": fields,
        "needs_target": product.product_type == ProductType.DIRECT_RECHARGE or bool(product.recharge_target_rule),
        "in_stock": getattr(getattr(product, "stock_state", None), "in_stock", True),
        "csrf_token": context.get("csrf_token"),
    }
