"""Scoped credentials for third-party apps: a SCRAM user and ACLs per app (the open platform).

``eventplatform apps add NAME --read T --write U`` creates the user ``NAME`` with a SCRAM
credential and the ACLs of :class:`AppGrants`, and prints a ready client configuration
(:class:`ClientConfig`); ``apps list`` shows each app's grants; ``apps revoke`` removes both,
after which every broker refuses the app.

Modules: :mod:`~eventplatform.apps.grants` (what an app may do, as ACLs; pure),
:mod:`~eventplatform.apps.scram` (the salted password, RFC 5802),
:mod:`~eventplatform.apps.protocol` (the Kafka RPCs aiokafka lacks),
:mod:`~eventplatform.apps.admin` (the calls) and
:mod:`~eventplatform.apps.config` (the printed configuration).
"""

from __future__ import annotations

from eventplatform.apps.admin import AppCredentials, add_app, list_apps, revoke_app
from eventplatform.apps.config import ClientConfig
from eventplatform.apps.grants import Acl, AppGrants, AppSummary

__all__ = [
    "Acl",
    "AppCredentials",
    "AppGrants",
    "AppSummary",
    "ClientConfig",
    "add_app",
    "list_apps",
    "revoke_app",
]
