"""Strict, bounded events: what an upstream system (or an attacker) can no longer slip past validation."""

from __future__ import annotations

import json

import pytest
from pixsim_contracts import AnyCreditEvent, AnyEvent, AnyGenerationEvent, ErrorInfo, GenerationFailed
from pixsim_contracts.limits import MAX_CREDITS, MAX_TEXT
from pydantic import ValidationError

CHARGE = {
    "type": "credits.charged",
    "generation_id": "g1",
    "provider_id": "sim",
    "account_id": "acc_1",
    "credit_type": "sim",
    "amount": 10,
    "reserved": 10,
}
SYNC = {
    "type": "credits.synced",
    "provider_id": "sim",
    "account_id": "acc_1",
    "credit_type": "sim",
    "provider_balance": 5,
}
REQUEST = {
    "type": "generation.requested",
    "generation_id": "g1",
    "provider_id": "sim",
    "operation_type": "text_to_video",
    "params": {"prompt": "x"},
}


def valid(adapter, body: dict) -> bool:
    try:
        adapter.validate_json(json.dumps(body))
        return True
    except ValidationError:
        return False


@pytest.mark.parametrize("amount", ["10", 10.0, 10.5, True, None, -1, MAX_CREDITS + 1, "1e3", [10]])
def test_credit_amounts_are_whole_non_negative_bounded_numbers(amount) -> None:
    assert valid(AnyCreditEvent, CHARGE)
    assert not valid(AnyCreditEvent, {**CHARGE, "amount": amount})
    assert not valid(AnyCreditEvent, {**CHARGE, "reserved": amount})


@pytest.mark.parametrize("balance", [-1, "5", 5.0, MAX_CREDITS + 1])
def test_a_provider_balance_is_never_negative_nor_a_string(balance) -> None:
    assert valid(AnyCreditEvent, SYNC)
    assert not valid(AnyCreditEvent, {**SYNC, "provider_balance": balance})


@pytest.mark.parametrize(
    "field,value",
    [
        ("generation_id", "a.b"),
        ("generation_id", "x" * 129),
        ("generation_id", ""),
        ("generation_id", 7),
        ("provider_id", "sim.*"),
        ("account_id", "acc 1"),
        ("priority", "1"),
        ("priority", 10**9),
        ("version", 0),
        ("version", "1"),
        ("params", {"p": "x" * 70_000}),
        ("params", [1]),
        ("user_id", "a\nb"),
        ("event_id", "e" * 300),
        ("unknown_field", 1),
        ("type", "generation.minted"),
    ],
)
def test_requests_refuse_loose_ids_sizes_and_types(field, value) -> None:
    assert valid(AnyGenerationEvent, REQUEST)
    assert not valid(AnyGenerationEvent, {**REQUEST, field: value})


def test_deep_params_and_unknown_types_are_refused() -> None:
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["d"] = {}
        node = node["d"]
    assert not valid(AnyGenerationEvent, {**REQUEST, "params": deep})
    assert not valid(AnyEvent, {**REQUEST, "type": "credits.minted"})
    assert not valid(AnyGenerationEvent, [REQUEST])  # a JSON array is no event


def test_free_text_is_cut_not_refused() -> None:
    # A provider's long error message must never make the event impossible to build.
    failed = GenerationFailed(
        generation_id="g1", provider_id="sim", error=ErrorInfo(code="x", message="m" * 10_000)
    )
    assert len(failed.error.message) == MAX_TEXT
    assert AnyGenerationEvent.validate_json(failed.model_dump_json()) == failed


def test_progress_is_a_finite_fraction() -> None:
    ok = {"type": "generation.progressed", "generation_id": "g1", "progress": 0.5}
    assert valid(AnyGenerationEvent, ok) and valid(AnyGenerationEvent, {**ok, "progress": 1})
    for bad in ("0.5", 1.5, -0.1, True):
        assert not valid(AnyGenerationEvent, {**ok, "progress": bad})
