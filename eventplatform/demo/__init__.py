"""The demo domain: typed events generated from the sample catalogue in ``schemas/``.

:mod:`eventplatform.demo.events` is generated code; regenerate it with
``eventplatform schemas codegen schemas/ --out eventplatform/demo/events.py``.
"""
