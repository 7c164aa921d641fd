"""The storm's invariants on a scaled docker compose stack (issue 15 §4; scripts/check_scaled.sh
runs this inside a one-off container of the stack, docs/adr/0015-beyond-one-machine.md).

Buyers (threads, each its own cookies and address) come through a distributor's referral link
to ``--base-url`` — ``http://web:8000``, which compose's DNS answers with every web replica, so
successive connections land on different containers — with the headers the proxy adds
(``X-Forwarded-For``: the buyer's own address; the one-off
container is inside the trusted compose network; the check's override turns the https redirect
off inside the network). Product page, checkout, the sandbox cashier
and 支付成功 (its notifications are delivered by whichever io worker takes them), the order's
``status.json`` until the keys are delivered. Then: every buyer got keys, no key sold twice, no
order paid twice, three commissions per order, the ledger balanced, no 5xx. Exit status 1 when
an invariant breaks.

    python -m bench.scaled_check --base-url http://web:8000 --orders 200 --buyers 20
"""

import argparse
import html
import http.cookiejar
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import django

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CHECKOUT_TOKEN_RE = re.compile(r'name="checkout_token" value="([^"]+)"')
STATUS_URL_RE = re.compile(r'data-status-url="([^"]+)"')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class _BehindTheProxy(http.cookiejar.DefaultCookiePolicy):
    """The site sets Secure cookies (production); this client speaks http to web inside the
    network, as the TLS-terminating proxy does, so it sends them anyway."""

    def return_ok_secure(self, cookie, request):
        return True


class Buyer:
    def __init__(self, base_url: str, address: str, tally: dict, lock: threading.Lock):
        self.base_url, self.address, self.tally, self.lock = base_url, address, tally, lock
        self.jar = http.cookiejar.CookieJar(policy=_BehindTheProxy())
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def request(self, method: str, path: str, form: dict | None = None, expect: tuple = (200,)):
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        headers = {"X-Forwarded-For": self.address, "User-Agent": f"scaled-check {self.address}"}
        if form is not None:
            headers |= {"Content-Type": "application/x-www-form-urlencoded", "Referer": self.base_url + path}
        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers)  # noqa: S310
        try:
            response = self.opener.open(request, timeout=60)
        except urllib.error.HTTPError as error:
            response = error
        text = response.read().decode("utf-8", "replace")
        with self.lock:
            self.tally["statuses"][response.status] = self.tally["statuses"].get(response.status, 0) + 1
        if response.status not in expect:
            raise RuntimeError(f"{method} {path}: {response.status} {text[:120]!r}")
        return response, text

    def csrf(self) -> str:
        return next(cookie.value for cookie in self.jar if cookie.name == "csrftoken")

    def buy(self, product_id: int, link_code: str, number: int) -> None:
        response, _ = self.request("GET", f"/r/{link_code}/p/{product_id}/", expect=(302,))
        _, page = self.request(
            "GET", urllib.parse.urlsplit(response.headers["Location"])._replace(scheme="", netloc="").geturl()
        )
        form = {
            "csrfmiddlewaretoken": CSRF_RE.search(page).group(1),
            "checkout_token": CHECKOUT_TOKEN_RE.search(page).group(1),
            "quantity": "1",
            "contact": f"scaled-{number}@buyers.test",
            "query_password": "scaled-pass",
        }
        response, _ = self.request("POST", f"/buy/{product_id}/", form, expect=(302,))
        cashier = urllib.parse.urlsplit(response.headers["Location"]).path
        _, page = self.request("GET", cashier)
        response, _ = self.request(
            "POST", cashier, {"csrfmiddlewaretoken": CSRF_RE.search(page).group(1), "action": "pay"}, expect=(302,)
        )
        location = urllib.parse.urlsplit(response.headers["Location"])
        _, page = self.request("GET", location.path + (f"?{location.query}" if location.query else ""))
        found = STATUS_URL_RE.search(page)
        status_path = html.unescape(found.group(1)) if found else location.path + "status.json"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            _, body = self.request("GET", status_path)
            summary = json.loads(body)
            if summary["delivered"]:
                return
            if summary.get("is_under_review") or summary["is_final"]:
                raise RuntimeError(f"order ended {summary['status']} without keys")
            time.sleep(1)
        raise RuntimeError("keys not delivered within 120 s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", default="http://web:8000")
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--buyers", type=int, default=20)
    options = parser.parse_args()
    django.setup()

    from django.db.models import Count

    from bench.http_storm import Tally, _check_invariants, _product
    from bench.pipeline import _referral_link
    from commissions.models import Commission
    from commissions.selectors import ledger_differences
    from orders.models import Order

    run = int(time.time()) % 1000
    product = _product(run, options.orders, lean=False)
    link_code = _referral_link(run)
    tally = {"statuses": {}, "completed": 0, "failures": []}
    lock = threading.Lock()
    numbers = iter(range(options.orders))

    def buyer_thread() -> None:
        for number in numbers:
            address = f"10.{200 + number // 62500}.{number // 250 % 250}.{number % 250 + 1}"
            try:
                Buyer(options.base_url, address, tally, lock).buy(product.pk, link_code, number)
                with lock:
                    tally["completed"] += 1
            except Exception as error:  # noqa: BLE001 — every failure is counted and shown
                with lock:
                    tally["failures"].append(f"buyer {number}: {error!r}"[:300])

    started = time.monotonic()
    threads = [threading.Thread(target=buyer_thread) for _ in range(options.buyers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    time.sleep(5)  # the last deliveries' commissions and e-mails

    checked = _check_invariants(product, Tally(completed=tally["completed"]))
    orders = Order.objects.filter(product=product)
    per_order = Commission.objects.filter(order__in=orders).values("order_id").annotate(rows=Count("id"))
    books = ledger_differences()
    problems = list(checked["problems"])
    if tally["failures"]:
        problems.append(f"{len(tally['failures'])} buyers failed, e.g. {tally['failures'][:3]}")
    if any(status >= 500 for status in tally["statuses"]):
        problems.append(f"server errors: {tally['statuses']}")
    if {row["rows"] for row in per_order} - {3} or len(per_order) != tally["completed"]:
        problems.append(
            f"commissions per order: {sorted({row['rows'] for row in per_order})} on {len(per_order)} orders"
        )
    if books["accounts"] or books["transactions"]:
        problems.append(f"ledger out of balance: {books['accounts'][:3]} {books['transactions'][:3]}")
    print(
        f"{tally['completed']}/{options.orders} orders in {elapsed:.1f} s ({tally['completed'] / elapsed:.1f}/s, "
        f"{options.buyers} buyers); answers {dict(sorted(tally['statuses'].items()))}; "
        f"by status {checked['by_status']}; held for review {checked['held_for_review']}; "
        f"ledger {books['transaction_count']} transactions"
    )
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
