#!/usr/bin/env bash
# Builds the desktop app (ui/src-tauri, Tauri 2) in release: the front end first (npm ci
# when package-lock.json changed, vite build), then the Rust side, outside the main
# workspace, in ${VMRUN_TAURI_TARGET:-~/.cache/vmrun/tauri-target}. Prints the binary's path.
#   --bundle   build through Tauri's bundler instead (@tauri-apps/cli from npm: the same
#              release binary, then Linux packages): a .deb by default, in
#              $CARGO_TARGET_DIR/release/bundle/deb; VMRUN_BUNDLES=deb,appimage adds an
#              AppImage (the bundler downloads linuxdeploy from GitHub for it, so that
#              needs internet access). Prints the packages' paths, then the binary's.
#              Both ways build the same binary with the same features, so switching
#              between them does not rebuild it.
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
# The front end is rebuilt only when its sources changed: a rebuilt ui/dist (new mtimes)
# makes cargo recompile the app, which embeds it.
if [ ! -f dist/index.html ] ||
    [ -n "$(find src index.html vite.config.ts tsconfig.json package.json package-lock.json -newer dist/index.html -print -quit)" ]; then
    npm run build >&2
fi
if [ -n "$bundle" ]; then
    stamp=$(mktemp)
    npx tauri build --bundles "${VMRUN_BUNDLES:-deb}" -- --locked >&2
    find "$CARGO_TARGET_DIR/release/bundle" -maxdepth 2 \( -name '*.deb' -o -name '*.AppImage' \) -newer "$stamp" -print
    rm -f "$stamp"
else
    (cd src-tauri && cargo build --release --locked >&2)
fi
echo "$CARGO_TARGET_DIR/release/vmrun-desktop"
