# The entry points: the same commands locally, in CI (.ci/run) and in the README.
.PHONY: up test unit check bench kafka clean

PY := .venv/bin/python

up:            ## run the main job: the demo deployment (Kafka, registry, connectors)
	@scripts/bootstrap dev
	$(PY) -m eventplatform up

kafka:         ## only a development broker, in the foreground
	@scripts/bootstrap dev
	$(PY) -m eventplatform kafka start

test: check    ## the gates (fast fail), then the whole test suite against a real broker (and PostgreSQL)
	@scripts/system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

unit:          ## tests that need no broker
	@scripts/bootstrap dev
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

check:         ## lint, format and type gates
	@scripts/bootstrap dev
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench:         ## ratio benchmarks against raw clients and peers
	@scripts/bootstrap "dev,bench"
	$(PY) -m benchmarks

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis
