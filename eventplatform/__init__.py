"""eventplatform: typed, exactly-once-style event streaming on Apache Kafka."""

from eventplatform.__about__ import __version__
from eventplatform.errors import EventPlatformError

__all__ = ["EventPlatformError", "__version__"]
