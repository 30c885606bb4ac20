"""MongoDB through PyMongo's async API. Only single-document atomic writes keyed by `_id`: the
one kind of write every server we run on (nx-27017 included) makes atomic."""

from __future__ import annotations

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from .settings import BaseServiceSettings


def make_mongo(settings: BaseServiceSettings) -> tuple[AsyncMongoClient, AsyncDatabase]:
    client: AsyncMongoClient = AsyncMongoClient(
        settings.mongo_url, tz_aware=True, serverSelectionTimeoutMS=int(settings.mongo_timeout_s * 1000)
    )
    return client, client[settings.mongo_db]
