"""The Python client of the PixSim API: `PixSim` (sync) and `AsyncPixSim` (asyncio)."""

from ._async import AsyncPixSim
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    GenerationError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    PixSimError,
    RateLimitError,
    RequestTooLargeError,
    UnprocessableEntityError,
)
from ._models import Asset, Event, Generation, GenerationPage
from ._sync import PixSim

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Asset",
    "AsyncPixSim",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "Event",
    "Generation",
    "GenerationError",
    "GenerationPage",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "PixSim",
    "PixSimError",
    "RateLimitError",
    "RequestTooLargeError",
    "UnprocessableEntityError",
]
