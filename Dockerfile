# The proxy as a small image that runs as a non-root user (uid and gid 10001).
# Its dependencies are the versions and hashes pinned in requirements.lock, compiled from pyproject.toml.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY translator ./translator
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 translator \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin translator
COPY requirements.lock /tmp/requirements.lock
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --require-hashes --requirement /tmp/requirements.lock \
 && pip install --no-cache-dir --no-deps /tmp/wheels/translator-*.whl \
 && rm -rf /tmp/wheels /tmp/requirements.lock
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# Inside a container the proxy must listen on all interfaces to be reachable through a published port.
# It then refuses to start without client keys ([[keys]] in a mounted TRANSLATOR_CONFIG) unless
# TRANSLATOR_ALLOW_OPEN_ACCESS=true says the network in front of it is trusted.
# Set the port with TRANSLATOR_PORT (it beats the config file), so that the health check follows it.
ENV TRANSLATOR_HOST=0.0.0.0 TRANSLATOR_PORT=8080 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TRANSLATOR_PORT', '8080') + '/healthz', timeout=3)"]
ENTRYPOINT ["translator"]
CMD ["serve"]
