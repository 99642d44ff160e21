"""The demo deployment of the repository root (``schemas/``, ``connectors/``) as the fixture.

Secrets come from an environment of distinctive values, so a test can assert that none of them
reaches the page or the document.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from eventplatform.catalogue import EventCatalogue, describe_deployment
from eventplatform.connectors.runtime.instances import ConnectorSpec, load_instances
from eventplatform.schema import load_catalogue
from tests.unit.catalogue.billing_app import app as billing

REPO = Path(__file__).parents[3]
SCHEMAS = REPO / "schemas"
CONNECTORS = REPO / "connectors"

SECRETS = {
    "ORDERS_API_KEY": "key-7f3e9a-never-shown",
    "ORDERS_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"ingress secret never shown!").decode(),
    "DEMO_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"egress secret never shown!!").decode(),
}


@pytest.fixture
def demo_specs() -> list[ConnectorSpec]:
    """The demo's connector instances, loaded with :data:`SECRETS`."""
    return load_instances(CONNECTORS, schemas_dir=SCHEMAS, env=SECRETS)


@pytest.fixture
def demo(demo_specs: list[ConnectorSpec]) -> EventCatalogue:
    """The demo deployment with the billing app."""
    return describe_deployment(
        catalogue=load_catalogue(SCHEMAS),
        specs=demo_specs,
        apps=[billing],
        title="Demo shop events",
        bootstrap_servers="127.0.0.1:9092",
    )
