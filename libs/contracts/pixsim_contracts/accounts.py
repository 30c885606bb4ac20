"""Account events. Subjects: `pixsim.accounts.<account_id>.<event>`. They never carry credentials."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from . import subjects
from .envelope import Event


class AccountEvent(Event):
    account_id: str
    provider_id: str

    @property
    def subject(self) -> str:
        return subjects.account(self.account_id, self.type.split(".", 1)[1])


class AccountCreated(AccountEvent):
    """pixsim.accounts.<account_id>.created: an account was added (credentials stored apart, encrypted)."""

    type: Literal["account.created"] = "account.created"
    email: str | None = None
    credits: dict[str, int] = Field(default_factory=dict)


class AccountUpdated(AccountEvent):
    """pixsim.accounts.<account_id>.updated: priority, concurrency limit or enabled changed."""

    type: Literal["account.updated"] = "account.updated"
    changes: dict[str, int | bool | str | None]


class AccountDeleted(AccountEvent):
    """pixsim.accounts.<account_id>.deleted."""

    type: Literal["account.deleted"] = "account.deleted"


class AccountCreditsLow(AccountEvent):
    """pixsim.accounts.<account_id>.credits_low: a balance crossed the low-credit threshold."""

    type: Literal["account.credits_low"] = "account.credits_low"
    credit_type: str
    balance: int


class AccountExhausted(AccountEvent):
    """pixsim.accounts.<account_id>.exhausted: a balance reached zero."""

    type: Literal["account.exhausted"] = "account.exhausted"
    credit_type: str
