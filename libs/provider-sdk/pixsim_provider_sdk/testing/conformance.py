"""The provider conformance suite: every provider, built in or third party, runs it against its own fake.

Subclass `ProviderConformance` in a test module (pytest collects classes named `Test*`) and supply a
`conformance_case` fixture that yields a `ConformanceCase` (see `cases.py`):

    import pytest
    from pixsim_provider_sdk.testing.conformance import ProviderConformance, case_for_package

    @pytest.fixture
    async def conformance_case():
        async with case_for_package("pixsim_provider_echo.manifest") as case:
            yield case

    class TestEchoConformance(ProviderConformance):
        pass

It needs pytest and pytest-asyncio. The provider's `fake_api.create_fake(**knobs)` must follow the fake
contract: knobs `latency`, `quota`, `rate_limit_every`, `fail_submits`, `fail_rate`; prompts with
`forbidden` rejected at submit and `nsfw-output` filtered during generation; `valid_raw_data()` and
`invalid_raw_data()`; result URLs serving real media. Nothing here knows any particular provider.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pixsim_contracts import OperationType, ProviderStatus

from ..base import Provider
from ..errors import (
    AuthenticationError,
    ContentFilteredError,
    JobNotFoundError,
    ProviderError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
)
from ..http_errors import secret_values
from ..params import apply_defaults, validate_params
from ..results import GenerationContext, ProviderStatusResult
from . import fake_http, media
from .cases import ConformanceCase, case_for_folder, case_for_package, open_case
from .checks import credit_problems, manifest_problems, progress_problems, spec_problems
from .media import SilentServer, result_problems
from .secret_scan import exception_texts, leaks, log_texts

__all__ = ["ConformanceCase", "ProviderConformance", "case_for_folder", "case_for_package", "open_case"]

#: The per-call timeout the timeout check sets, and how long the failure may take at most.
TEST_HTTP_TIMEOUT = 0.5
TIMEOUT_ALLOWANCE = 3 * TEST_HTTP_TIMEOUT + 0.5


def _private_tempdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Route every temp file of this test into an empty directory of its own, to see what is left over."""
    path = tmp_path / "tempdir"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    monkeypatch.setenv("TMPDIR", str(path))
    return path


def _hook(problems: list[str], name: str, call: Callable[..., Any], *args: Any) -> Any:
    """Call one of the adapter's hooks; an exception becomes a problem that names the hook."""
    try:
        return call(*args)
    except Exception as exc:  # noqa: BLE001 - whatever the hook raises is the finding
        hint = (
            " (its signature is (generation, status, estimate))" if name == "compute_actual_credits" else ""
        )
        problems.append(f"{name} raised {type(exc).__name__}: {exc}{hint}")
        return None


def _credits_problems(case: ConformanceCase, op: OperationType, final: ProviderStatusResult) -> list[str]:
    """`estimate_credits` (given the canonical params with defaults, as the dispatcher gives them) and
    `compute_actual_credits` (given the finished job) answer whole credits of declared types."""
    provider, declared = case.provider, list(case.provider.manifest.credit_types)
    params = apply_defaults(case.spec(op), case.sample_params(op))
    problems: list[str] = []
    estimate = _hook(problems, "estimate_credits", provider.estimate_credits, op, params)
    problems += credit_problems(f"{op.value}: estimate_credits", estimate, declared, may_be_none=True)
    if problems:
        return problems
    generation = GenerationContext(
        id="conformance", provider_id=provider.provider_id, operation_type=op, params=params
    )
    actual = _hook(
        problems,
        "compute_actual_credits",
        provider.compute_actual_credits,
        generation,
        final,
        dict(estimate or {}),
    )
    if not problems:
        problems += credit_problems(f"{op.value}: compute_actual_credits", actual, declared)
    return [f"{op.value}: {p}" if not p.startswith(op.value) else p for p in problems]


