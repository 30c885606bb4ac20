"""The poller: polls every submitted job, whatever the provider, until it ends.

| consumes | emits | owns |
|---|---|---|
| `generation.submitted` (durable `poller`), `generation.cancel_requested` (`poller-cancels`) | `generation.progressed` / `completed` / `failed` / `filtered` / `cancelled`, `credits.charged` / `released` | the collections `polls` (the schedule, leases, outboxes) and `poll_durations` (learned job durations) |

Shape (why: `poll.py`): a submitted job goes onto a schedule in MongoDB and its message is acked; every
replica runs a claim loop (`loop.py`) that leases due jobs round-robin over providers (`store.py`),
polls them with bounded concurrency, and writes back the next poll time, chosen from the job's expected
duration and progress (`schedule.py`, `durations.py`). The final events are decided by `outcomes.py`.
Jobs in flight cost MongoDB documents, not JetStream pending slots; a dead replica's jobs come back when
its leases run out; replicas share the work and never poll one job at the same moment.
"""
