# Multi-stage build: static binaries, the Socket.IO 0.9.16 client script from
# npm, and a small non-root final image.
#   docker build -t realtime .
#   docker run realtime gateway -h      (or worker, demo)

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/gateway ./cmd/worker ./cmd/demo

FROM node:20-slim AS client
WORKDIR /client
COPY test/package.json test/package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=optional

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
COPY --from=client /client/node_modules/socket.io-client/dist/socket.io.js /srv/socket.io.js
COPY web/chat /srv/chat
USER nonroot:nonroot
ENV GATEWAY_CLIENT_SCRIPT=/srv/socket.io.js GATEWAY_STATIC=/srv/chat
# Only the client port is exposed (docker run -P publishes what is exposed).
# The admin listener (:8100 here, :8110 for a worker) must listen on the
# container's network for Prometheus and health checks on that network to
# reach it, but is never to be published: publish 8000 alone
# (docker run -p 8000:8000). The profiler stays off (no -pprof).
EXPOSE 8000
ENTRYPOINT []
CMD ["/usr/local/bin/gateway", "-addr", ":8000", "-admin-addr", ":8100"]
