#!/usr/bin/env bash
# Headless browser for tests/serving/test_serve.py::test_browser_page (the `rnn-apps serve` page).
# Optional: without it that one test skips with a reason. Debian/Ubuntu runners; needs root
# (or sudo) for apt-get. Idempotent: does nothing that is already installed.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi

if ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    # Debian's package names; chromedriver matches the browser's version.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver
  else
    echo "install-browser: no apt-get here; the browser test will be skipped" >&2
  fi
fi

# The driver library (Selenium is pointed at /usr/bin/chromedriver, so it downloads nothing).
python -c "import selenium" 2>/dev/null || python -m pip install -q "selenium>=4.10"
