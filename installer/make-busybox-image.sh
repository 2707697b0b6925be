#!/usr/bin/env bash
# Builds the default image, busybox:latest, from Debian's busybox-static.
#
#   make-busybox-image.sh OUT.tar [--format oci|docker]
#
# One gzip layer: /bin/busybox, a symlink for every applet (`busybox
# --list-full`), /etc/passwd, /etc/group, /etc/shadow with root, daemon and
# nobody (65534) like the busybox image, /tmp (1777), /root, /home,
# /var/spool/mail. Config: PATH, Cmd ["sh"], amd64/linux, rootfs.diff_ids.
#
# The output is reproducible (fixed mtimes, sorted entries, numeric root
# ownership, `gzip -n`), so the image id is stable across runs. The time is
# SOURCE_DATE_EPOCH if set, else the mtime of the busybox binary.
#
# --format oci (default): an OCI image layout tar (oci-layout, index.json with
#   the ref-name annotation busybox:latest and io.containerd.image.name
#   docker.io/library/busybox:latest, blobs/sha256/...).
# --format docker: a docker-archive as `docker save` writes it (manifest.json,
#   <config>.json, <layer>/layer.tar uncompressed, repositories).
set -euo pipefail
umask 022
export LC_ALL=C

usage() {
    echo "usage: $0 OUT.tar [--format oci|docker]" >&2
    exit 2
}

out=""
format="oci"
while [ $# -gt 0 ]; do
    case "$1" in
        --format) [ $# -ge 2 ] || usage; format="$2"; shift 2 ;;
        --format=*) format="${1#--format=}"; shift ;;
        -h|--help) usage ;;
        -*) echo "unknown option: $1" >&2; usage ;;
        *) [ -z "$out" ] || usage; out="$1"; shift ;;
    esac
done
[ -n "$out" ] || usage
case "$format" in oci|docker) ;; *) echo "unknown format: $format (oci or docker)" >&2; exit 2 ;; esac

busybox="${BUSYBOX:-/bin/busybox}"
if [ ! -x "$busybox" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing busybox-static" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >&2
    fi
fi
[ -x "$busybox" ] || { echo "error: $busybox not found (apt-get install busybox-static)" >&2; exit 1; }
"$busybox" --list-full >/dev/null || { echo "error: $busybox --list-full failed" >&2; exit 1; }

epoch="${SOURCE_DATE_EPOCH:-$(stat -c %Y "$busybox")}"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
version="$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || true)"
[ -n "$version" ] || version="$("$busybox" 2>&1 | head -n1 | tr -d '"\\')"
arch="amd64"
os="linux"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

# --- the root filesystem ---------------------------------------------------
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,home,root,tmp,var/spool/mail,var/www}
install -m 0755 "$busybox" "$rootfs/bin/busybox"
while read -r applet; do
    [ -n "$applet" ] && [ "$applet" != "bin/busybox" ] || continue
    dir="$(dirname "$applet")"
    mkdir -p "$rootfs/$dir"
    if [ "$dir" = "bin" ]; then
        target="busybox"
    elif [ "$dir" = "." ]; then
        target="bin/busybox"
    else
        up="$(echo "$dir" | sed 's#[^/]*#..#g')"
        target="$up/bin/busybox"
    fi
    ln -sfn "$target" "$rootfs/$applet"
done < <("$busybox" --list-full | sort -u)

cat > "$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
cat > "$rootfs/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
EOF
awk -F: '{ print $1 ":*::0:99999:7:::" }' "$rootfs/etc/passwd" | sed 's/^root:\*:/root:!:/' > "$rootfs/etc/shadow"
echo "hosts: files dns" > "$rootfs/etc/nsswitch.conf"

find "$rootfs" -type d -exec chmod 0755 {} +
find "$rootfs" -type f -exec chmod 0644 {} +
chmod 0755 "$rootfs/bin/busybox"
chmod 0600 "$rootfs/etc/shadow"
chmod 0700 "$rootfs/root"
chmod 1777 "$rootfs/tmp"
find "$rootfs" -exec touch -h -d "@$epoch" {} +

# Reproducible tar of the contents of directory $1 into $2 (sorted, no "./" prefix).
repro_tar() {
    local dest
    dest="$(realpath -m "$2")"
    (cd "$1" && find . -mindepth 1 -printf '%P\n' | sort > "$work/list.$$" &&
        tar --create --format=gnu --no-recursion --numeric-owner \
            --owner=0 --group=0 --mtime="@$epoch" --files-from="$work/list.$$" --file="$dest")
    rm -f "$work/list.$$"
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

repro_tar "$rootfs" "$work/layer.tar"
gzip -n -9 < "$work/layer.tar" > "$work/layer.tar.gz"
diff_id="$(sha256 "$work/layer.tar")"

printf '{"architecture":"%s","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"created":"%s","history":[{"created":"%s","created_by":"installer/make-busybox-image.sh (busybox-static %s)"}],"os":"%s","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$arch" "$created" "$created" "$version" "$os" "$diff_id" > "$work/config.json"
config_id="$(sha256 "$work/config.json")"

image="$work/image"
mkdir -p "$image"
if [ "$format" = oci ]; then
    mkdir -p "$image/blobs/sha256"
    layer_digest="$(sha256 "$work/layer.tar.gz")"
    cp "$work/layer.tar.gz" "$image/blobs/sha256/$layer_digest"
    cp "$work/config.json" "$image/blobs/sha256/$config_id"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
        "$config_id" "$(size "$work/config.json")" "$layer_digest" "$(size "$work/layer.tar.gz")" > "$work/manifest.json"
    manifest_digest="$(sha256 "$work/manifest.json")"
    cp "$work/manifest.json" "$image/blobs/sha256/$manifest_digest"
    printf '{"imageLayoutVersion":"1.0.0"}' > "$image/oci-layout"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"docker.io/library/busybox:latest","org.opencontainers.image.ref.name":"busybox:latest"},"platform":{"architecture":"%s","os":"%s"}}]}' \
        "$manifest_digest" "$(size "$work/manifest.json")" "$arch" "$os" > "$image/index.json"
else
    mkdir -p "$image/$diff_id"
    cp "$work/layer.tar" "$image/$diff_id/layer.tar"
    printf '1.0' > "$image/$diff_id/VERSION"
    cp "$work/config.json" "$image/$config_id.json"
    printf '[{"Config":"%s.json","RepoTags":["busybox:latest"],"Layers":["%s/layer.tar"]}]' \
        "$config_id" "$diff_id" > "$image/manifest.json"
    printf '{"busybox":{"latest":"%s"}}' "$diff_id" > "$image/repositories"
fi
find "$image" -type d -exec chmod 0755 {} +
find "$image" -type f -exec chmod 0644 {} +
find "$image" -exec touch -h -d "@$epoch" {} +

mkdir -p "$(dirname "$out")"
repro_tar "$image" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
echo "sha256:$config_id"
