# syntax=docker/dockerfile:1
# dossier-sync: one image for every role (serve, worker, the mock portal, the simulators,
# and the one-shot `db upgrade`). Migrations never run at start: `dossier-sync db upgrade`
# is a command of its own (deploy/compose.yaml runs it as the `migrate` service).

# --- build: the wheel and its dependencies in a virtual environment --------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/dossier-sync
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN /opt/dossier-sync/bin/pip install --no-cache-dir . \
    && /opt/dossier-sync/bin/dossier-sync --help >/dev/null

# --- runtime: the environment only, as an unprivileged user ----------------------------
FROM python:3.11-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="dossier-sync" \
      org.opencontainers.image.description="Dossiers of TTHC systems onto the National Public Service Portal"
RUN groupadd --system --gid 10001 dossier-sync \
    && useradd --system --uid 10001 --gid dossier-sync --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin dossier-sync
COPY --from=build /opt/dossier-sync /opt/dossier-sync
ENV PATH=/opt/dossier-sync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DOSSIER_SYNC_CONFIG=/etc/dossier-sync/config.toml \
    HEALTHCHECK_URL=http://127.0.0.1:8000/healthz
WORKDIR /var/lib/dossier-sync
USER 10001:10001
EXPOSE 8000
# Liveness of `serve` (a worker started with --metrics-port sets HEALTHCHECK_URL
# to its own port). The standard library only: the image carries no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4).status != 200)"]
ENTRYPOINT ["dossier-sync"]
CMD ["serve"]
