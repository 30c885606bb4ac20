"""Credit events: what billing books. Subjects: `pixsim.credits.<credit_type>.<event>`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from . import subjects
from .envelope import Event
from .limits import Credits, Id, PositiveCredits, Text, Token


class CreditEvent(Event):
    """A credit event's subject carries its credit type (`pixsim.credits.<credit_type>.<event>`); the
    consumers check that the subject and the body agree."""

    generation_id: Id
    provider_id: Token
    account_id: Id
    credit_type: Token = Field(description="Must be one of the provider manifest's `credit_types`")

    @property
    def subject(self) -> str:
        return subjects.credits(self.credit_type, self.type.split(".", 1)[1])


class CreditsReserved(CreditEvent):
    """pixsim.credits.<credit_type>.reserved: the estimate is held while the job runs."""

    type: Literal["credits.reserved"] = "credits.reserved"
    amount: Credits


class CreditsCharged(CreditEvent):
    """pixsim.credits.<credit_type>.charged: the job completed; the actual cost is booked, the hold released."""

    type: Literal["credits.charged"] = "credits.charged"
    amount: Credits = Field(description="Actual cost")
    reserved: Credits = Field(description="The hold this charge settles")


class CreditsReleased(CreditEvent):
    """pixsim.credits.<credit_type>.released: the job ended without a charge; the hold is released."""

    type: Literal["credits.released"] = "credits.released"
    amount: Credits = Field(description="The hold released")
    reason: Text


class CreditsGranted(CreditEvent):
    """pixsim.credits.<credit_type>.granted: credits were added to an account (its opening balance, a top-up).

    Not tied to a generation, so `generation_id` is None.
    """

    type: Literal["credits.granted"] = "credits.granted"
    generation_id: Id | None = None  # type: ignore[assignment]
    amount: PositiveCredits
    reason: Text = "opening balance"


class CreditsSynced(CreditEvent):
    """pixsim.credits.<credit_type>.synced: the provider reported the account's real balance.

    Billing books the difference from its own figure (balance minus open reservations) as an
    `adjustment` ledger entry; a balance is never silently overwritten.
    """

    type: Literal["credits.synced"] = "credits.synced"
    generation_id: Id | None = None  # type: ignore[assignment]
    provider_balance: Credits = Field(description="What the provider says is left (never negative)")

    @property
    def amount(self) -> int:
        """Credits this event moves by itself: none until billing works out the difference. Lets code that
        handles every credit event alike (e.g. the credits metric) read an `amount`."""
        return 0
