#!/bin/bash
# Installs every Debian package sluice needs to build and test. Idempotent:
# when all are present it changes nothing. Add packages to PACKAGES below.
set -euo pipefail

PACKAGES=(
    # build
    clang llvm libbpf-dev libxdp-dev bpftool libelf-dev zlib1g-dev pkg-config make g++
    # Debian trixie's clang: the BPF object is built with it too, and the
    # verifier budget test loads both (tests/bpf/verifier_test.cpp)
    clang-19
    # clang's sanitizer and libFuzzer runtimes (make test-sanitize, make fuzz)
    libclang-rt-14-dev
    # libraries
    libcli11-dev libtomlplusplus-dev libcpp-httplib-dev libhiredis-dev
    libgtest-dev libbenchmark-dev nlohmann-json3-dev
    # tests, benchmarks and their peers
    libcap2-bin xdp-tools iproute2 nftables iptables python3-scapy tcpdump ethtool
    prometheus curl wrk redis-server
    # the real API of the scenario tests (Debian's python, /usr/bin/python3);
    # python3-limits is Flask-Limiter's parser, the reference of the unit
    # test FlaskRates (tests/unit/data/gen_flask_rates.py)
    gunicorn python3-flask python3-flask-limiter python3-limits
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PACKAGES[@]} packages are installed; nothing to do"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing ${missing[*]}; installing them needs root: run as root (sudo $0)" >&2
    exit 2
fi

echo "install-deps: installing ${missing[*]}"
# .ci/run has already fetched the package lists.
[ "${SLUICE_APT_UPDATED:-0}" = 1 ] || apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
