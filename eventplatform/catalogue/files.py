"""Writing the catalogue's two files into a folder, all or nothing."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from eventplatform.catalogue.asyncapi import asyncapi_document
from eventplatform.catalogue.html import render_html
from eventplatform.catalogue.model import EventCatalogue
from eventplatform.errors import ConfigurationError

__all__ = ["DOCUMENT_NAME", "PAGE_NAME", "write_catalogue"]

DOCUMENT_NAME = "asyncapi.json"
PAGE_NAME = "index.html"


def write_catalogue(
    catalogue: EventCatalogue, out: Path, *, registry_url: str | None = None
) -> list[Path]:
    """Write ``asyncapi.json`` and ``index.html`` of ``catalogue`` into ``out``.

    Both are rendered before either is written, and each replaces its file atomically (a
    temporary file renamed over it), so a failure leaves the previous files as they were.

    Returns:
        The files written.

    Raises:
        ConfigurationError: ``out`` cannot be created or written.
    """
    texts = {
        DOCUMENT_NAME: json.dumps(
            asyncapi_document(catalogue, registry_url=registry_url), indent=2, ensure_ascii=False
        )
        + "\n",
        PAGE_NAME: render_html(catalogue),
    }
    written = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            target = out / name
            handle, temporary = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    file.write(text)
                # mkstemp makes the file private; these are for anyone to read (a web server).
                os.chmod(temporary, 0o644)
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            written.append(target)
    except OSError as exc:
        raise ConfigurationError(
            f"{out}: cannot write the catalogue: {exc.strerror or exc}"
        ) from exc
    return written
