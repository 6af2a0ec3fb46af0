# syntax=docker/dockerfile:1
# LLMscope agent image: the Rust binary in a small non-root runtime image.
#
# Build context is the repository root:
#   docker build -f deploy/docker/agent.Dockerfile -t llmscope-agent .
#
# /metrics and /healthz on 9464. GPU telemetry uses NVML, which the NVIDIA container
# runtime mounts when the container runs with NVIDIA_DRIVER_CAPABILITIES including
# `utility` (set below); without a driver the agent logs once and carries on.

ARG RUST_VERSION=1

# ---- agent binary ----------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The target folder is a cache mount, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p llmscope-agent \
 && install -D -m 0755 target/release/llmscope-agent /out/llmscope-agent

# ---- runtime ---------------------------------------------------------------------------
# Debian rather than distroless: the NVIDIA container runtime runs ldconfig in the image
# to make the injected libnvidia-ml.so.1 loadable.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 llmscope \
 && useradd --system --uid 10001 --gid llmscope --home-dir /var/lib/llmscope-agent \
        --shell /usr/sbin/nologin llmscope \
 && install -d -o llmscope -g llmscope -m 0750 /var/lib/llmscope-agent /run/llmscope
COPY --from=build /out/llmscope-agent /usr/local/bin/llmscope-agent
# The agent's own defaults are for a bare host (127.0.0.1:9464, ./llmscope-data/agent);
# in a container /metrics must be reachable from outside and the buffer has a fixed home.
ENV LLMSCOPE_AGENT_HTTP_LISTEN=0.0.0.0:9464 \
    LLMSCOPE_DATA_DIR=/var/lib/llmscope-agent \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=utility
WORKDIR /var/lib/llmscope-agent
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["llmscope-agent"]
