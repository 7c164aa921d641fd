"""A fake upstream Kamen for the docking tests: it answers the open API's order endpoints the
way Kamen does (idempotent on ``client_order_no``, goods only on the order's page once it is
completed) and counts what it sold, and can be told to be down, out of stock, short of our
prepaid balance, slow to deliver, or to lose its answer after acting on the request."""

import json
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import unquote, urlsplit

from catalog.suppliers import TransportResponse, TransportTimeout, TransportUnreachable


@dataclass
class FakeUpstream:
    price: Decimal = Decimal("8.00")
    charged: Decimal | None = None  # an order's total whatever its quantity (else price × quantity)
    is_down: bool = False
    is_out_of_stock: bool = False
    is_balance_short: bool = False
    delivers_at_once: bool = True
    loses_next_answer: bool = False
    orders: dict = field(default_factory=dict)  # client_order_no → order
    requests: list = field(default_factory=list)

    @property
    def purchases(self) -> int:
        return len(self.orders)

    def deliver_all(self) -> None:
        """The upstream's worker runs: every paid order completed."""
        for order in self.orders.values():
            order["status"] = "completed"

    def __call__(self, *, method, url, body, headers, timeout):
        path = urlsplit(url).path
        self.requests.append((method, path))
        if self.is_down:
            raise TransportUnreachable("connection refused")
        if method == "POST" and path.endswith("/api/v1/orders"):
            response = self._place(json.loads(body))
        elif method == "GET" and "/api/v1/orders/" in path:
            response = self._show(unquote(path.rsplit("/", 1)[1]))
        else:
            response = self._answer(404, {"code": "not_found"})
        if self.loses_next_answer:
            self.loses_next_answer = False
            raise TransportTimeout("the answer was lost")
        return response

    def _answer(self, status: int, data: dict) -> TransportResponse:
        return TransportResponse(status_code=status, body=json.dumps(data).encode())

    def _place(self, payload: dict) -> TransportResponse:
        number = payload["client_order_no"]
        if number in self.orders:
            return self._answer(200, self._view(self.orders[number], with_goods=False))
        if self.is_out_of_stock:
            return self._answer(409, {"code": "out_of_stock", "message_en": "Not enough stock"})
        if self.is_balance_short:
            return self._answer(402, {"code": "insufficient_balance", "message_en": "Prepaid balance too low"})
        serial = len(self.orders) + 1
        self.orders[number] = {
            "order_no": f"UP{serial:04d}",
            "client_order_no": number,
            "status": "completed" if self.delivers_at_once else "paid",
            "quantity": payload["quantity"],
            "total_amount": str(self.charged if self.charged is not None else self.price * payload["quantity"]),
            "goods": [
                {"kind": "card_key", "card_no": f"C{serial}-{n}", "secret": f"SECRET-{serial}-{n}", "message": ""}
                for n in range(payload["quantity"])
            ]
            if not payload.get("recharge_target")
            else [{"kind": "top_up", "card_no": "", "secret": "", "message": "到账成功"}],
        }
        return self._answer(201, self._view(self.orders[number], with_goods=False))

    def _show(self, number: str) -> TransportResponse:
        order = self.orders.get(number)
        if order is None:
            return self._answer(404, {"code": "order_not_found"})
        return self._answer(200, self._view(order, with_goods=True))

    @staticmethod
    def _view(order: dict, *, with_goods: bool) -> dict:
        view = {key: value for key, value in order.items() if key != "goods"}
        view["goods"] = order["goods"] if with_goods and order["status"] == "completed" else []
        return view


class Upstreams:
    """Routes each request to the fake upstream of its host (``http://<name>.test/``)."""

    def __init__(self, **upstreams: FakeUpstream):
        self.by_host = {f"{name}.test": upstream for name, upstream in upstreams.items()}

    def __call__(self, **request):
        return self.by_host[urlsplit(request["url"]).hostname](**request)
