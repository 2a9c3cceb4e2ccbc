#!/usr/bin/env bash
# The one command that sets up and runs the whole test suite (Debian 12, Python 3.11):
#
#     bash tests/run.sh [pytest arguments...]
#
# 1. Debian packages the interop tests run as real peers: dcmtk, orthanc (and its
#    DICOMweb plugin, orthanc-dicomweb), dicom3tools,
#    chromium (the status page's browser test)
#    (and nodejs/npm, python3-venv if missing). Installed only when missing; the
#    Orthanc system service is kept from starting (tests start their own Orthancs).
# 2. Azurite (npm) into tests/.node, pinned.
# 3. .venv with `pip install -e '.[test]'`, redone only when pyproject.toml changed.
# 4. pytest, with TCP_NODELAY=1 (Debian's DCMTK keeps Nagle on without it and every
#    DIMSE exchange stalls ~40 ms) and never in dev mode (moto breaks under -X dev).
#    A run that collects no test fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
AZURITE_VERSION=3.35.0 # engines: node >= 10 (3.36+ want node >= 21)
NODE_PREFIX=$ROOT/tests/.node
VENV=$ROOT/.venv
STAMP=$VENV/.triopacs-test-install

step() { printf '\n==> %s\n' "$*"; }
die() {
    printf '\nERROR: %s\n' "$*" >&2
    exit 1
}
started=$(date +%s)

# ---------------------------------------------------------------- 1. Debian packages
step "Debian packages (dcmtk, orthanc, orthanc-dicomweb, dicom3tools, chromium)"
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }
missing=()
for package in dcmtk orthanc orthanc-dicomweb dicom3tools chromium; do
    installed "$package" || missing+=("$package")
done
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)

if [ ${#missing[@]} -eq 0 ]; then
    echo "already installed"
else
    echo "installing: ${missing[*]}"
    [ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${missing[*]} (or install them yourself)"
    export DEBIAN_FRONTEND=noninteractive
    # Keep package scripts from starting services (the orthanc package would start one
    # on ports 4242/8042). Only if no policy is in place already; removed afterwards.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        apt-get update -q || die "apt-get update failed"
    fi
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        # Stale package lists are the usual cause: refresh once and retry.
        apt-get update -q || die "apt-get update failed"
        apt-get install -y -q --no-install-recommends "${missing[@]}" ||
            die "apt-get install ${missing[*]} failed"
    fi
    if [ -e "$policy" ] && trap -p EXIT | grep -q policy; then
        rm -f "$policy"
        trap - EXIT
    fi
fi
# If an Orthanc service runs anyway (installed earlier with a policy allowing it),
# stop it: the tests start their own, and a stray one only wastes memory.
if [ -s /run/orthanc.pid ] && kill -0 "$(cat /run/orthanc.pid)" 2>/dev/null; then
    echo "stopping the Orthanc system service"
    /etc/init.d/orthanc stop >/dev/null 2>&1 || true
fi
for program in /usr/bin/storescp /usr/bin/dcmqrscp /usr/bin/findscu /usr/sbin/Orthanc /usr/bin/chromium; do
    [ -x "$program" ] || die "$program is missing after installing dcmtk/orthanc"
done

# ---------------------------------------------------------------- 2. Azurite (npm)
step "Azurite $AZURITE_VERSION (npm, into tests/.node)"
azurite_installed() {
    node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' \
        "$NODE_PREFIX/node_modules/azurite/package.json" "$AZURITE_VERSION" 2>/dev/null
}
if azurite_installed; then
    echo "already installed"
else
    mkdir -p "$NODE_PREFIX"
    npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error \
        "azurite@$AZURITE_VERSION" || die "npm install azurite@$AZURITE_VERSION failed"
    azurite_installed || die "azurite $AZURITE_VERSION not found under $NODE_PREFIX after npm install"
fi

# ---------------------------------------------------------------- 3. Python venv
step "Python virtualenv (.venv, pip install -e '.[test]')"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || die "python3 -m venv .venv failed"
fi
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1) $ROOT"
if [ "$(cat "$STAMP" 2>/dev/null)" = "$wanted" ] &&
    "$VENV/bin/python" -c 'import triopacs, pytest, pytest_trio, pynetdicom, moto, boto3' 2>/dev/null; then
    echo "up to date"
else
    "$VENV/bin/python" -m pip install -qq --upgrade pip || die "pip upgrade failed"
    "$VENV/bin/python" -m pip install -qq -e ".[test]" || die "pip install -e '.[test]' failed"
    echo "$wanted" >"$STAMP"
fi

# ---------------------------------------------------------------- 4. pytest
step "pytest $* (setup took $(($(date +%s) - started)) s)"
export TCP_NODELAY=1
unset PYTHONDEVMODE
status=0
"$VENV/bin/python" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    die "pytest collected no tests (exit status 5): that is a failure here"
fi
exit "$status"
