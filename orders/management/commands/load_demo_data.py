"""Demo data for `make run`: staff for every role and a catalog that shows every feature.

It lives in orders, the top layer, because it loads every app's demo, in order: the catalog,
the suppliers, the distributor network, then sales through the real pipeline.

Idempotent: everything is looked up by a natural key first, so running it twice adds nothing.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from catalog.demo import load_catalog_demo, load_stock_demo, load_vault_demo
from catalog.demo_suppliers import load_supplier_demo
from distribution.demo import DEMO_AGENTS, load_network_demo
from kamen.roles import FINANCE, OPERATOR, OWNER, RISK
from orders.demo import DOCKING_USERNAME, load_demo_sales, load_docking_demo

DEMO_PASSWORD = "kamen-demo-2026"
DEMO_STAFF = [
    ("owner", OWNER, "演示店主", True),
    ("operator", OPERATOR, "演示运营", False),
    ("finance", FINANCE, "演示财务", False),
    ("risk", RISK, "演示风控", False),
]


class Command(BaseCommand):
    help = "Load the demo merchant, staff logins and catalog (safe to run twice)."

    def handle(self, *args, **options):
        with transaction.atomic():
            users = self._load_staff()
        load_catalog_demo(owner=users["owner"])
        load_vault_demo(owner=users["owner"])
        load_stock_demo(owner=users["owner"])
        load_supplier_demo()
        chain, link_code = load_network_demo(owner=users["owner"], password=DEMO_PASSWORD)
        if link_code is not None:
            load_demo_sales(root=chain[0], link_code=link_code)
        load_docking_demo(owner=users["owner"], password=DEMO_PASSWORD)
        self._print_logins()

    def _load_staff(self):
        user_model = get_user_model()
        users = {}
        for username, role, display_name, is_superuser in DEMO_STAFF:
            user, created = user_model.objects.get_or_create(
                username=username,
                defaults={"display_name": display_name, "is_staff": True, "is_superuser": is_superuser},
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
            user.groups.add(Group.objects.get(name=role))
            users[username] = user
        return users

    def _print_logins(self):
        # Where the site is reached (run.sh sets SITE_URL from HOST and PORT unless given), not
        # the address gunicorn binds: http://0.0.0.0:8000/ is a 400 (ALLOWED_HOSTS).
        base = settings.SITE_URL
        lines = [
            "",
            "Kamen demo is ready.",
            f"  Shop:              {base}/",
            f"  Merchant console:  {base}/admin/   (console pages: {base}/console/)",
            f"  Health:            {base}/healthz",
            f"  Sandbox supplier:  {base}/sandbox/supplier/   (suppliers: {base}/admin/catalog/supplier/)",
            "  Demo staff logins (password for all: " + DEMO_PASSWORD + "):",
        ]
        for username, role, display_name, _superuser in DEMO_STAFF:
            lines.append(f"    {username:<10} role {role:<9} {display_name}")
        lines.append(f"  Agent portal:      {base}/agent/   (same password)")
        for username, display_name, grade in DEMO_AGENTS:
            lines.append(f"    {username:<12} {grade:<4} {display_name}")
        lines += [
            f"  Sub-store:         {base}/s/zongdai/",
            f"  Order look-up:     {base}/query/   (demo orders: query password demo1234)",
            f"  Voucher counter:   {base}/console/redeem/",
            f"  Docking (对接):    products “…（对接上游）” are bought from this site's own open API"
            f" ({base}/api/docs/) by the demo docking site {DOCKING_USERNAME}",
        ]
        self.stdout.write("\n".join(lines) + "\n")
