#!/usr/bin/env bash
# Install the Debian packages hush needs, only those missing. Needs root (or sudo).
set -euo pipefail
pkgs=(postgresql-15 postgresql-server-dev-15 postgresql-plpython3-15 python3-nacl python3-venv make)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
