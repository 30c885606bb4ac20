"""The read model: only `requested` creates a generation, and only the first one counts."""

from __future__ import annotations

import pytest
from pixsim_contracts import CreditsReserved, GenerationProgressed, GenerationRequested
from pixsim_gateway.projections import UnknownGeneration, apply_event


def _requested(**extra) -> GenerationRequested:
    return GenerationRequested(
        **{
            "generation_id": "g1",
            "provider_id": "sim",
            "operation_type": "text_to_video",
            "params": {"prompt": "x"},
            **extra,
        }
    )


@pytest.mark.parametrize(
    "event",
    [
        GenerationProgressed(generation_id="g1", progress=0.5),
        CreditsReserved(
            generation_id="g1", provider_id="sim", account_id="acc_1", credit_type="sim", amount=1
        ),
    ],
)
def test_no_event_but_requested_creates_a_generation(event) -> None:
    with pytest.raises(UnknownGeneration, match="never seen"):
        apply_event(None, event)


def test_a_second_request_under_the_same_id_changes_nothing() -> None:
    doc = apply_event(None, _requested(user_id="alice"))
    assert doc is not None and doc["user_id"] == "alice"
    assert apply_event(doc, _requested(user_id="mallory", params={"prompt": "other"})) is None
    assert apply_event(doc, GenerationProgressed(generation_id="g1", progress=0.5))["status"] == "processing"
