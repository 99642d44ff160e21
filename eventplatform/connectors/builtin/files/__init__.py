"""JSON-lines files: :mod:`~.source` follows one into a topic (``file-source``), :mod:`~.sink`
appends a topic's events to one (``file-sink``)."""

from eventplatform.connectors.builtin.files.sink import FileSink, FileSinkConfig
from eventplatform.connectors.builtin.files.source import FileSource, FileSourceConfig

__all__ = ["FileSink", "FileSinkConfig", "FileSource", "FileSourceConfig"]
