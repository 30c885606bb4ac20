"""The conformance suite can fail: each check, run against the sim provider with one thing broken
through the public Provider interface, rejects it. (A suite that passes everything proves nothing.)"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tempfile
from pathlib import Path

import pytest
from pixsim_provider_sdk import (
    ProviderError,
    ProviderManifest,
    ProviderStatus,
    ProviderUnavailableError,
    QuotaExceededError,
)
from pixsim_provider_sdk.params import field_problems, validate_params
from pixsim_provider_sdk.testing.checks import manifest_problems, status_notes_problems
from pixsim_provider_sdk.testing.conformance import TIMEOUT_ALLOWANCE, ProviderConformance, case_for_folder

SIM = Path(__file__).resolve().parents[2] / "providers" / "sim"
SUITE = ProviderConformance()
FAILS = (AssertionError, pytest.fail.Exception)
log = logging.getLogger("broken_adapter")


@pytest.fixture
async def case():
    async with case_for_folder(SIM) as opened:
        yield opened


def patch(monkeypatch, provider, name, wrapper):
    """Replace one method of this provider instance with `wrapper(original)`."""
    monkeypatch.setattr(provider, name, wrapper(getattr(provider, name)))


async def test_the_unbroken_sim_passes_the_checks_used_below(case, monkeypatch, tmp_path, caplog):
    await SUITE.test_secrets_never_leak(case, caplog)
    await SUITE.test_prepared_files_are_listed_for_clean_up(case, monkeypatch, tmp_path)


async def test_credentials_in_an_error_message_fail(case, monkeypatch, caplog):
    def wrapper(execute):
        async def leaky(op, account, params):
            try:
                return await execute(op, account, params)
            except ProviderError as exc:
                raise type(exc)(f"{exc.message} with {account.credentials}") from None

        return leaky

    patch(monkeypatch, case.provider, "execute", wrapper)
    with pytest.raises(FAILS, match="contains a credential value"):
        await SUITE.test_secrets_never_leak(case, caplog)


async def test_credentials_in_a_log_record_fail(case, monkeypatch, caplog):
    def wrapper(check_status):
        async def chatty(account, job_id, op=None):
            log.debug("polling %s with %s", job_id, account.credentials)
            return await check_status(account, job_id, op)

        return chatty

    patch(monkeypatch, case.provider, "check_status", wrapper)
    with pytest.raises(FAILS, match="log record broken_adapter"):
        await SUITE.test_secrets_never_leak(case, caplog)


async def test_the_wrong_error_class_fails(case, monkeypatch):
    def wrapper(execute):
        async def vague(op, account, params):
            try:
                return await execute(op, account, params)
            except QuotaExceededError as exc:
                raise ProviderError(exc.message, retryable=False) from None

        return vague

    patch(monkeypatch, case.provider, "execute", wrapper)
    with pytest.raises(FAILS, match="expected QuotaExceededError"):
        await SUITE.test_exhausted_quota_raises_quota_exceeded(case)


async def test_a_wrong_retryable_flag_fails(case, monkeypatch):
    def wrapper(execute):
        async def final(op, account, params):
            try:
                return await execute(op, account, params)
            except ProviderUnavailableError as exc:
                raise ProviderUnavailableError(exc.message, retryable=False) from None

        return final

    patch(monkeypatch, case.provider, "execute", wrapper)
    with pytest.raises(FAILS, match="retryable must be True"):
        await SUITE.test_server_error_raises_unavailable_then_recovers(case)


async def test_a_prepared_file_missing_from_temp_paths_fails(case, monkeypatch, tmp_path):
    def wrapper(prepare):
        async def forgetful(generation, mapped, resolve):
            return {**await prepare(generation, mapped, resolve), "_temp_paths": []}

        return forgetful

    patch(monkeypatch, case.provider, "prepare_execution_params", wrapper)
    with pytest.raises(FAILS, match="resolved files not in _temp_paths"):
        await SUITE.test_prepared_files_are_listed_for_clean_up(case, monkeypatch, tmp_path)


async def test_a_temp_file_left_behind_fails(case, monkeypatch, tmp_path):
    def wrapper(execute):
        async def littering(op, account, params):
            tempfile.mkstemp(prefix="left-behind-")
            return await execute(op, account, params)

        return littering

    patch(monkeypatch, case.provider, "execute", wrapper)
    with pytest.raises(FAILS, match="temp files left behind"):
        await SUITE.test_prepared_files_are_listed_for_clean_up(case, monkeypatch, tmp_path)


async def test_a_wrong_status_mapping_fails(case, monkeypatch):
    def wrapper(check_status):
        async def confused(account, job_id, op=None):
            status = await check_status(account, job_id, op)
            filtered = status.status is ProviderStatus.FILTERED
            return dataclasses.replace(status, status=ProviderStatus.FAILED) if filtered else status

        return confused

    patch(monkeypatch, case.provider, "check_status", wrapper)
    with pytest.raises(FAILS):
        await SUITE.test_moderated_output_maps_to_filtered(case)


async def test_a_result_url_that_does_not_download_fails(case, monkeypatch, tmp_path):
    def wrapper(check_status):
        async def broken_link(account, job_id, op=None):
            status = await check_status(account, job_id, op)
            if status.status is ProviderStatus.COMPLETED:
                status.video_url = status.image_url = f"{case.fake.url}/v1/files/nothing-here.png"
            return status

        return broken_link

    patch(monkeypatch, case.provider, "check_status", wrapper)
    with pytest.raises(FAILS, match="answered HTTP 404"):
        await SUITE.test_every_operation_completes_with_a_downloadable_result(case, monkeypatch, tmp_path)


async def test_an_adapter_slower_than_its_timeout_fails(case, monkeypatch):
    def wrapper(execute):
        async def slow(op, account, params):
            await asyncio.sleep(TIMEOUT_ALLOWANCE)  # e.g. a call with its own, longer timeout
            return await execute(op, account, params)

        return slow

    patch(monkeypatch, case.provider, "execute", wrapper)
    with pytest.raises(FAILS, match="took"):
        await SUITE.test_unresponsive_api_times_out_retryably(case)


async def test_manifest_problems_are_reported(case):
    broken = type(case.provider)()
    manifest = case.manifest.model_dump()
    broken.attach_manifest(
        ProviderManifest(
            **{
                **manifest,
                "version": "one",
                "credit_types": [],
                "domains": ["https://sim.example/app"],
                "status_mapping_notes": "see the docs",
            }
        )
    )
    problems = "\n".join(manifest_problems(broken))
    for expected in (
        "not semver",
        "credit_types is empty",
        "bare lower-case host name",
        "does not say which raw statuses",
    ):
        assert expected in problems, problems


def test_status_notes_must_map_completed_and_failed():
    assert status_notes_problems("") and status_notes_problems("queued=pending, done=completed")
    assert status_notes_problems("DONE=completed, ERROR=failed, 401=auth error") == []


def test_field_problems_catch_malformed_parameters():
    assert field_problems({"name": "n", "type": "integer", "min": 5, "max": 1})
    assert field_problems({"name": "n", "type": "integer", "enum": [1, "two"]})
    assert field_problems({"name": "q", "type": "string", "enum": ["a"], "default": "b"})
    assert field_problems({"name": "n", "type": "float"})
    assert field_problems({"name": "not an identifier"})
    assert field_problems({"name": "d", "type": "integer", "min": 1, "max": 20, "default": 5}) == []


@pytest.mark.parametrize(
    ("field", "problem"),
    [
        (
            {"name": "prompt", "type": "string", "max": 500},
            "'max' applies to integer or number, not string (use max_length",
        ),
        ({"name": "prompt", "type": "string", "maxLength": 500}, "unknown key 'maxLength'"),
        ({"name": "prompt"}, "needs a 'type'"),
        ({"name": "n", "type": "integer", "max_length": 3}, "'max_length' applies to string, not integer"),
        ({"name": "images", "type": "array", "min_items": 3, "max_items": 1}, "min_items is above max_items"),
        (
            {"name": "images", "type": "array", "max_items": True},
            "'max_items' must be a non-negative integer",
        ),
    ],
)
def test_field_problems_refuse_what_would_be_silently_ignored(field, problem):
    assert any(problem in p for p in field_problems(field)), field_problems(field)


def test_array_sizes_are_enforced():
    spec = {"parameters": [{"name": "images", "type": "array", "min_items": 1, "max_items": 2}]}
    assert validate_params(spec, {"images": ["a"]}) == []
    assert validate_params(spec, {"images": []}) == ["parameter 'images' needs at least 1 items, got 0"]
    assert validate_params(spec, {"images": ["a", "b", "c"]}) == [
        "parameter 'images' takes at most 2 items, got 3"
    ]


@pytest.mark.parametrize(
    ("hook", "replacement", "message"),
    [
        (
            "estimate_credits",
            lambda op, params: {"gold": 1},
            "credit type 'gold' is not in the manifest's credit_types",
        ),
        ("estimate_credits", lambda op, params: {"sim": 1.5}, "sim=1.5 is not a non-negative integer"),
        (
            "compute_actual_credits",
            lambda generation, status, estimate: {"sim": -2},
            "sim=-2 is not a non-negative",
        ),
        (
            "compute_actual_credits",
            lambda generation, duration: {"sim": 1},  # PixSim7's signature
            "compute_actual_credits raised TypeError",
        ),
        ("estimate_credits", lambda op, params: 1 / 0, "estimate_credits raised ZeroDivisionError"),
    ],
)
async def test_credits_that_billing_would_refuse_fail(
    case, monkeypatch, tmp_path, hook, replacement, message
):
    monkeypatch.setattr(case.provider, hook, replacement)
    with pytest.raises(FAILS, match=message):
        await SUITE.test_every_operation_completes_with_a_downloadable_result(case, monkeypatch, tmp_path)
