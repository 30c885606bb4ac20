"""Ambiguous submits: which failures may have left a job at Pixverse (`maybe_accepted`), and `find_job`
over the account's personal list (Pixverse takes no client reference). Fixtures: conftest.py."""

from __future__ import annotations

import time

import httpx
import pytest
from pixsim_provider_sdk import (
    REFERENCE_PARAM,
    InvalidParametersError,
    OperationType,
    ProviderError,
    ProviderUnavailableError,
    ProviderUnreachableError,
    RateLimitError,
)
from pixsim_provider_sdk.testing.harness import GATEWAY_ANSWERS

T2V, T2I, I2V = OperationType.TEXT_TO_VIDEO, OperationType.TEXT_TO_IMAGE, OperationType.IMAGE_TO_VIDEO
SKEW = 30.0  # adapter.CLOCK_SKEW_S


def _jobs(fake, prompt: str) -> list:
    return [j for j in fake.jobs.values() if j.prompt == prompt]


@pytest.fixture
async def impatient(pv):
    """The harness with a provider that gives up on an answer after half a second."""
    pv.provider.http_timeout = 0.5
    await pv.provider.aclose()  # rebuilt with the short timeout
    pv.fake.stall_s = 2.0
    yield pv
    pv.provider.http_timeout = type(pv.provider).http_timeout


@pytest.mark.parametrize("fault", ["accept_then_stall", "accept_then_drop"])
@pytest.mark.parametrize("op", [T2V, T2I])
async def test_an_answer_lost_after_acceptance_is_ambiguous_and_the_job_is_found(impatient, fault, op):
    pv, prompt = impatient, f"a heron at dawn, {fault}, {op.value}"
    setattr(pv.fake, fault, 1)
    mapped = {**pv.provider.map_parameters(op, {"prompt": prompt}), REFERENCE_PARAM: "gen-lost"}
    since = time.time()
    with pytest.raises(ProviderUnreachableError) as caught:
        await pv.provider.execute(op, pv.account, mapped)
    assert caught.value.maybe_accepted and caught.value.retryable
    [job] = _jobs(pv.fake, prompt)  # Pixverse made it; we never heard
    found = await pv.provider.find_job(pv.account, "gen-lost", op, mapped, since=since)
    assert found == str(job.id)
    final, _ = await pv.wait(found, op)
    assert final.status.value == "completed"
    assert len(_jobs(pv.fake, prompt)) == 1  # looking it up made nothing


async def test_find_job_proves_absence_among_recent_jobs(pv):
    since = time.time()
    await pv.submit(prompt="something else entirely")
    mapped = pv.provider.map_parameters(T2V, {"prompt": "never sent"})
    assert await pv.provider.find_job(pv.account, "gen-x", T2V, mapped, since=since) is None


async def test_find_job_ignores_jobs_made_before_the_submit(pv):
    await pv.submit(prompt="an old one")
    mapped = pv.provider.map_parameters(T2V, {"prompt": "an old one"})
    later = time.time() + SKEW + 5  # the same request, but made well before this submit began
    assert await pv.provider.find_job(pv.account, "gen-y", T2V, mapped, since=later) is None
    found = await pv.provider.find_job(pv.account, "gen-y", T2V, mapped, since=time.time())
    assert found == str(_jobs(pv.fake, "an old one")[0].id)


async def test_find_job_matches_the_parameters_that_were_sent(pv):
    since = time.time()
    first = await pv.submit(prompt="twins", quality="540p")
    mapped = pv.provider.map_parameters(T2V, {"prompt": "twins", "quality": "540p"})
    other = pv.provider.map_parameters(T2V, {"prompt": "twins", "quality": "720p"})
    assert await pv.provider.find_job(pv.account, "g", T2V, mapped, since=since) == first.provider_job_id
    assert await pv.provider.find_job(pv.account, "g", T2V, other, since=since) is None
    images = pv.provider.map_parameters(T2I, {"prompt": "twins"})  # images are another list
    assert await pv.provider.find_job(pv.account, "g", T2I, images, since=since) is None


