#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build, run and test this project.
# Idempotent: packages already present are not reinstalled. Needs root (or sudo).
set -euo pipefail

packages=(
  pkg-config build-essential curl ca-certificates libvirt-clients libxml2-utils
  libgtk-4-dev libadwaita-1-dev libvirt-dev
  meson ninja-build gettext desktop-file-utils appstream libglib2.0-dev-bin libglib2.0-bin
  xvfb xauth x11-utils dbus-daemon dbus-x11 at-spi2-core python3-gi gir1.2-atspi-2.0
  fonts-dejavu-core adwaita-icon-theme hicolor-icon-theme librsvg2-common
  xfsprogs lvm2 thin-provisioning-tools scrypt bzip2
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "Installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "Installing the Rust toolchain (rustup, stable)"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
