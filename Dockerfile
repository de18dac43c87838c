# A small image that runs the proxy as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY translator ./translator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home translator
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER translator
# Inside a container the proxy must listen on all interfaces to be reachable through a published port.
# It then refuses to start without client keys ([[keys]] in a mounted TRANSLATOR_CONFIG) unless
# TRANSLATOR_ALLOW_OPEN_ACCESS=true says the network in front of it is trusted.
ENV TRANSLATOR_HOST=0.0.0.0 TRANSLATOR_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"
ENTRYPOINT ["translator"]
CMD ["serve"]
