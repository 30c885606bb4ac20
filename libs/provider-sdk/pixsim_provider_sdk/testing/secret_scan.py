"""The secret scan of the conformance suite: credential values must not appear in any text it collects."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator


def exception_texts(where: str, exc: BaseException) -> Iterator[tuple[str, str]]:
    """str() and repr() of an exception and of every exception chained to it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield f"{where}: {type(exc).__name__}", f"{exc}\n{exc!r}"
        exc = exc.__cause__ or exc.__context__


def log_texts(records: Iterable[logging.LogRecord], ignore_files: set[str]) -> Iterator[tuple[str, str]]:
    """Each log record's message, arguments, extras and traceback, except the fakes' own records."""
    formatter = logging.Formatter()
    for record in records:
        if record.pathname in ignore_files:
            continue
        text = f"{record.getMessage()}\n{vars(record)!r}"
        if record.exc_info:
            text += formatter.formatException(record.exc_info)
        yield f"log record {record.name}:{record.lineno}", text


def leaks(secrets: Iterable[str], texts: Iterable[tuple[str, str]]) -> list[str]:
    """Where a secret appears. The messages show only a prefix of the secret."""
    return [
        f"{where} contains a credential value ({secret[:4]}…)"
        for where, text in texts
        for secret in sorted(secrets)
        if secret in text
    ]
