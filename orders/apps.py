from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = _("订单")

    def ready(self):
        from catalog.signals import card_keys_imported
        from distribution.selectors import register_order_model
        from kamen.encrypted_fields import register_encrypted_field

        from .models import Order, OrderDelivery, Voucher
        from .services.redemption import CODE_CONTEXT, SECRET_CONTEXT

        register_encrypted_field(OrderDelivery, "content_ciphertext", "content_key_id")
        register_encrypted_field(Voucher, "code_ciphertext", "code_key_id", CODE_CONTEXT)
        register_encrypted_field(Voucher, "secret_ciphertext", "secret_key_id", SECRET_CONTEXT)

        register_order_model(Order)  # distribution reads its sellers' sales from it
        card_keys_imported.connect(_fulfil_backorders_on_import, dispatch_uid="orders.backorders_on_import")
        checks.register(_gateway_fee_settings)

        from commissions.ledger_checks import register_ledger_check

        from .services.books import order_books_problems

        register_ledger_check(order_books_problems)


def _gateway_fee_settings(app_configs=None, **kwargs):
    """A fee setting that cannot be read stops the start (manage.py check, every command)."""
    from django.core.exceptions import ImproperlyConfigured

    from .gateways.configured import check_fee_settings

    try:
        check_fee_settings()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="orders.E020")]
    return []


def _fulfil_backorders_on_import(sender, product, count=0, **kwargs):
    """New card keys committed: serve the back-order queue for that product, oldest first."""
    from orders.services.enqueue import run_task_now_or_enqueue

    run_task_now_or_enqueue("fulfil_backorders_task", product_id=product.pk)
