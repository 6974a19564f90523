# syntax=docker/dockerfile:1
# One image for both halves of aigw: `aigw operator` (the kopf operator and its webhook) and
# `aigw sidecar` (the injected proxy). The entry point is the `aigw` console script; the chart
# passes `operator ...` and the webhook injects `sidecar ...` as arguments.
#
# Build with `make image` (it needs a Docker engine). The base is pinned by version; a release
# pipeline should pin it by digest too (PYTHON_IMAGE=python:<version>@sha256:<digest>).
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contract/ contract/
COPY operator/ operator/
COPY sidecar/ sidecar/
COPY cli/ cli/
COPY fakeprovider/ fakeprovider/
COPY e2e/aigw_e2e/ e2e/aigw_e2e/
# Build the wheel, then install it and its dependencies (all of which ship manylinux wheels:
# no compiler needed) into a virtual environment that the final stage copies as it is.
RUN pip wheel --no-deps --wheel-dir /dist . \
 && python -m venv /opt/aigw \
 && /opt/aigw/bin/pip install --no-compile /dist/aigw-*.whl \
 && /opt/aigw/bin/python -m compileall -q /opt/aigw/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="aigw" \
      org.opencontainers.image.description="Kubernetes-native AI gateway: operator and sidecar" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/aigw/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=build /opt/aigw /opt/aigw
# Not root: the uid/gid the chart's securityContext and the injected sidecar run as.
USER 65532:65532
# operator: webhook 9443, health/metrics 8080; sidecar: API 15400 (loopback), admin 15401.
EXPOSE 9443 8080 15400 15401
ENTRYPOINT ["aigw"]
CMD ["--help"]
