# syntax=docker/dockerfile:1
# PixSim: one image, four roles (gateway, dispatcher, poller, billing).
#   docker build -t pixsim:dev .
#   docker run --rm -p 8000:8000 -e NATS_URL=... -e MONGO_URL=... -e PIXSIM_CREDENTIALS_KEY=... pixsim:dev gateway
# The role is the argument (or PIXSIM_ROLE); see deploy/image/entrypoint.py.

# Base images are pinned by tag (the same Python minor as uv.lock was resolved with; the uv the repo uses).
# The deploy pipeline may pin the built image by digest on top (kustomize `images:` in deploy/k8s).
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# -- build: the locked workspace into /app/.venv, no dev dependencies, no editable installs ------
FROM python:3.11.13-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY libs ./libs
COPY services ./services
# --no-editable: the workspace packages are installed as wheels, so the runtime stage needs only the venv.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --all-packages --no-dev --no-editable

# -- runtime: the venv, the provider folders and the entrypoint; nothing else -------------------
FROM python:3.11.13-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 pixsim \
 && useradd --system --uid 10001 --gid pixsim --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pixsim
# WORKDIR is the repo root's equivalent, so PIXSIM_PROVIDERS_DIR=providers resolves as it does in `make run`.
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY providers ./providers
COPY deploy/image ./deploy/image
# Compile the provider folders now: the root filesystem is read-only at run time.
RUN /app/.venv/bin/python -m compileall -q providers deploy/image
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIXSIM_PROVIDERS_DIR=providers \
    PIXSIM_HTTP_HOST=0.0.0.0 \
    PIXSIM_HTTP_PORT=8000
USER 10001:10001
EXPOSE 8000
# Docker's own check (Kubernetes uses its probes instead): /healthz answers while the process lives.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PIXSIM_HTTP_PORT', '8000'), timeout=2)"]
ENTRYPOINT ["python", "/app/deploy/image/entrypoint.py"]
CMD ["gateway"]
