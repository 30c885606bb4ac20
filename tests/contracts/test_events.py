from __future__ import annotations

import json

import pytest
from pixsim_contracts import (
    ALL_EVENT_TYPES,
    AnyEvent,
    CreditsCharged,
    GenerationRequested,
    ProviderManifest,
    json_schemas,
    subjects,
)
from pydantic import ValidationError


def test_every_event_has_the_envelope_and_a_schema():
    schemas = json_schemas()
    assert len(schemas) == len(ALL_EVENT_TYPES)
    for event_type, schema in schemas.items():
        assert {"event_id", "type", "version", "occurred_at"} <= set(schema["properties"]), event_type
        assert schema["properties"]["type"]["default"] == event_type


def test_events_are_frozen_and_round_trip_through_json():
    event = GenerationRequested(
        generation_id="g1", provider_id="sim", operation_type="text_to_video", params={"prompt": "x"}
    )
    with pytest.raises(ValidationError):
        event.provider_id = "other"  # type: ignore[misc]
    again = AnyEvent.validate_json(event.model_dump_json())
    assert again == event and type(again) is GenerationRequested
    assert event.subject == "pixsim.generations.g1.requested"


def test_unknown_fields_and_bad_ids_are_refused():
    body = {
        "type": "generation.requested",
        "generation_id": "g1",
        "provider_id": "sim",
        "operation_type": "text_to_video",
        "surprise": 1,
    }
    with pytest.raises(ValidationError, match="surprise"):
        AnyEvent.validate_json(json.dumps(body))
    with pytest.raises(ValidationError):
        GenerationRequested(generation_id="a.b", provider_id="sim", operation_type="text_to_video")


def test_subjects_name_the_aggregate_and_refuse_wildcards():
    assert subjects.credits("web", "charged") == "pixsim.credits.web.charged"
    assert subjects.stream_of("pixsim.credits.web.charged") == subjects.CREDITS_STREAM
    assert subjects.dlq("billing") == "pixsim.dlq.billing"
    with pytest.raises(ValueError):
        subjects.generation("a.*")
    event = CreditsCharged(
        generation_id="g", provider_id="p", account_id="a", credit_type="web", amount=1, reserved=1
    )
    assert event.subject == "pixsim.credits.web.charged"


def test_manifest_is_strict():
    with pytest.raises(ValidationError, match="extra"):
        ProviderManifest(id="x", name="X", version="1", kind="video", colour="red")
    with pytest.raises(ValidationError, match="credit type"):
        ProviderManifest(id="x", name="X", version="1", kind="video", credit_types=["a.b"])
