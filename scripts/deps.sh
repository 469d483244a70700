#!/usr/bin/env bash
# Installs what edgespool needs to build, run and test, from Debian's packages,
# skipping what is already there. Debian 12 (bookworm). Needs root or sudo.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git clang-format
  libpaho-mqtt-dev libssl-dev libsqlite3-dev sqlite3 libcjson-dev
  libcivetweb-dev libinih-dev libcurl4-openssl-dev libcmocka-dev
  mosquitto mosquitto-clients python3 curl procps openssl
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The package starts a system broker on port 1883 where systemd runs; ours
# are started by the scripts and tests on ports of their own.
