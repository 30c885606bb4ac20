"""Reading an account's real balances from its provider, for billing to reconcile.

Providers may offer an optional adapter method `async def get_credits(account) -> dict[str, int] | None`
(credits left per credit type; None when the provider cannot say). It is looked up with `getattr`, so
a provider without it simply cannot be synced. What the provider reports is published as one
`credits.synced` event per declared credit type; billing books the difference from its own figure
as an `adjustment` entry.
"""

from __future__ import annotations

import logging
from typing import Any

from pixsim_contracts import CreditsSynced
from pixsim_provider_sdk import AuthenticationError, Provider, ProviderError
from pixsim_runtime.accounts import set_status, to_provider_account
from pixsim_runtime.broker import publish_event
from pixsim_runtime.secrets import CredentialCipher, scrub
from pixsim_runtime.service import ServiceContext

from ..errors import ApiError

log = logging.getLogger(__name__)


async def sync_account(
    ctx: ServiceContext, cipher: CredentialCipher, provider: Provider, doc: dict[str, Any]
) -> dict[str, Any]:
    get_credits = getattr(provider, "get_credits", None)
    if not callable(get_credits):
        raise ApiError(409, "sync_unsupported", f"provider {provider.manifest.id!r} cannot report balances")
    account = to_provider_account(doc, cipher)
    try:
        observed = await get_credits(account)
    except ProviderError as exc:
        message = scrub(exc.message, account.credentials)
        if isinstance(exc, AuthenticationError):
            await set_status(
                ctx.db,
                ctx.broker,
                account.id,
                "auth_failed",
                f"credentials rejected: {message}",
                error_code=exc.error_code,
            )
        raise ApiError(
            502, exc.error_code, f"{provider.manifest.id}: balance sync failed: {message}"
        ) from None
    if observed is None:
        raise ApiError(409, "sync_unsupported", f"provider {provider.manifest.id!r} did not report balances")
    declared = set(provider.manifest.credit_types)
    reported = {ct: int(n) for ct, n in observed.items() if ct in declared}
    ignored = sorted(set(observed) - declared)
    if ignored:
        log.warning(
            "sync of %s: ignoring credit types the manifest does not declare: %s", account.id, ignored
        )
    for credit_type, balance in sorted(reported.items()):
        await publish_event(
            ctx.broker,
            CreditsSynced(
                account_id=account.id,
                provider_id=provider.manifest.id,
                credit_type=credit_type,
                provider_balance=balance,
            ),
        )
    return {"account_id": account.id, "reported": reported, "ignored": ignored}