class ProviderConformance:
    """The checks every provider passes. Subclass it as `Test...` and supply a `conformance_case` fixture."""

    # Every check is a coroutine; the mark also makes them run under pytest-asyncio's strict mode.
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    # -- what the provider declares ------------------------------------------------------------------
    async def test_manifest_is_valid(self, conformance_case: ConformanceCase) -> None:
        """Id, name, semver, credit types, domains, status notes naming real statuses, kind vs operations."""
        problems = manifest_problems(conformance_case.provider)
        assert not problems, f"{conformance_case.origin}:\n" + "\n".join(problems)

    async def test_parameter_spec_is_well_formed(self, conformance_case: ConformanceCase) -> None:
        """A spec per supported operation, well-formed fields, and a valid minimal sample from it."""
        case = conformance_case
        problems = spec_problems(case.provider)
        assert not problems, f"{case.origin}:\n" + "\n".join(problems)
        for op in case.operations:  # the suite's own inputs must be valid, or every later check misleads
            sample = case.sample_params(op)
            assert not validate_params(case.spec(op), sample), f"{op.value}: sample {sample} breaks the spec"

    # -- jobs end in every documented status ----------------------------------------------------------
    async def test_every_operation_completes_with_a_downloadable_result(
        self, conformance_case: ConformanceCase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        case = conformance_case
        tempdir = _private_tempdir(monkeypatch, tmp_path)
        account = await case.valid_account()
        for op in case.operations:
            submission = await case.submit(op, account)
            result = submission.result
            assert result.provider_job_id and isinstance(result.provider_job_id, str), (
                f"{op.value}: {result!r}"
            )
            assert result.status in (
                ProviderStatus.PENDING,
                ProviderStatus.PROCESSING,
                ProviderStatus.COMPLETED,
            )
            final, seen = await case.wait_terminal(account, result.provider_job_id, op)
            assert final.status is ProviderStatus.COMPLETED, (
                f"{op.value} ended {final.status.value}: {final.error_code}: {final.error_message}"
            )
            job_id = result.provider_job_id

            async def fetch(variant: str, job_id: str = job_id) -> tuple[bytes, str] | None:
                return await case.provider.fetch_result(account, job_id, variant)

            problems = progress_problems(op, seen) + await result_problems(final, op, fetch)
            problems += _credits_problems(case, op, final)
            assert not problems, "\n".join(problems)
        assert sorted(os.listdir(tempdir)) == [], "temp files left behind"

    async def test_prepared_files_are_listed_for_clean_up(
        self, conformance_case: ConformanceCase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Every file `resolve_source_fn` made is in `_temp_paths`, exists after preparation, and nothing else
        is left once the dispatcher removed them."""
        case = conformance_case
        if not case.provider.requires_file_preparation():
            pytest.skip("the provider prepares no files")
        tempdir = _private_tempdir(monkeypatch, tmp_path)
        account = await case.valid_account()
        for op in case.operations:
            submission = await case.submit(op, account)
            await case.wait_terminal(account, submission.result.provider_job_id, op)  # results feed later ops
            assert not submission.missing_after_prepare, f"{op.value}: listed but missing after preparation"
            unlisted = sorted(set(submission.resolved) - set(submission.temp_paths))
            assert not unlisted, f"{op.value}: resolved files not in _temp_paths: {unlisted}"
            assert sorted(os.listdir(tempdir)) == [], f"{op.value}: temp files left behind"

    async def test_failed_job_maps_to_failed(self, conformance_case: ConformanceCase) -> None:
        case = conformance_case
        await case.start_fake(fail_rate=1.0)
        op, account = case.simplest_operation(), await case.valid_account()
        submission = await case.submit(op, account)
        final, _ = await case.wait_terminal(account, submission.result.provider_job_id, op)
        assert final.status is ProviderStatus.FAILED, final
        assert final.error_code or final.error_message, "a failed job says why"
        assert not (final.video_url or final.image_url)

    async def test_moderated_output_maps_to_filtered(self, conformance_case: ConformanceCase) -> None:
        case = conformance_case
        op, account = case.simplest_operation(with_prompt=True), await case.valid_account()
        if op is None:
            pytest.skip("no operation takes a prompt")
        submission = await case.submit(
            op, account, case.prompt_params(op, "a quiet harbour at dawn, nsfw-output")
        )
        final, _ = await case.wait_terminal(account, submission.result.provider_job_id, op)
        assert final.status is ProviderStatus.FILTERED, final
        assert not (final.video_url or final.image_url)

    async def test_cancelled_job_maps_to_cancelled(self, conformance_case: ConformanceCase) -> None:
        """A running job that `cancel` stopped (True) reads as cancelled; False means the provider cannot."""
        case = conformance_case
        if type(case.provider).cancel is Provider.cancel:
            pytest.skip("the provider cannot cancel (Provider.cancel is not overridden)")
        await case.start_fake(latency=30)  # the job is still running when we cancel it
        op, account = case.simplest_operation(), await case.valid_account()
        job_id = (await case.submit(op, account)).result.provider_job_id
        if await case.provider.cancel(account, job_id) is not True:
            status = await case.provider.check_status(account, job_id, op)
            assert status.status is not ProviderStatus.CANCELLED, (
                "cancel answered False but the job is cancelled"
            )
            pytest.skip("the provider cannot cancel: cancel() answered False for a running job")
        final, _ = await case.wait_terminal(account, job_id, op)
        assert final.status is ProviderStatus.CANCELLED, final

    # -- errors: each case raises its class, with the right retryable flag ------------------------------
    async def _submit_error(
        self, case: ConformanceCase, expected: type[ProviderError], account=None, params=None
    ) -> ProviderError:
        op = case.simplest_operation(with_prompt=params is not None)
        account = account or await case.valid_account()
        with pytest.raises(ProviderError) as caught:
            await case.submit(op, account, params(op) if params else None)
        assert isinstance(caught.value, expected), f"expected {expected.__name__}, got {caught.value!r}"
        assert caught.value.retryable is expected.retryable, (
            f"{caught.value!r}: retryable must be {expected.retryable}"
        )
        return caught.value

    async def test_invalid_credentials_raise_authentication_error(
        self, conformance_case: ConformanceCase
    ) -> None:
        await self._submit_error(
            conformance_case, AuthenticationError, await conformance_case.invalid_account()
        )

    async def test_exhausted_quota_raises_quota_exceeded(self, conformance_case: ConformanceCase) -> None:
        await conformance_case.start_fake(quota=0)
        await self._submit_error(conformance_case, QuotaExceededError)

    async def test_rate_limit_raises_rate_limit_error(self, conformance_case: ConformanceCase) -> None:
        await conformance_case.start_fake(rate_limit_every=1)
        error = await self._submit_error(conformance_case, RateLimitError)
        assert error.retry_after is None or error.retry_after >= 0

    async def test_forbidden_prompt_raises_content_filtered(self, conformance_case: ConformanceCase) -> None:
        case = conformance_case
        if case.simplest_operation(with_prompt=True) is None:
            pytest.skip("no operation takes a prompt")
        await self._submit_error(
            case, ContentFilteredError, params=lambda op: case.prompt_params(op, "a forbidden scene")
        )

    async def test_server_error_raises_unavailable_then_recovers(
        self, conformance_case: ConformanceCase
    ) -> None:
        case = conformance_case
        await case.start_fake(fail_submits=1)
        await self._submit_error(case, ProviderUnavailableError)
        op = case.simplest_operation()
        assert (await case.submit(op, await case.valid_account())).result.provider_job_id

    async def test_unknown_job_raises_job_not_found(self, conformance_case: ConformanceCase) -> None:
        case = conformance_case
        with pytest.raises(JobNotFoundError) as caught:
            await case.provider.check_status(
                await case.valid_account(), case.unknown_job_id, case.simplest_operation()
            )
        assert caught.value.retryable is False

    async def test_unresponsive_api_times_out_retryably(self, conformance_case: ConformanceCase) -> None:
        """A remote that accepts the connection and never answers costs one `http_timeout`, not a hang."""
        case = conformance_case
        op, account = case.simplest_operation(), await case.valid_account()
        await case.set_http_timeout(TEST_HTTP_TIMEOUT)
        with SilentServer() as silent:
            await case.point_at(silent.url)
            started = time.monotonic()
            try:
                with pytest.raises(ProviderError) as caught:
                    await asyncio.wait_for(case.submit(op, account), timeout=TIMEOUT_ALLOWANCE + 2)
            except TimeoutError:
                pytest.fail(
                    f"no error {TIMEOUT_ALLOWANCE + 2:.0f}s after submit with http_timeout="
                    f"{TEST_HTTP_TIMEOUT}s: does a call override the timeout?"
                )
            elapsed = time.monotonic() - started
        assert caught.value.retryable, f"a timeout must be retryable: {caught.value!r}"
        assert elapsed <= TIMEOUT_ALLOWANCE, f"took {elapsed:.1f}s with http_timeout={TEST_HTTP_TIMEOUT}s"

    # -- secrets ---------------------------------------------------------------------------------------
    async def test_secrets_never_leak(
        self, conformance_case: ConformanceCase, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Credential values never appear in results, reprs, error messages or log records."""
        case = conformance_case
        caplog.set_level(logging.DEBUG)
        good, bad = await case.valid_account(), await case.invalid_account()
        secrets = secret_values(good.credentials, bad.credentials)
        assert secrets, "the raw data yields no credential value to look for"
        op = case.simplest_operation()
        texts = [("provider repr", repr(case.provider)), ("account reprs", f"{good!r} {bad!r} {good} {bad}")]
        submission = await case.submit(op, good)
        _, seen = await case.wait_terminal(good, submission.result.provider_job_id, op)
        texts += [("submit result", repr(submission.result)), ("statuses", repr(seen))]
        failures = [
            case.submit(op, bad),
            case.provider.check_status(bad, case.unknown_job_id, op),
            case.provider.check_status(good, case.unknown_job_id, op),
        ]
        prompt_op = case.simplest_operation(with_prompt=True)
        if prompt_op is not None:
            failures.append(case.submit(prompt_op, good, case.prompt_params(prompt_op, "forbidden words")))
        for number, call in enumerate(failures):
            try:
                await call
            except ProviderError as exc:
                texts += exception_texts(f"error {number}", exc)
        ignore = {inspect.getfile(fake_http), inspect.getfile(media), inspect.getfile(case.create_fake)}
        found = leaks(secrets, [*texts, *log_texts(caplog.records, ignore)])
        assert not found, "\n".join(found)
