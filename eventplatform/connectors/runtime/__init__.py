"""The connector runtime: running connectors, supervising them, and what they share.

- :mod:`~eventplatform.connectors.runtime.supervisor`: :class:`ConnectorRuntime`, several
  connectors in one process, restarted with :class:`Backoff` when they fail.
- :mod:`~eventplatform.connectors.runtime.instances`: the ``connectors/*.toml`` instance files;
  :mod:`~eventplatform.connectors.runtime.plugins`: connector types by name (entry points).
- :mod:`~eventplatform.connectors.runtime.pump`: publishing what a source yields, then its
  positions; :mod:`~eventplatform.connectors.runtime.offsets` the positions and
  :mod:`~eventplatform.connectors.runtime.statuses` the statuses, each in a compacted topic
  (:mod:`~eventplatform.connectors.runtime.compacted`).
- :mod:`~eventplatform.connectors.runtime.http`: the HTTP servers request-reply connectors
  share, created and closed by the runtime.
"""

from eventplatform.connectors.runtime.http import HttpServers
from eventplatform.connectors.runtime.instances import ConnectorSpec, load_instance, load_instances
from eventplatform.connectors.runtime.offsets import OffsetStore
from eventplatform.connectors.runtime.plugins import available, load_connector_class
from eventplatform.connectors.runtime.statuses import StatusStore
from eventplatform.connectors.runtime.supervisor import Backoff, ConnectorRuntime

__all__ = [
    "Backoff",
    "ConnectorRuntime",
    "ConnectorSpec",
    "HttpServers",
    "OffsetStore",
    "StatusStore",
    "available",
    "load_connector_class",
    "load_instance",
    "load_instances",
]
