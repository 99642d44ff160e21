"""The official AsyncAPI 3.0 JSON Schema, from the ``@asyncapi/specs`` npm package.

The package is fetched with ``npm pack`` (no install scripts run) into ``.cache/`` at the
repository root and reused from there; a test that needs it fails with the reason when npm is
missing or the registry cannot be reached: it never skips.

``schemas/3.0.0.json`` is the bundled schema (draft-07) whose definitions carry their own
``$id`` (``http://asyncapi.com/definitions/3.0.0/…``); its ``$ref`` values name those ids,
so the validator gets a :mod:`referencing` registry of the document's embedded resources and
resolves every reference locally, never over the network.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7

#: Pinned so that a new release cannot change what "valid" means under a test.
PACKAGE = "@asyncapi/specs@6.11.1"
CACHE = Path(__file__).parents[3] / ".cache" / "asyncapi-specs-6.11.1"
SCHEMA_FILE = "package/schemas/3.0.0.json"


def _fetch() -> Path:
    target = CACHE / SCHEMA_FILE
    if target.is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            "npm is needed to fetch the official AsyncAPI schema (@asyncapi/specs): install "
            "Node.js 20 and npm (apt-get install nodejs npm)"
        )
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [npm, "pack", PACKAGE, "--json", "--pack-destination", str(CACHE),
             "--cache", str(CACHE / "npm-cache")],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"npm pack {PACKAGE} did not finish within 180 s (is the npm registry reachable?)"
        )
    if done.returncode != 0:
        # With --json, npm reports its error on stdout.
        said = (done.stderr.strip() + "\n" + done.stdout.strip()).strip()[-800:]
        pytest.fail(
            f"npm pack {PACKAGE} failed (exit {done.returncode}; is the npm registry "
            f"reachable?): {said}"
        )
    tarball = CACHE / json.loads(done.stdout)[0]["filename"]
    with tarfile.open(tarball) as archive:
        archive.extractall(CACHE, filter="data")
    if not target.is_file():
        pytest.fail(f"{PACKAGE} has no {SCHEMA_FILE}")
    return target


def asyncapi_validator() -> Draft7Validator:
    """A draft-07 validator of the official AsyncAPI 3.0.0 schema, references resolved locally."""
    schema: dict[str, Any] = json.loads(_fetch().read_text(encoding="utf-8"))
    assert schema["$schema"].startswith("http://json-schema.org/draft-07/schema")
    registry: Registry[Any] = (
        Registry().with_resource(schema["$id"], DRAFT7.create_resource(schema)).crawl()
    )
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, registry=registry)
