"""What PixSim adds to OpenTelemetry's defaults, so a dashboard can say where a job spent its time:

- span names with the aggregate id replaced by `*` (`pixsim.generations.*.completed process`), so
  spans group by kind; the ids move to attributes (`pixsim.generation.id`, ...);
- an INTERNAL span and a latency histogram around every provider call;
- counters of state changes and credits, as events are published;
- a gauge of the messages each durable consumer has not acknowledged yet (queue lag).
The names are declared in `observability.py`.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.nats.opentelemetry.provider import (
    NatsBatchTelemetrySettingsProvider,
    NatsTelemetrySettingsProvider,
)
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode
from pixsim_contracts import Event
from pixsim_provider_sdk import Provider, ProviderError

from . import observability as names

_meter = metrics.get_meter("pixsim")  # a proxy until the process sets its MeterProvider
_generations = _meter.create_counter(
    names.METRIC_GENERATIONS, unit="{event}", description="Generation state changes published"
)
_credits = _meter.create_counter(names.METRIC_CREDITS, unit="{credit}", description="Credits by kind")
_call_duration = _meter.create_histogram(
    names.METRIC_PROVIDER_CALL_DURATION, unit="s", description="Provider API calls"
)
_pending: dict[tuple[str, str], int] = {}


def _observe_pending(_: CallbackOptions) -> Iterable[Observation]:
    return [Observation(n, {"stream": s, "consumer": c}) for (s, c), n in _pending.items()]


_meter.create_observable_gauge(
    names.METRIC_CONSUMER_PENDING,
    callbacks=[_observe_pending],
    unit="{message}",
    description="Messages a durable consumer has not acknowledged yet",
)

_AGGREGATE = re.compile(r"^(pixsim\.(?:generations|accounts))\.[^.]+\.")


def normalise_subject(subject: str) -> str:
    """`pixsim.generations.<id>.completed` -> `pixsim.generations.*.completed` (span names group by kind)."""
    return _AGGREGATE.sub(r"\1.*.", subject)


class _Settings(NatsTelemetrySettingsProvider):
    def get_consume_destination_name(self, msg: Any) -> str:
        return normalise_subject(super().get_consume_destination_name(msg))

    def get_publish_destination_name(self, cmd: Any) -> str:
        return normalise_subject(super().get_publish_destination_name(cmd))


def _settings_factory(msg: Any) -> Any:
    from collections.abc import Sequence

    return NatsBatchTelemetrySettingsProvider() if isinstance(msg, Sequence) else _Settings()


class PixsimTelemetryMiddleware(NatsTelemetryMiddleware):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings_provider_factory = _settings_factory


def event_attributes(event: Event) -> dict[str, str]:
    """The dashboard attributes an event carries."""
    found = {
        names.ATTR_EVENT_TYPE: event.type,
        names.ATTR_GENERATION_ID: getattr(event, "generation_id", None),
        names.ATTR_PROVIDER_ID: getattr(event, "provider_id", None),
        names.ATTR_ACCOUNT_ID: getattr(event, "account_id", None),
        names.ATTR_OPERATION: getattr(getattr(event, "operation_type", None), "value", None),
    }
    if event.type.startswith("generation."):
        found[names.ATTR_STATUS] = event.type.split(".", 1)[1]
    return {k: v for k, v in found.items() if v}


def annotate_current_span(event: Event) -> None:
    trace.get_current_span().set_attributes(event_attributes(event))


def count_published(event: Event) -> None:
    kind = event.type.split(".", 1)[1]
    if event.type.startswith("generation.") and kind not in ("progressed", "cancel_requested"):
        _generations.add(
            1,
            {
                "provider": getattr(event, "provider_id", "") or "",
                "operation": getattr(getattr(event, "operation_type", None), "value", "") or "",
                "status": kind,
            },
        )
    elif event.type.startswith("credits.") and (amount := getattr(event, "amount", 0) or 0) > 0:
        # Counters only go up: grants, reservations, charges and releases; sync differences are
        # in the ledger, not here.
        _credits.add(
            amount,
            {
                "provider": event.provider_id,  # type: ignore[attr-defined]
                "credit_type": event.credit_type,
                "kind": kind,
            },
        )  # type: ignore[attr-defined]


def set_pending(stream: str, consumer: str, pending: int) -> None:
    _pending[(stream, consumer)] = pending


_CALLS = (
    "execute",
    "check_status",
    "cancel",
    "prepare_execution_params",
    "upload_asset",
    "extract_account_data",
)


def instrument_provider(provider: Provider) -> None:
    """Wrap the provider's remote calls in a span and a latency measurement (once per instance).

    A provider instance is shared by every app built in one process, so the tracer is looked up from
    the process's (global) TracerProvider at call time, not bound to whichever app came first."""
    wrap_calls(
        provider, "_pixsim_instrumented", _CALLS, lambda call, original: _traced(provider, call, original)
    )


def wrap_calls(
    provider: Provider, marker: str, calls: Iterable[str], wrap: Callable[[str, Any], Any]
) -> None:
    """Replace each of `calls` on this provider instance by `wrap(call, original)`, once per instance
    (`marker` names the flag that says it was done)."""
    if getattr(provider, marker, False):
        return
    for call in calls:
        original = getattr(provider, call, None)
        if original is not None:
            setattr(provider, call, wrap(call, original))
    setattr(provider, marker, True)


def account_argument(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The `ProviderAccount` a provider call was given, wherever it stands; None if it has none."""
    return kwargs.get("account") or next((a for a in args if hasattr(a, "credentials")), None)


def _traced(provider: Provider, call: str, original: Any) -> Any:
    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        tracer = trace.get_tracer("pixsim.providers")
        attributes = {names.ATTR_PROVIDER_ID: provider.provider_id, names.ATTR_PROVIDER_CALL: call}
        account = account_argument(args, kwargs)
        if account is not None:
            attributes[names.ATTR_ACCOUNT_ID] = account.id
        with tracer.start_as_current_span(
            f"{names.PROVIDER_SPAN_PREFIX}{call}", kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            started, outcome = time.perf_counter(), "ok"
            try:
                return await original(*args, **kwargs)
            except ProviderError as exc:
                outcome = exc.error_code
                span.set_status(Status(StatusCode.ERROR, exc.error_code))
                raise
            except Exception as exc:
                outcome = type(exc).__name__
                span.set_status(Status(StatusCode.ERROR, outcome))
                raise
            finally:
                _call_duration.record(
                    time.perf_counter() - started,
                    {"provider": provider.provider_id, "call": call, "outcome": outcome},
                )

    return wrapper
