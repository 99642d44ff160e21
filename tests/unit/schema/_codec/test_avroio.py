"""Without fastavro's C extension the codec falls back to the public functions, bytes alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import eventplatform
from eventplatform.schema._codec import avroio

# Runs in a fresh interpreter where fastavro's compiled modules cannot be imported, as in an
# install without the C extension (fastavro itself then falls back to its *_py modules).
_SCRIPT = """
import importlib.abc, io, json, sys

COMPILED = {"fastavro._read", "fastavro._write", "fastavro._schema",
            "fastavro._logical_readers", "fastavro._logical_writers", "fastavro._validation"}

class NoExtension(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in COMPILED:
            raise ImportError(f"{name} is not built (simulated)")
        return None

sys.meta_path.insert(0, NoExtension())

from eventplatform.schema._codec import avroio
from eventplatform.schema._codec.rawcodec import raw_codec
from tests.unit.schema.models import Color, Everything, Point
from tests.unit.schema.test_roundtrip import everything

event = everything(choice=Point(x=1, y=2), maybe_color=Color.RED, note="n")
codec = raw_codec(Everything)
data = avroio.record_writer(codec.parsed)(b"", codec.encode(event))
back = codec.read(io.BytesIO(data))
print(json.dumps({
    "read_record": avroio._read_record is not None,
    "write_data": avroio._write_data is not None,
    "direct": [avroio._DIRECT, avroio._DIRECT_WRITE],
    "compiled_loaded": sorted(m for m in COMPILED if m in sys.modules),
    "bytes": data.hex(),
    "equal": back == event,
}))
"""


def test_without_the_compiled_extension_the_public_functions_write_and_read_the_same() -> None:
    from eventplatform.schema._codec.rawcodec import raw_codec
    from tests.unit.schema.models import Color, Everything, Point
    from tests.unit.schema.test_roundtrip import everything

    root = Path(eventplatform.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    fallback = json.loads(done.stdout)
    assert fallback["read_record"] is False
    assert fallback["write_data"] is False
    assert fallback["direct"] == [False, False]
    assert fallback["compiled_loaded"] == []
    assert fallback["equal"] is True

    # Here the extension is installed and the probes chose the direct calls: same bytes.
    assert avroio._DIRECT
    assert avroio._DIRECT_WRITE
    event = everything(choice=Point(x=1, y=2), maybe_color=Color.RED, note="n")
    codec = raw_codec(Everything)
    assert codec is not None
    assert bytes.fromhex(fallback["bytes"]) == avroio.record_writer(codec.parsed)(
        b"", codec.encode(event)
    )
