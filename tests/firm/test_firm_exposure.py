"""The firm exposure limit on real gateway processes: concurrent signals on several gateways
never pass it together, and a reservation whose order never left is given back."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import signal
from tests.e2e.process import GatewayProcess
from tests.firm.conftest import ADMIN, STRATEGY, firm_gateway

pytestmark = pytest.mark.timeout(240)

PRICE = 200.05  # AAPL's ask: a market buy of 10 is valued at 2000.5
LIMIT = 10_000


async def fire(gateways: list[GatewayProcess], per_gateway: int, tag: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(headers=STRATEGY, timeout=30) as client:

        async def one(gw: GatewayProcess, n: int) -> dict[str, Any]:
            sid = f"{tag}-{gw.port}-{n}"
            answer = await client.post(f"{gw.url}/v1/signals", json=signal(sid))
            return answer.json()  # type: ignore[no-any-return]

        return await asyncio.gather(*(one(gw, n) for gw in gateways for n in range(per_gateway)))


def firm_status(gw: GatewayProcess) -> dict[str, Any]:
    done = gw.cli("firm", "status")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_concurrent_signals_on_three_gateways_never_pass_the_limit_together(
    tmp_path: Path, firm_dsn: str
) -> None:
    firm = {"max_gross_exposure": LIMIT}
    risk = {"pre_trade": {"max_orders_per_second": 10_000}}
    with ExitStack() as stack:
        gateways = [
            stack.enter_context(firm_gateway(tmp_path, firm_dsn, f"gw-{n}", firm=firm, risk=risk))
            for n in range(3)
        ]
        for round_ in range(2):  # the second round meets the first's settled exposure
            decisions = asyncio.run(fire(gateways, 6, f"r{round_}"))
            accepted = [d for d in decisions if d["decision"] == "accepted"]
            refused = [d for d in decisions if d["decision"] == "rejected"]
            assert len(accepted) + len(refused) == len(decisions), decisions
            for d in refused:
                assert [r["code"] for r in d["reasons"]] == ["firm_exposure"], d
            if round_ == 0:
                assert sum(o["order"]["notional"] for o in accepted) <= LIMIT
                assert len(accepted) == 4  # 4 x 2000.5 fits, a fifth would not
            else:
                assert accepted == []
        now = firm_status(gateways[0])
        assert now["gross_exposure"] + now["reservations"]["amount"] <= LIMIT
        assert {g["gateway_id"] for g in now["gateways"]} == {"gw-0", "gw-1", "gw-2"}


def test_a_reservation_whose_order_never_left_is_released(tmp_path: Path, firm_dsn: str) -> None:
    firm = {"max_gross_exposure": 5_000}
    faults = {"brokers": {"simulated": {"faults": {"reject_submits": 1}}}}
    with firm_gateway(tmp_path, firm_dsn, "solo", firm=firm, gateway=faults) as gw:
        with httpx.Client(headers=STRATEGY, timeout=30) as client:
            codes = []
            for n in range(4):
                decision = client.post(f"{gw.url}/v1/signals", json=signal(f"s-{n}")).json()
                codes.append([r["code"] for r in decision["reasons"]] or decision["decision"])
        # The broker's refusal gave its reservation back: two orders fit after it, not one.
        assert codes == [["broker_rejected"], "accepted", "accepted", ["firm_exposure"]]
        assert firm_status(gw)["reservations"]["amount"] <= 5_000


def test_a_cancelled_order_gives_its_room_back(tmp_path: Path, firm_dsn: str) -> None:
    firm = {"max_gross_exposure": 5_000}
    resting = {"order_type": "limit", "limit_price": 150, "quantity": 20, "time_in_force": "gtc"}
    with firm_gateway(tmp_path, firm_dsn, "solo", firm=firm) as gw:
        with httpx.Client(headers=STRATEGY, timeout=30, base_url=gw.url) as client:
            first = client.post("/v1/signals", json=signal("rest-1", **resting)).json()
            assert first["decision"] == "accepted"  # 20 x 150 = 3000 rests at the broker
            second = client.post("/v1/signals", json=signal("rest-2", **resting)).json()
            assert [r["code"] for r in second["reasons"]] == ["firm_exposure"]
            # The kill switch cancels it at the broker (then a resume: cooldown 0 here).
            assert client.post("/v1/kill", json={"reason": "cancel it"}).json()["cancelled"] == 1
            resumed = client.post("/v1/resume", json={}, headers=ADMIN)
            assert resumed.status_code == 200, resumed.text
            deadline = time.monotonic() + 10
            while True:  # the row follows the book within an interval
                third = client.post(
                    "/v1/signals", json=signal(f"rest-3-{time.monotonic()}", **resting)
                ).json()
                if third["decision"] == "accepted" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert third["decision"] == "accepted", third


def test_an_order_that_closes_a_position_passes_at_the_limit(tmp_path: Path, firm_dsn: str) -> None:
    """At the firm's limit a closing sell still goes (it lowers the firm's exposure once it
    fills); a sell past the position, which would open a short, asks for room and is refused."""
    firm = {"max_gross_exposure": 5_000}
    risk = {"pre_trade": {"allow_short": True, "max_orders_per_second": 10_000}}
    with firm_gateway(tmp_path, firm_dsn, "solo", firm=firm, risk=risk) as gw:
        with httpx.Client(headers=STRATEGY, timeout=30, base_url=gw.url) as client:
            bought = client.post("/v1/signals", json=signal("open-1", quantity=20)).json()
            assert bought["decision"] == "accepted"  # 20 x 200.05 = 4001 of the 5000
            deadline = time.monotonic() + 10
            while True:  # the row follows the book within an interval: the firm is near full
                refused = client.post(
                    "/v1/signals", json=signal(f"more-{time.monotonic()}", quantity=10)
                ).json()
                codes = [r["code"] for r in refused["reasons"]]
                if codes == ["firm_exposure"] or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert codes == ["firm_exposure"], refused
            flips = client.post(
                "/v1/signals", json=signal("flip-1", side="sell", quantity=30)
            ).json()
            assert [r["code"] for r in flips["reasons"]] == ["firm_exposure"], flips
            closed = client.post(
                "/v1/signals", json=signal("close-1", side="sell", quantity=20)
            ).json()
            assert closed["decision"] == "accepted", closed
