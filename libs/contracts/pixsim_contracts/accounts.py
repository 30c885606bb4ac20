"""Account events. Subjects: `pixsim.accounts.<account_id>.<event>`. They never carry credentials."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, Strict, StringConstraints

from . import subjects
from .envelope import Event
from .limits import (
    CreditMap,
    ExternalId,
    Id,
    Priority,
    ShortText,
    SignedCredits,
    StrictBool,
    Text,
    Token,
)

ShortKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
StrictInt = Annotated[int, Strict(), Field(ge=-(2**53), le=2**53)]
ConcurrencyLimit = Annotated[int, Strict(), Field(ge=1, le=10_000)]


class AccountEvent(Event):
    account_id: Id
    provider_id: Token

    @property
    def subject(self) -> str:
        return subjects.account(self.account_id, self.type.split(".", 1)[1])


class AccountCreated(AccountEvent):
    """pixsim.accounts.<account_id>.created: an account was added (credentials stored apart, encrypted)."""

    type: Literal["account.created"] = "account.created"
    owner_id: ExternalId | None = Field(
        default=None, description="The user who owns it; their jobs may run on it"
    )
    shared: StrictBool = Field(default=False, description="Runs every user's jobs (set by an admin)")
    email: ShortText | None = None
    credits: CreditMap = Field(default_factory=dict)
    priority: Priority = Field(default=0, description="Higher is chosen first")
    concurrency_limit: ConcurrencyLimit = Field(default=1, description="Jobs the account may run at once")


class AccountUpdated(AccountEvent):
    """pixsim.accounts.<account_id>.updated: priority, concurrency limit or enabled changed."""

    type: Literal["account.updated"] = "account.updated"
    changes: dict[ShortKey, StrictInt | StrictBool | ShortText | None] = Field(max_length=32)


class AccountDeleted(AccountEvent):
    """pixsim.accounts.<account_id>.deleted."""

    type: Literal["account.deleted"] = "account.deleted"


class AccountCreditsLow(AccountEvent):
    """pixsim.accounts.<account_id>.credits_low: a balance crossed the low-credit threshold."""

    type: Literal["account.credits_low"] = "account.credits_low"
    credit_type: Token
    balance: SignedCredits


class AccountExhausted(AccountEvent):
    """pixsim.accounts.<account_id>.exhausted: a balance reached zero."""

    type: Literal["account.exhausted"] = "account.exhausted"
    credit_type: Token


AccountStatus = Literal["active", "cooling_down", "exhausted", "auth_failed", "disabled"]


class AccountStatusChanged(AccountEvent):
    """pixsim.accounts.<account_id>.status_changed: the account's health changed, and why.

    `active` accounts take jobs; `cooling_down` ones again after `cooldown_until`; `exhausted`
    (no credits), `auth_failed` (credentials rejected) and `disabled` (by a person) ones do not
    until new credits, new credentials or a person bring them back.
    """

    type: Literal["account.status_changed"] = "account.status_changed"
    status: AccountStatus
    previous_status: AccountStatus | None = None
    reason: Text = Field(description="Why, for a human; never contains credentials")
    error_code: ShortText | None = Field(
        default=None, description="The provider error that caused it, if any"
    )
    cooldown_until: datetime | None = Field(default=None, description="Set when status is `cooling_down`")
    generation_id: Id | None = Field(default=None, description="The job that revealed it, if any")
