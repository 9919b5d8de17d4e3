# The wheel-builder pattern: a builder stage runs `pip wheel` for the locked requirements and
# the project; a second stage on the same base installs those wheels into a venv.
ARG BASE
# The build stage's image: the base itself, or one with compilers for sdists (BUILDER).
ARG BUILDER=${BASE}
FROM ${BUILDER} AS build
COPY bench-ca.crt /etc/ssl/certs/bench-ca.crt
ENV PIP_CERT=/etc/ssl/certs/bench-ca.crt SSL_CERT_FILE=/etc/ssl/certs/bench-ca.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /src/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --require-hashes -r /src/requirements.txt -w /wheels
COPY . /src
RUN --mount=type=cache,target=/root/.cache/pip pip wheel --no-deps -w /wheels /src

FROM ${BASE}
COPY --from=build /wheels /wheels
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --no-index \
    --find-links /wheels /wheels/*.whl
ENV PATH=/opt/venv/bin:$PATH
