# The uv pattern from uv's Docker guide: dependencies first (cache mount, --no-install-project),
# then the project, into a venv copied onto the same base. BASE is the benchmark's base image.
ARG BASE
# The build stage's image: the base itself, or one with compilers for sdists (BUILDER).
ARG BUILDER=${BASE}
FROM ${BUILDER} AS build
# 1 compiles bytecode at install, as uv's Docker guide recommends for production images.
ARG UV_COMPILE_BYTECODE=0
COPY bench-ca.crt /etc/ssl/certs/bench-ca.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/bench-ca.crt PIP_CERT=/etc/ssl/certs/bench-ca.crt \
    UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=${UV_COMPILE_BYTECODE} \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=cache,target=/root/.cache/pip pip install --break-system-packages uv==0.13.9
WORKDIR /app
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-install-project --no-dev --python /usr/bin/python3
COPY . /app
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --python /usr/bin/python3

FROM ${BASE}
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
