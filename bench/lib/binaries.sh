# Release binaries for the bench scripts (sourced). The sourcing script defines ROOT_DIR,
# BIN_DIR (empty: choose the default) and die MESSAGE.

# The cargo package of each binary.
package_of() {
    case "$1" in
        vmrund) echo vmrun-daemon ;;
        *) echo "$1" ;;
    esac
}

# Sets BIN_DIR to ${CARGO_TARGET_DIR:-ROOT_DIR/target}/release when it is empty, building
# the named binaries there (release) if any is missing; then checks each is in BIN_DIR.
ensure_binaries() {
    local b target_dir packages=() missing=no
    if [ -z "$BIN_DIR" ]; then
        target_dir=${CARGO_TARGET_DIR:-$ROOT_DIR/target}
        BIN_DIR=$target_dir/release
        for b in "$@"; do
            [ -x "$BIN_DIR/$b" ] || missing=yes
            packages+=(-p "$(package_of "$b")")
        done
        if [ "$missing" = yes ]; then
            echo "building $* (release) into $target_dir..." >&2
            CARGO_TARGET_DIR=$target_dir cargo build --release -q \
                --manifest-path "$ROOT_DIR/Cargo.toml" "${packages[@]}"
        fi
    fi
    for b in "$@"; do
        [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b not found (build it, or pass --bin-dir)"
    done
}
