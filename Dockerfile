# The lineguard image: the `lineguard` command (camera producers, inference workers, tools).
# Built by docker-compose.yml for the `camera` and `worker` services.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Metadata first, then the packages: the expensive dependency install is redone only when they change.
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY infra ./infra
COPY streams ./streams
COPY workers ./workers
COPY vision ./vision
COPY lineguard ./lineguard
COPY chaos ./chaos
COPY quality ./quality
COPY mes ./mes
COPY parts ./parts
# /var/lib/lineguard/spool exists and belongs to the user, so a named volume mounted there is writable.
RUN pip install . && useradd --create-home --uid 10001 lineguard \
    && mkdir -p /var/lib/lineguard/spool && chown -R lineguard /var/lib/lineguard

USER lineguard
ENTRYPOINT ["lineguard"]
CMD ["--help"]
