#!/usr/bin/env bash
# Installs the Debian packages the test suites use beside Node (the tests never install anything):
#   chromium           the demo page's browser test (test/example/demo-page*)
#   docker-compose     validates docker-compose.yml (test/docker; no Docker engine needed)
#   openssl            self-signed certificates of the TLS host apps (test/host-apps)
#   postgresql-client  psql, for a write made outside the app (test/change-capture/horizon-stall)
#   nginx              the real proxy in front of several instances (test/faults/nginx-*)
#   redis-server       throw-away servers and Redis Clusters the fault and cluster tests start
#   redis-tools        redis-cli --cluster create (test/support/redis-cluster.ts)
# PostgreSQL and Redis themselves are services: scripts/ensure-services.js finds or starts them.
# Idempotent: installs only the packages whose command is missing, after one `apt-get update`.
# Run as root (or with sudo).
set -euo pipefail

# command:package
TOOLS=(chromium:chromium docker-compose:docker-compose openssl:openssl psql:postgresql-client
  nginx:nginx redis-server:redis-server redis-cli:redis-tools)

missing=()
for tool in "${TOOLS[@]}"; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool##*:}")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all there (${TOOLS[*]%%:*})"
  exit 0
fi

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
echo "system packages: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
