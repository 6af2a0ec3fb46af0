# syntax=docker/dockerfile:1
# LLMscope collector image: the web dashboard is built first (Vite), then the Rust binary
# that embeds web/dist at compile time, then a small non-root runtime image.
#
# Build context is the repository root:
#   docker build -f deploy/docker/collector.Dockerfile -t llmscope-collector .
#
# Listens on 7070 (gRPC ingest) and 8080 (HTTP: dashboard, API, /metrics, /healthz,
# /readyz). Configure with LLMSCOPE_* environment variables or --config (see README).

ARG RUST_VERSION=1
ARG NODE_VERSION=22

# ---- dashboard -------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# ---- collector binary ------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
COPY --from=web /src/web/dist web/dist
# The target folder is a cache mount, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p llmscope-collector \
 && install -D -m 0755 target/release/llmscope-collector /out/llmscope-collector

# ---- runtime ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 llmscope \
 && useradd --system --uid 10001 --gid llmscope --home-dir /var/lib/llmscope \
        --shell /usr/sbin/nologin llmscope \
 && install -d -o llmscope -g llmscope -m 0750 /var/lib/llmscope /run/llmscope
COPY --from=build /out/llmscope-collector /usr/local/bin/llmscope-collector
# The default database (sqlite://./llmscope-data/llmscope.db) lands in /var/lib/llmscope;
# set LLMSCOPE_DATABASE_URL=postgres://… for production.
WORKDIR /var/lib/llmscope
USER 10001:10001
EXPOSE 7070 8080
ENTRYPOINT ["llmscope-collector"]
CMD ["serve"]
