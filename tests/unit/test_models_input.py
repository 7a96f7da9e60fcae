"""What a client may send: numbers the gateway carries exactly, texts that are not blank, quote
times in a sane range. Each refusal names its field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from gateway.models import (
    MAX_DECIMAL_PLACES,
    MAX_SIGNIFICANT_DIGITS,
    HaltRequest,
    OutcomeReport,
    Signal,
    SimQuote,
)

D = Decimal


def signal(**fields: Any) -> Signal:
    body: dict[str, Any] = {
        "signal_id": "s-1",
        "strategy": "momentum",
        "symbol": "AAPL",
        "side": "buy",
        "quantity": 10,
    }
    body.update(fields)
    return Signal(**body)


def refusal(build: Any, **fields: Any) -> tuple[str, str]:
    """The (field, reason) of the one error building the model raises."""
    with pytest.raises(ValidationError) as caught:
        build(**fields)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return ".".join(str(p) for p in errors[0]["loc"]), str(errors[0]["msg"])


# --- numbers -------------------------------------------------------------------------------

# The domain, built digit by digit: up to 15 significant digits, up to 9 decimal places, below
# 10**12. Every such number survives a double (the JSON answer, the broker adapters) unchanged.
in_domain = st.builds(
    lambda digits, places: D(digits).scaleb(-places),
    st.integers(min_value=1, max_value=10**MAX_SIGNIFICANT_DIGITS - 1),
    st.integers(min_value=0, max_value=MAX_DECIMAL_PLACES),
).filter(lambda value: value < D(10) ** 12)


@given(value=in_domain)
def test_every_number_in_the_domain_is_answered_as_sent(value: Decimal) -> None:
    for sent in (str(value), f"{value:f}", float(value)):
        model = signal(quantity=sent, order_type="limit", limit_price=sent)
        assert model.quantity == value and model.limit_price == value
        answered = model.model_dump(mode="json")
        # What the JSON answer carries (a double) is the number that was sent, exactly.
        assert D(repr(answered["quantity"])) == value
        assert D(repr(answered["limit_price"])) == value
        # What the journal keeps (the Decimal's text) reads back as the same number.
        assert D(str(model.quantity)) == value


@given(value=in_domain, extra=st.integers(min_value=1, max_value=9))
def test_a_sixteenth_significant_digit_is_refused(value: Decimal, extra: int) -> None:
    # value followed by one more non-zero digit: 16+ significant digits, or a 10th decimal place.
    digits = "".join(map(str, value.as_tuple().digits)).rstrip("0")
    longer = D(f"0.{digits}{'0' * (MAX_SIGNIFICANT_DIGITS - len(digits))}{extra}")
    field, _ = refusal(signal, quantity=str(longer))
    assert field == "quantity"


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        ("1e-400", "more than 9 decimal places"),  # would be 0 as a double
        ("0.0000000001", "more than 9 decimal places"),
        ("1.5e-9", "more than 9 decimal places"),
        ("1e999999", "must be below 1000000000000"),  # was a 500 (decimal.Overflow)
        ("1e99999999999999999999", "exponent out of range"),
        ("1e12", "must be below 1000000000000"),
        (1e12, "must be below 1000000000000"),
        (10**40, "must be below 1000000000000"),
        ("1.0000000000000001", "more than 9 decimal places"),
        ("1234567.123456789", "16 significant digits"),
        ("100000000000.0001", "16 significant digits"),
        ("NaN", "finite"),
        ("-Infinity", "finite"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        ("sNaN", "finite"),
        ("ten", "not a number"),
        ("", "not a number"),
        (True, "not a boolean"),
        (0, "greater than 0"),
        ("-0.1", "greater than 0"),
        ("-1e-400", "greater than 0"),
    ],
)
def test_numbers_outside_the_domain_are_refused_naming_the_field(sent: Any, reason: str) -> None:
    for name in ("quantity", "limit_price"):
        fields = {name: sent, "order_type": "limit", "limit_price": 100}
        fields[name] = sent
        field, message = refusal(signal, **fields)
        assert field == name
        assert reason in message, message


def test_the_edges_of_the_domain_are_accepted() -> None:
    assert signal(quantity="0.000000001").quantity == D("0.000000001")
    assert signal(quantity="999999999999.999").quantity == D("999999999999.999")
    assert signal(quantity="123456.123456789").quantity == D("123456.123456789")  # 15 digits
    assert signal(quantity=0.1).model_dump(mode="json")["quantity"] == 0.1


def test_numbers_are_kept_in_their_shortest_plain_form() -> None:
    # The same number, written so the journal and every message show it plainly.
    assert str(signal(quantity="1e2").quantity) == "100"
    assert str(signal(quantity="1.50000000000000000000000").quantity) == "1.5"
    assert str(signal(quantity=150.0).quantity) == "150"
    assert str(signal(quantity=" 7 ").quantity) == "7"


def test_bodies_that_differ_in_the_15th_digit_serialise_differently() -> None:
    # The engine hashes the serialised body for idempotency: numbers that differ must not
    # collapse into one double.
    a = signal(quantity="123456.123456789").model_dump_json()
    b = signal(quantity="123456.123456788").model_dump_json()
    assert a != b
    assert signal(quantity="0.10").model_dump_json() == signal(quantity=0.1).model_dump_json()


def test_sim_quote_prices_follow_the_same_domain() -> None:
    quote = SimQuote(symbol="AAPL", bid="199.95", ask=200.05)
    assert (quote.bid, quote.ask) == (D("199.95"), D("200.05"))
    for name, sent in (("bid", "1e-400"), ("ask", "1e999999"), ("bid", "NaN"), ("ask", 0)):
        fields: dict[str, Any] = {"symbol": "AAPL", "bid": 1, "ask": 2, name: sent}
        field, _ = refusal(SimQuote, **fields)
        assert field == name


# --- texts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", " ", "   ", "\t\n", "\u3000"])
def test_a_blank_halt_reason_is_refused(blank: str) -> None:
    assert refusal(HaltRequest, reason=blank) == ("reason", "Value error, must not be blank")


def test_a_halt_reason_is_stripped() -> None:
    assert HaltRequest(reason="  broker is slow \n").reason == "broker is slow"


def test_an_outcome_error_must_not_be_blank() -> None:
    field, message = refusal(
        OutcomeReport, strategy="momentum", ok=False, failure_type="data_error", error="  "
    )
    assert (field, message) == ("error", "Value error, must not be blank")
    report = OutcomeReport(strategy="momentum", ok=False, failure_type="data_error", error=" x ")
    assert report.error == "x"
    assert OutcomeReport(strategy="momentum", ok=False).error is None
    assert refusal(OutcomeReport, strategy="  ", ok=True)[0] == "strategy"


@pytest.mark.parametrize("text", ["\ud800", "bad \udfff text"])
def test_free_text_with_a_lone_surrogate_is_refused(text: str) -> None:
    # JSON may carry "\ud800", which no answer can encode as UTF-8: once stored, every status,
    # halt and kill answer that shows it would fail. An optional text is checked like any other.
    reason = "Value error, must be valid Unicode text (a lone surrogate is not)"
    assert refusal(OutcomeReport, strategy="momentum", ok=False, error=text) == ("error", reason)
    assert refusal(HaltRequest, reason=text)[0] == "reason"


# --- quote times ---------------------------------------------------------------------------


def sim_quote_at(ts: Any) -> SimQuote:
    return SimQuote(symbol="AAPL", bid=1, ask=2, ts=ts)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1700000000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (1700000000.5, datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)),
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),  # no zone: UTC
        ("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2199-12-31T23:59:59Z", datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)),
        (None, None),
    ],
)
def test_quote_times_in_range_are_taken_as_utc(ts: Any, expected: datetime | None) -> None:
    taken = sim_quote_at(ts).ts
    assert taken == expected
    assert taken is None or taken.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "ts",
    [
        float("nan"),
        float("inf"),
        1e300,  # was a 500
        10**400,
        -1,
        datetime(2200, 1, 1, tzinfo=UTC).timestamp(),
        "nan",
        "1e300",
        "2200-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "0001-01-01T00:00:00+14:00",  # converting it to UTC would overflow
        "9999-12-31T23:59:59-14:00",
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
        "yesterday",
        "2026-13-01T00:00:00Z",
        True,
        [],
    ],
)
def test_quote_times_out_of_range_or_not_times_are_refused(ts: Any) -> None:
    field, _ = refusal(sim_quote_at, ts=ts)
    assert field == "ts"


def test_every_client_model_refuses_unknown_fields() -> None:
    models: list[tuple[type[BaseModel], dict[str, Any]]] = [
        (HaltRequest, {"reason": "x"}),
        (SimQuote, {"symbol": "AAPL", "bid": 1, "ask": 2}),
        (OutcomeReport, {"strategy": "s", "ok": True}),
    ]
    for model, good in models:
        model(**good)
        with pytest.raises(ValidationError):
            model(**good, colour="red")


def test_the_schema_states_the_domain() -> None:
    # Clients generate their code from /openapi.json: the limits and the epoch form are in it.
    quantity = Signal.model_json_schema()["properties"]["quantity"]
    (number,) = [s for s in quantity["anyOf"] if s["type"] == "number"]
    assert (number["exclusiveMinimum"], number["exclusiveMaximum"]) == (0, 1e12)
    assert "15 significant digits" in quantity["description"]
    (ts, _null) = SimQuote.model_json_schema()["properties"]["ts"]["anyOf"]
    assert {"type": "number"} in ts["anyOf"]
