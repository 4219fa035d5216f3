#!/usr/bin/env bash
# Installs the system packages Relief needs from Debian's archive. Idempotent.
#   --base   what `make setup` needs: python3-venv (Debian ships ensurepip separately) and a CJK font for PDFs
#   (none)   what the tests drive for real: chromium (browser tests) and PostgreSQL 15 (storage tests)
# Without root or sudo it only says what is missing: those tests then skip with a reason.
set -euo pipefail
need=()
if [ "${1:-}" = "--base" ]; then
  python3 -c "import ensurepip" 2>/dev/null || need+=(python3-venv)
  # Chinese, Japanese and Korean characters in PDF reports (patient names): a 1.8 MB fallback font
  [ -f /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf ] || need+=(fonts-droid-fallback)
else
  [ -x /usr/bin/chromium ] || need+=(chromium)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "system_deps: not root — please install: ${need[*]} (the tests that need them will be skipped)" >&2
    exit 0; fi
fi
echo "Installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
