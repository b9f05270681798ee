#!/usr/bin/env bash
# Installs the Debian packages the test suites use beside Node (the tests never install anything):
#   chromium        the demo page's browser test (test/example/demo-page*)
#   docker-compose  validates docker-compose.yml (test/docker; no Docker engine needed)
#   openssl         self-signed certificates of the TLS host apps (test/host-apps)
#   procps          pgrep, to check that no server process was left behind
# PostgreSQL and Redis are services: scripts/ensure-services.js finds or starts them.
# Idempotent: installs only what is missing, after one `apt-get update`. Run as root (or with sudo).
set -euo pipefail

PACKAGES=(chromium docker-compose openssl procps)

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all installed (${PACKAGES[*]})"
  exit 0
fi

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
echo "system packages: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
