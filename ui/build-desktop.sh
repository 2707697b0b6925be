#!/usr/bin/env bash
# Builds the desktop app (ui/src-tauri, Tauri 2) in release: the front end first (npm ci
# when package-lock.json changed, vite build), then the Rust side, outside the main
# workspace, in ${VMRUN_TAURI_TARGET:-~/.cache/vmrun/tauri-target}. Prints the binary's path.
#   --bundle   also make Linux packages with Tauri's bundler (@tauri-apps/cli from npm):
#              a .deb by default; VMRUN_BUNDLES=deb,appimage adds an AppImage (the
#              bundler downloads linuxdeploy for it, so that needs internet access).
#              Prints their paths.
# Needs the Debian packages in installer/packages.sh (VMRUN_GUI_BUILD_PACKAGES,
# VMRUN_TAURI_PACKAGES); installer/install.sh --with-gui installs them.
set -euo pipefail
ui=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CARGO_TARGET_DIR=${VMRUN_TAURI_TARGET:-$HOME/.cache/vmrun/tauri-target}
bundle=""
[ "${1:-}" = "--bundle" ] && bundle=1

cd "$ui"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund >&2
fi
npm run build >&2
if [ -n "$bundle" ]; then
    npx tauri build --bundles "${VMRUN_BUNDLES:-deb}" >&2
    find "$CARGO_TARGET_DIR/release/bundle" -maxdepth 2 \( -name '*.deb' -o -name '*.AppImage' \) -newer package.json -print
else
    (cd src-tauri && cargo build --release --locked >&2)
    echo "$CARGO_TARGET_DIR/release/vmrun-desktop"
fi
