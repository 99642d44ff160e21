"""The event catalogue: an AsyncAPI 3.0 document and an HTML page of a deployment's events.

::

    catalogue = describe_deployment(catalogue=load_catalogue(Path("schemas")), specs=specs)
    write_catalogue(catalogue, Path("site"))      # site/asyncapi.json, site/index.html

- :mod:`~eventplatform.catalogue.model`: what the catalogue says, from the schemas, the
  connector instances, the apps' handlers and (optionally) a schema registry;
- :mod:`~eventplatform.catalogue.asyncapi`: the AsyncAPI document;
- :mod:`~eventplatform.catalogue.html`: the page;
- :mod:`~eventplatform.catalogue.web`: aiohttp routes serving both (``/catalogue``,
  ``/asyncapi.json``).
"""

from eventplatform.catalogue.asyncapi import asyncapi_document
from eventplatform.catalogue.files import write_catalogue
from eventplatform.catalogue.html import render_html
from eventplatform.catalogue.model import (
    EventCatalogue,
    EventTypeView,
    FieldView,
    Participant,
    RegistryView,
    SubjectVersions,
    WebhookRoute,
    add_registry_versions,
    describe_deployment,
)
from eventplatform.catalogue.web import catalogue_routes

__all__ = [
    "EventCatalogue",
    "EventTypeView",
    "FieldView",
    "Participant",
    "RegistryView",
    "SubjectVersions",
    "WebhookRoute",
    "add_registry_versions",
    "asyncapi_document",
    "catalogue_routes",
    "describe_deployment",
    "render_html",
    "write_catalogue",
]
