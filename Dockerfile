# One image for every role: api, worker, beat, migrate (the command picks the role).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/loopserve
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so code changes reuse this layer.
COPY pyproject.toml README.md ./
RUN mkdir -p api tuning registry worker cli \
 && touch api/__init__.py tuning/__init__.py registry/__init__.py worker/__init__.py cli/__init__.py \
 && /opt/loopserve/bin/pip install ".[flower]" \
 && /opt/loopserve/bin/pip uninstall -y loopserve
COPY api api
COPY tuning tuning
COPY registry registry
COPY worker worker
COPY cli cli
RUN /opt/loopserve/bin/pip install --no-deps .

FROM python:3.11-slim
ENV PATH=/opt/loopserve/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOOPSERVE_HOME=/var/lib/loopserve
RUN useradd --system --uid 10001 --create-home --home-dir /home/loopserve loopserve \
 && mkdir -p /var/lib/loopserve && chown loopserve:loopserve /var/lib/loopserve
COPY --from=build /opt/loopserve /opt/loopserve
USER loopserve
WORKDIR /home/loopserve
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["loopserve", "api", "--host", "0.0.0.0", "--port", "8000"]
