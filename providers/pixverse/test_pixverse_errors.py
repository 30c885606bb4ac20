"""Each SDK error for its Pixverse case, secrets kept out of errors and results, temp-file clean-up
and cancel. Fixtures: conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from pixsim_provider_sdk import (
    AuthenticationError,
    ConcurrentLimitError,
    ContentFilteredError,
    GenerationContext,
    InvalidParametersError,
    JobNotFoundError,
    OperationType,
    ProviderAccount,
    ProviderError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
    SourceRejected,
)
from pixsim_provider_sdk.files import resolve_source

T2V, T2I, FUSION = OperationType.TEXT_TO_VIDEO, OperationType.TEXT_TO_IMAGE, OperationType.FUSION


async def test_rejected_session_is_an_authentication_error_without_the_token(harness, account_for):
    pv = await harness()
    raw = pv.fake.invalid_raw_data()
    account = await account_for(raw)  # accepted offline: only Pixverse can tell
    token = raw["cookies"]["_ai_token"]
    for call in (pv.submit(account=account), pv.provider.check_status(account, "380000000000001", T2V)):
        with pytest.raises(AuthenticationError, match="10002") as caught:
            await call
        assert (
            not caught.value.retryable and token not in str(caught.value) and token not in repr(caught.value)
        )
    key_only = ProviderAccount(id="k", provider_id="pixverse", credentials={"openapi_key": pv.fake.api_key()})
    with pytest.raises(AuthenticationError, match="no browser session"):
        await pv.submit(account=key_only)
    assert (await pv.submit(account=key_only, api_method="openapi")).provider_job_id.startswith("openapi:")
    bad_key = ProviderAccount(id="b", provider_id="pixverse", credentials={"openapi_key": "sk-wrong-key-123"})
    with pytest.raises(AuthenticationError) as caught:
        await pv.submit(account=bad_key, api_method="openapi")
    assert "sk-wrong-key-123" not in str(caught.value)


async def test_server_echoes_of_credentials_are_scrubbed(pv):
    token = pv.account.credentials["jwt_token"]
    pv.fake.inject_error(10002, f"token {token} is expired")
    with pytest.raises(AuthenticationError) as caught:
        await pv.submit()
    assert token not in str(caught.value) and token not in repr(caught.value) and "***" in str(caught.value)


async def test_quota_is_enforced_with_pixverse_codes(harness):
    pv = await harness(quota=30)
    await pv.submit(duration=5)  # 20 credits
    with pytest.raises(QuotaExceededError, match="500090") as caught:
        await pv.submit(duration=5)
    assert not caught.value.retryable and pv.fake.balance("web") == 10
    await pv.submit(T2I)  # qwen-image at 720p costs 5: it still fits
    empty = await harness(quota=0)
    with pytest.raises(QuotaExceededError, match="500043"):
        await empty.submit()


async def test_rate_limit_carries_retry_after(harness):
    pv = await harness(rate_limit_every=2, retry_after=3)
    await pv.submit()
    with pytest.raises(RateLimitError) as caught:
        await pv.submit()
    assert caught.value.retry_after == 3.0 and caught.value.retryable


async def test_prompt_moderation_at_submit(pv):
    with pytest.raises(ContentFilteredError) as caught:
        await pv.submit(prompt="something Forbidden here")
    assert caught.value.error_code == "content_prompt_rejected" and not caught.value.retryable
    with pytest.raises(ContentFilteredError):
        await pv.submit(
            OperationType.VIDEO_TRANSITION, prompts=["fine", "forbidden"], image_urls=[await pv.image()] * 3
        )


async def test_transient_server_errors_and_outages_are_retryable(harness):
    pv = await harness(fail_submits=1)
    with pytest.raises(ProviderUnavailableError) as caught:
        await pv.submit()
    assert caught.value.retryable and "503" in str(caught.value)
    assert (await pv.submit()).provider_job_id
    pv.fake.stop()  # nobody answers on that port any more
    with pytest.raises(ProviderUnavailableError):
        await pv.provider.check_status(pv.account, "380000000000001", T2V)


async def test_unknown_jobs(pv):
    for job_id, op in [("380000000000999", T2V), ("openapi:380000000000999", T2V), ("not-an-id", T2V),
                       ("380000000000999", T2I)]:  # fmt: skip
        with pytest.raises(JobNotFoundError):
            await pv.provider.check_status(pv.account, job_id, op)


@pytest.mark.parametrize(
    ("err_code", "error", "code", "retryable"),
    [
        (10005, AuthenticationError, "provider_auth", False),
        (10001, AuthenticationError, "provider_account_blocked", False),
        (500044, ConcurrentLimitError, "provider_concurrent_limit", True),
        (500069, ProviderUnavailableError, "provider_unavailable", True),
        (500054, ContentFilteredError, "content_output_rejected", True),
        (400018, InvalidParametersError, "param_too_long", False),
        (500020, InvalidParametersError, "param_not_permitted", False),
        (500213, RateLimitError, "provider_rate_limit", True),
        (777777, ProviderError, "provider_generic", True),
    ],
)
async def test_errcodes_map_to_sdk_errors(pv, err_code, error, code, retryable):
    pv.fake.inject_error(err_code)
    with pytest.raises(error) as caught:
        await pv.submit()
    assert type(caught.value) is error and caught.value.error_code == code
    assert caught.value.retryable is retryable and str(err_code) in str(caught.value)
    if error is RateLimitError:
        assert caught.value.retry_after == 600.0


async def test_concurrency_limit_and_pixverse_side_validation(harness):
    pv = await harness(concurrency=1, latency=30)
    await pv.submit()
    with pytest.raises(ConcurrentLimitError):
        await pv.submit()
    pv.fake.concurrency = None
    with pytest.raises(InvalidParametersError) as caught:  # past the spec's max_length: Pixverse's 400018
        await pv.provider.execute(T2V, pv.account, pv.provider.map_parameters(T2V, {"prompt": "x" * 5001}))
    assert caught.value.error_code == "param_too_long"
    unknown = {"prompt": "x", "image_urls": [f"{pv.fake.url}/upload/unknown.png"]}  # on Pixverse's host
    with pytest.raises(InvalidParametersError, match="500042"):
        await pv.provider.execute(FUSION, pv.account, pv.provider.map_parameters(FUSION, unknown))


async def test_results_and_accounts_never_show_secrets(pv):
    secrets = [pv.account.credentials["jwt_token"], pv.account.credentials["openapi_key"]]
    result = await pv.submit()
    status = await pv.provider.check_status(pv.account, result.provider_job_id, T2V)
    for text in (repr(result), str(result.metadata), repr(status), repr(pv.account), str(pv.account)):
        assert not any(secret in text for secret in secrets)


async def test_prepare_deletes_what_it_fetched_when_a_later_source_fails(pv, sources, tiny_png):
    fetched = []

    async def tracking_resolve(source, user_id, suffix, **kw):
        path, temps = await resolve_source(source, user_id, suffix, **kw)
        fetched.extend(temps)
        return path, temps

    params = {"prompt": "x", "image_urls": [sources.add("a.png", tiny_png), sources.asset_url("missing.png")]}
    generation = GenerationContext(id="g", provider_id="pixverse", operation_type=FUSION, params=params)
    with pytest.raises(SourceRejected, match=r"image_urls\[1\]: the source answered HTTP 404"):
        await pv.provider.prepare_execution_params(
            generation, pv.provider.map_parameters(FUSION, params), tracking_resolve
        )
    assert len(fetched) == 1 and not Path(fetched[0]).exists()


async def test_pixverse_has_no_remote_cancel(pv):
    result = await pv.submit()
    assert await pv.provider.cancel(pv.account, result.provider_job_id) is False
