# The platform: `eventplatform up` with this repository's schemas/ and connectors/, against the
# Kafka cluster in EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS. Run it with the broker it needs:
#
#   docker compose up --build            (the `platform` service of docker-compose.yml)
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY eventplatform ./eventplatform
RUN pip install --no-cache-dir .
COPY schemas ./schemas
COPY connectors ./connectors
# var/ (file sink output, demo receiver log) is usually a bind mount: see docker-compose.yml.
RUN mkdir var

# The ingress must listen on every interface to be reachable through a published port.
ENV DEMO_INGRESS_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
# 8080: webhook ingress (POST /hooks/orders), 8081: schema registry (Confluent REST API).
EXPOSE 8080 8081
ENTRYPOINT ["eventplatform"]
CMD ["up", "--no-tty", "--registry-host", "0.0.0.0"]