async def test_find_job_cannot_tell_the_same_request_twice_apart(pv):
    since = time.time()
    await pv.submit(prompt="twice")
    await pv.submit(prompt="twice")
    mapped = pv.provider.map_parameters(T2V, {"prompt": "twice"})
    with pytest.raises(ProviderError, match="2 recent videos match"):
        await pv.provider.find_job(pv.account, "g", T2V, mapped, since=since)


async def test_find_job_cannot_say_for_the_openapi_or_without_a_submit_time(pv):
    openapi = pv.provider.map_parameters(T2V, {"prompt": "p", "api_method": "openapi"})
    with pytest.raises(NotImplementedError, match="OpenAPI"):
        await pv.provider.find_job(pv.account, "g", T2V, openapi, since=time.time())
    web = pv.provider.map_parameters(T2V, {"prompt": "p"})
    with pytest.raises(NotImplementedError, match="submit time"):
        await pv.provider.find_job(pv.account, "g", T2V, web, since=None)


async def test_the_reference_is_never_sent(pv):
    mapped = {**pv.provider.map_parameters(T2V, {"prompt": "quiet"}), REFERENCE_PARAM: "gen-secret-ref"}
    await pv.provider.execute(T2V, pv.account, mapped)
    [request] = pv.sent("/video/t2v")
    assert "gen-secret-ref" not in str(request.json) and "gen-secret-ref" not in str(request.headers)


async def test_refusals_before_acceptance_are_not_ambiguous(harness):
    pv = await harness(fail_submits=1, rate_limit_every=3)
    with pytest.raises(ProviderUnavailableError) as caught:  # 503: overloaded, nothing made
        await pv.submit()
    assert not caught.value.maybe_accepted
    pv.fake.inject_error(500069, "high load")  # Pixverse's own answer: refused
    with pytest.raises(ProviderUnavailableError) as caught:
        await pv.submit()
    assert not caught.value.maybe_accepted
    await pv.submit()
    with pytest.raises(RateLimitError) as caught:  # the 3rd submit: 429
        await pv.submit()
    assert not caught.value.maybe_accepted
    with pytest.raises(InvalidParametersError) as caught:
        await pv.submit(prompt="x" * 5001)
    assert not caught.value.maybe_accepted
    assert len(pv.fake.jobs) == 1  # only the one accepted


async def test_a_refused_connection_is_not_ambiguous(kit, account_for):
    fake = kit.start_fake()
    fake.stop()  # the port is free again: nobody answers
    provider = await kit.connect(fake.url)
    account = await account_for(fake.valid_raw_data())
    with pytest.raises(ProviderUnreachableError) as caught:
        await provider.execute(T2V, account, provider.map_parameters(T2V, {"prompt": "p"}))
    assert not caught.value.maybe_accepted and not caught.value.maybe_received


def _mock(pv, handler) -> None:
    pv.provider._client = httpx.AsyncClient(base_url=pv.fake.url, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "body", "ambiguous"),
    [
        *GATEWAY_ANSWERS,
        (200, b'{"ErrCode": 0, "ErrMsg": "Success", "Resp": {}}', True),  # accepted, without an id
        (200, b'{"ErrCode": 500100, "ErrMsg": "db error", "Resp": {}}', False),  # Pixverse's refusal
        (400, b"<html>400 Bad Request</html>", False),
    ],
)
async def test_submit_answers_are_classified(pv, status, body, ambiguous):
    _mock(pv, lambda request: httpx.Response(status, content=body))
    with pytest.raises(ProviderError) as caught:
        await pv.submit()
    assert caught.value.maybe_accepted is ambiguous


async def test_only_the_submit_call_can_be_ambiguous(pv, tmp_path, tiny_png):
    """A timeout on the upload before the submit leaves no job: it is an ordinary failure."""
    image = tmp_path / "in.png"
    image.write_bytes(tiny_png)

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    _mock(pv, handler)
    mapped = pv.provider.map_parameters(I2V, {"prompt": "p", "image_url": "https://example.com/in.png"})
    with pytest.raises(ProviderUnreachableError) as caught:
        await pv.provider.execute(I2V, pv.account, {**mapped, "local_sources": {"0": str(image)}})
    assert caught.value.maybe_received and not caught.value.maybe_accepted
    with pytest.raises(ProviderUnreachableError) as caught:  # polling, too
        await pv.provider.check_status(pv.account, "380000000000001", T2V)
    assert not caught.value.maybe_accepted
