#!/usr/bin/env bash
# Installs what edgespool needs to build, run and test, from Debian's packages,
# skipping what is already there. Debian 12 (bookworm). Needs root or sudo.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git clang-format
  libpaho-mqtt-dev libssl-dev libsqlite3-dev sqlite3 libcjson-dev
  libcivetweb-dev libinih-dev libcurl4-openssl-dev libcmocka-dev libcrypt-dev
  librabbitmq-dev # common/amqp.c: the consumers' AMQP 0-9-1 transport
  mosquitto mosquitto-clients python3 curl procps openssl nginx-light
  clang libclang-rt-14-dev
  valgrind # it_flow_valgrind: the agent under memcheck
  prometheus # for promtool: the metrics test checks /metrics with it
  iproute2 nftables # tests/fault: the uplink partition (ip netns, nft rules in it)
  faketime # tests/fault: clock jumps (libfaketime under the agent)
  stress-ng # scripts/test.sh --load: the suite again with one core kept busy
  rabbitmq-server # tests/cluster: a RabbitMQ cluster with its MQTT plugin
  chromium nodejs
  lintian dpkg-dev systemd adduser # tests/package: lintian, dpkg-shlibdeps, systemd-analyze verify, the packages' postinst
  python3-yaml # tests/package: parses deploy/docker-compose.yml
  # tests/deploy: a debootstrapped bookworm booted under systemd-nspawn (the
  # packages under systemd as PID 1), and the compose file under podman
  # (runc: crun refuses hybrid cgroups; netavark and aardvark-dns: the
  # compose network and its service names; iptables: netavark's firewall).
  debootstrap systemd-container
  podman runc podman-compose netavark aardvark-dns iptables
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The browser tests' node program: a nodejs that bundles npm (NodeSource's,
# say) conflicts with Debian's npm package, so npm is added only when missing.
if [ ${#missing[@]} -eq 0 ] && command -v npm >/dev/null; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
$sudo apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v npm >/dev/null; then
  echo "deps: installing npm"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
# The package starts a system broker on port 1883 where systemd runs; ours
# are started by the scripts and tests on ports of their own. Likewise the
# prometheus package starts a server on port 9090 there; the tests use only
# its promtool.
# The rabbitmq-server package starts a system node where systemd runs. The
# cluster tests start nodes of their own (own names, ports and folders), so
# that one is only memory taken: stop it and keep it from starting at boot.
if command -v systemctl >/dev/null && systemctl is-enabled --quiet rabbitmq-server 2>/dev/null; then
  $sudo systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
fi
