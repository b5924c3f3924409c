#!/usr/bin/env bash
# Debian's chromium and chromium-driver for the inspector's browser tests
# (tests/server/test_inspector_browser.py). A browser download does not work on these machines,
# so the tests use only the distribution's packages. Does nothing when both are present.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install-browser.sh: no apt-get here; install chromium and chromium-driver yourself" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "installing chromium and chromium-driver (Debian packages) for the browser tests"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium chromium-driver
/usr/bin/chromium --version
