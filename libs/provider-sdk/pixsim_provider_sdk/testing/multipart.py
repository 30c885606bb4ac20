"""Reading multipart/form-data request bodies in fakes (uploads, forms with files). Standard library only."""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import NamedTuple


@dataclass(frozen=True)
class FormFile:
    filename: str
    content_type: str  # as the part declared it; application/octet-stream when it did not
    data: bytes


class Form(NamedTuple):
    """The text fields and the files (by field name, in order) of a multipart body."""

    fields: dict[str, str]
    files: dict[str, list[FormFile]]

    def file(self, name: str) -> FormFile | None:
        """The last file sent under `name`, if any."""
        return (self.files.get(name) or [None])[-1]


def parse_multipart(body: bytes, content_type: str) -> Form | None:
    """The form in a multipart/form-data body; None when the content type is not one or the body cannot be
    parsed. Parts without a name are skipped, as servers do."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        return None
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body
    )
    if not message.is_multipart():
        return None
    form = Form({}, {})
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is None:
            form.fields[name] = payload.decode("utf-8", errors="replace")
        else:
            ctype = part.get_content_type() if part.get("content-type") else "application/octet-stream"
            form.files.setdefault(name, []).append(FormFile(filename, ctype, payload))
    return form
