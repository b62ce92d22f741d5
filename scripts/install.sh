#!/usr/bin/env bash
# Install moviegen for a service: its own virtualenv under PREFIX, and the systemd unit for it.
#
#   scripts/install.sh [--prefix DIR] [--systemd]        (what `make install PREFIX=DIR [SYSTEMD=1]` runs)
#
# PREFIX (default /opt/moviegen) gets
#   venv/              a virtualenv with a normal, non-editable install of this checkout (pip install .):
#                      it copies the code, so the clone may move or go once this is done;
#   moviegen.service   systemd/moviegen.service with ExecStart= pointing at PREFIX/venv/bin/moviegen.
# With --systemd (as root) the unit also goes to /etc/systemd/system, /usr/local/bin/moviegen
# links to the installed command, and systemd is reloaded; without it the script prints those steps.
#
# PYTHON picks the interpreter (default python3, 3.11 or newer). pip reads its own PIP_* variables,
# e.g. PIP_INDEX_URL for a mirror, or PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR for an offline wheelhouse.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

prefix=/opt/moviegen
systemd=0
while (( $# )); do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a folder}"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --systemd) systemd=1; shift ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

# The path goes into a unit file's ExecStart= and into shebangs: keep it to plain characters.
if [[ "$prefix" != /* || ! "$prefix" =~ ^[A-Za-z0-9._/+-]+$ ]]; then
    echo "install: PREFIX must be an absolute path of letters, digits and ._/+- (got '$prefix')" >&2
    exit 2
fi
prefix="${prefix%/}"
if (( systemd )) && [[ $(id -u) -ne 0 ]]; then
    echo "install: --systemd (SYSTEMD=1) writes to /etc/systemd/system: run it as root" >&2
    exit 2
fi

python="${PYTHON:-python3}"
"$python" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"install: Python 3.11+ is needed, this is {sys.version.split()[0]} (set PYTHON=...)")
PY

venv="$prefix/venv"
echo "install: virtualenv $venv"
mkdir -p "$prefix"
"$python" -m venv "$venv"
# setuptools' build/ folder keeps files of modules since deleted; a fresh one builds only what is here.
rm -rf "$src/build"
echo "install: pip install $src (not editable)"
"$venv/bin/python" -m pip install --quiet --no-warn-script-location "$src"
rm -rf "$src/build"
version=$("$venv/bin/moviegen" --version)

unit="$prefix/moviegen.service"
{
    echo "# Rendered by scripts/install.sh for PREFIX=$prefix ($version)."
    sed "s|/usr/local/bin/moviegen|$venv/bin/moviegen|g" systemd/moviegen.service
} > "$unit.tmp"
mv "$unit.tmp" "$unit"
echo "install: $version in $venv; unit $unit"

for tool in ffmpeg ffprobe espeak-ng; do
    command -v "$tool" >/dev/null || echo "install: note: $tool is missing; \`sudo make setup\` installs it" >&2
done

if (( systemd )); then
    install -m 0644 "$unit" /etc/systemd/system/moviegen.service
    ln -sf "$venv/bin/moviegen" /usr/local/bin/moviegen
    systemctl daemon-reload
    echo "install: installed /etc/systemd/system/moviegen.service; start it with: systemctl enable --now moviegen"
else
    cat <<EOF
To run it as a service:
  sudo install -m 0644 $unit /etc/systemd/system/moviegen.service
  sudo ln -sf $venv/bin/moviegen /usr/local/bin/moviegen
  sudo systemctl daemon-reload && sudo systemctl enable --now moviegen
(or run: sudo make install PREFIX=$prefix SYSTEMD=1)
EOF
fi
