"""Private: the fast Avro codec behind :meth:`AvroEvent.to_avro`/``from_avro`` and the serde.

Nothing here is promised to users; it trades readability for speed and may change with any
release. The readable path is :class:`eventplatform.schema.AvroEvent` (``to_avro()``,
``from_avro()``, ``parsed_schema()``) with fastavro's public functions; tests prove that this
package writes the same bytes and reads back the same events.

- :mod:`.plan`: the per-class fix-ups ``to_avro()`` applies after ``model_dump()``.
- :mod:`.rawschema`: which classes the raw codec may handle, and their schemas without
  logical types.
- :mod:`.rawvalues`: per-value conversions, exactly as fastavro's logical readers/writers.
- :mod:`.rawcodec`: the generated per-class encoder and decoder.
- :mod:`.avroio`: fastavro's compiled ``read_record``/``write_data`` called directly, behind
  an import guard and import-time probes; the public ``schemaless_reader``/``writer``
  otherwise.
"""
