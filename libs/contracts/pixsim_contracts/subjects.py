"""Subjects and stream names, defined once. No other module writes a subject string."""

from __future__ import annotations

GENERATIONS_STREAM = "PIXSIM_GENERATIONS"
CREDITS_STREAM = "PIXSIM_CREDITS"
ACCOUNTS_STREAM = "PIXSIM_ACCOUNTS"
DLQ_STREAM = "PIXSIM_DLQ"

GENERATION_SUBJECTS = "pixsim.generations.*.*"
CREDIT_SUBJECTS = "pixsim.credits.*.*"
ACCOUNT_SUBJECTS = "pixsim.accounts.*.*"
DLQ_SUBJECTS = "pixsim.dlq.*"

STREAM_SUBJECTS = {
    GENERATIONS_STREAM: GENERATION_SUBJECTS,
    CREDITS_STREAM: CREDIT_SUBJECTS,
    ACCOUNTS_STREAM: ACCOUNT_SUBJECTS,
    DLQ_STREAM: DLQ_SUBJECTS,
}


def _token(value: str, what: str) -> str:
    if not value or any(c in value for c in ".*> \t\r\n"):
        raise ValueError(f"{what} {value!r} cannot be used in a subject")
    return value


def generation(generation_id: str, event: str = "*") -> str:
    """`pixsim.generations.<generation_id>.<event>`; `event="*"` gives one generation's whole history."""
    return f"pixsim.generations.{_token(generation_id, 'generation id')}.{event}"


def generation_events(event: str) -> str:
    """All generations' events of one kind, e.g. `pixsim.generations.*.requested`."""
    return f"pixsim.generations.*.{event}"


def credits(credit_type: str, event: str = "*") -> str:
    return f"pixsim.credits.{_token(credit_type, 'credit type')}.{event}"


def credit_events(event: str) -> str:
    """All credit types' events of one kind, e.g. `pixsim.credits.*.charged`."""
    return f"pixsim.credits.*.{event}"


def account(account_id: str, event: str = "*") -> str:
    return f"pixsim.accounts.{_token(account_id, 'account id')}.{event}"


def account_events(event: str) -> str:
    """All accounts' events of one kind, e.g. `pixsim.accounts.*.created`."""
    return f"pixsim.accounts.*.{event}"


def dlq(service: str) -> str:
    return f"pixsim.dlq.{_token(service, 'service')}"


def stream_of(subject: str) -> str:
    """The stream that captures a subject."""
    prefix = subject.split(".")[1]
    return {
        "generations": GENERATIONS_STREAM,
        "credits": CREDITS_STREAM,
        "accounts": ACCOUNTS_STREAM,
        "dlq": DLQ_STREAM,
    }[prefix]
