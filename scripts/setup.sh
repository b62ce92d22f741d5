#!/usr/bin/env bash
# Install what moviegen needs, skipping whatever is already there.
#
#   scripts/setup.sh            runtime: ffmpeg, a Japanese font, espeak-ng, the venv
#   scripts/setup.sh --test     also what the test suite needs: chromium, node, systemd-analyze,
#                               and the Remotion npm packages (npm ci in remotion/)
#
# Chromium, Node.js and the npm packages are installed for the runtime only when the Remotion
# renderer is configured (MOVIEGEN_VIDEO__RENDERER=remotion), because Remotion is opt-in (see
# README, "Licences").
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1
want_remotion=0
[[ "${MOVIEGEN_VIDEO__RENDERER:-}" == "remotion" ]] && want_remotion=1

missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
fc-list :lang=ja 2>/dev/null | grep -q . || missing+=(fonts-noto-cjk fontconfig)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if (( want_test || want_remotion )); then
    # Remotion renders with Debian's Chromium and Node.js: its opt-in needs both, not only npm packages.
    [[ -x /usr/bin/chromium ]] || missing+=(chromium)
    command -v node >/dev/null || missing+=(nodejs npm)
fi
if (( want_test )); then
    command -v systemd-analyze >/dev/null || missing+=(systemd)
fi

if (( ${#missing[@]} )); then
    if [[ $(id -u) -eq 0 ]]; then
        echo "setup: installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: missing Debian packages: ${missing[*]}" >&2
        echo "setup: run as root, or: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
else
    echo "setup: Debian packages present (ffmpeg, Japanese font, espeak-ng$( (( want_test || want_remotion )) && echo ', chromium, node')$( (( want_test )) && echo ', systemd-analyze'))"
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: Python 3.11+ is needed, this is {sys.version.split()[0]}")
PY

if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
stamp=.venv/.moviegen-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    echo "setup: installing moviegen into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
    touch "$stamp"
else
    echo "setup: .venv is up to date"
fi

if (( want_test || want_remotion )); then
    if [[ -f remotion/package-lock.json ]]; then
        if [[ ! -d remotion/node_modules || remotion/package-lock.json -nt remotion/node_modules ]]; then
            echo "setup: npm ci in remotion/"
            (cd remotion && npm ci --no-audit --no-fund --loglevel=error)
            touch remotion/node_modules
        else
            echo "setup: remotion/node_modules is up to date"
        fi
    fi
fi
echo "setup: done"
