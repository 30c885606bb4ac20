"""The names dashboards rely on: span attributes and metric instruments PixSim emits.

These are public to operators (the Grafana dashboard under deploy/ queries them), so they are
defined once here and a test checks that a real generation emits every one of them.
Metric names are OpenTelemetry instrument names; through the Collector's Prometheus exporter
`pixsim.generations` becomes `pixsim_generations_total`, a histogram in seconds gains `_seconds`.
"""

from __future__ import annotations

# -- span attributes, set on every consumer span and provider-call span where they apply ---------
ATTR_GENERATION_ID = "pixsim.generation.id"
ATTR_PROVIDER_ID = "pixsim.provider.id"
ATTR_ACCOUNT_ID = "pixsim.account.id"
ATTR_OPERATION = "pixsim.operation"
ATTR_STATUS = "pixsim.status"  # the state the event moves the generation to
ATTR_EVENT_TYPE = "pixsim.event.type"
ATTR_PROVIDER_CALL = "pixsim.provider.call"  # execute, check_status, cancel, ...

SPAN_ATTRIBUTES = (
    ATTR_GENERATION_ID,
    ATTR_PROVIDER_ID,
    ATTR_ACCOUNT_ID,
    ATTR_OPERATION,
    ATTR_STATUS,
    ATTR_EVENT_TYPE,
    ATTR_PROVIDER_CALL,
)

#: One INTERNAL span per provider call is named `provider.<call>`, e.g. `provider.execute`.
PROVIDER_SPAN_PREFIX = "provider."
#: One span per state change is the FastStream publish span of the event; its name carries the
#: subject with the generation id replaced by `*`, e.g. `pixsim.generations.*.completed publish`.

# -- metric instruments ------------------------------------------------------------------------
METRIC_GENERATIONS = "pixsim.generations"  # counter {provider, operation, status}: state changes published
METRIC_PROVIDER_CALL_DURATION = "pixsim.provider.call.duration"  # histogram, s {provider, call, outcome}
METRIC_CONSUMER_PENDING = "pixsim.consumer.pending"  # gauge {stream, consumer}: messages not yet acked
METRIC_CREDITS = "pixsim.credits"  # counter {provider, credit_type, kind}: credits reserved/charged/released

METRICS = (METRIC_GENERATIONS, METRIC_PROVIDER_CALL_DURATION, METRIC_CONSUMER_PENDING, METRIC_CREDITS)

METRIC_LABELS = {
    METRIC_GENERATIONS: ("provider", "operation", "status"),
    METRIC_PROVIDER_CALL_DURATION: ("provider", "call", "outcome"),
    METRIC_CONSUMER_PENDING: ("stream", "consumer"),
    METRIC_CREDITS: ("provider", "credit_type", "kind"),
}
