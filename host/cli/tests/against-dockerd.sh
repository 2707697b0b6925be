#!/usr/bin/env bash
# Smoke test of the vmrun CLI against a private reference dockerd (Debian's
# docker.io), comparing its output and exit statuses with the real docker CLI
# talking to the same daemon. Exits non-zero on the first mismatch.
#
# Usage: host/cli/tests/against-dockerd.sh   (as root; builds vmrun unless
#        VMRUN=/path/to/vmrun is set)
set -u

skip() { echo "skipping: $*" >&2; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root to run dockerd"
command -v dockerd >/dev/null || skip "dockerd not installed (apt-get install docker.io)"
command -v docker >/dev/null || skip "docker CLI not installed"
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || skip "busybox not installed (apt-get install busybox-static)"
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' || skip "$BUSYBOX is not static"

REPO=$(cd "$(dirname "$0")/../../.." && pwd)
if [ -z "${VMRUN:-}" ]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-cli}
  (cd "$REPO" && cargo build -q -p vmrun) || { echo "FAIL: build" >&2; exit 1; }
  VMRUN=$CARGO_TARGET_DIR/debug/vmrun
fi

WORK=$(mktemp -d /tmp/vmrun-cli-smoke.XXXXXX)
SOCK=$WORK/ref.sock
H="-H unix://$SOCK"
AUTO_PID_FILE=$WORK/auto-exec/fake.pid
AUTO_PID=
cleanup() {
  for p in "$WORK/ref.pid" "$AUTO_PID_FILE"; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
  done
  # The daemon vmrun auto-started (its pid is in vmrun's message).
  [ -n "$AUTO_PID" ] && kill "$AUTO_PID" 2>/dev/null
  sleep 1
  grep -o " $WORK[^ ]*" /proc/mounts | sort -r | while read -r m; do umount "$m" 2>/dev/null; done
  rm -rf "$WORK" 2>/dev/null
}
trap cleanup EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# expect_eq NAME GOT WANT
expect_eq() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1"; diff <(printf '%s\n' "$3") <(printf '%s\n' "$2") >&2; fi
}
# same_output NAME ARGS...: vmrun and docker print the same (retried, since
# "N seconds ago" can tick between the two calls).
same_output() {
  local name=$1; shift
  local a b
  for _ in 1 2 3; do
    a=$("$VMRUN" $H "$@" 2>&1); b=$(docker $H "$@" 2>&1)
    [ "$a" = "$b" ] && { pass "$name"; return; }
    sleep 0.3
  done
  fail "$name"; diff <(printf '%s\n' "$b") <(printf '%s\n' "$a") >&2
}

dockerd --host "unix://$SOCK" --data-root "$WORK/ref-root" --exec-root "$WORK/ref-exec" \
  --pidfile "$WORK/ref.pid" --bridge none --iptables=false >"$WORK/ref.log" 2>&1 &
for _ in $(seq 50); do docker $H version >/dev/null 2>&1 && break; sleep 0.2; done
docker $H version >/dev/null 2>&1 || { echo "FAIL: dockerd did not start; log:" >&2; cat "$WORK/ref.log" >&2; exit 1; }

ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS/bin" "$ROOTFS/etc" "$ROOTFS/tmp" "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/dev"
cp "$BUSYBOX" "$ROOTFS/bin/busybox"
for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -sf busybox "$ROOTFS/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$ROOTFS/etc/passwd"
echo 'root:x:0:' >"$ROOTFS/etc/group"
tar -C "$ROOTFS" -c . | docker $H import -c 'CMD ["sh"]' \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - busybox:latest >/dev/null

V() { "$VMRUN" $H "$@"; }

# run: output and exit statuses
expect_eq "run echo" "$(V run --rm busybox echo hi)" "hi"
V run --rm busybox sh -c 'exit 3'; expect_eq "run exit status" "$?" "3"
V run --rm busybox nosuchcmd 2>/dev/null; expect_eq "run: command not found is 127" "$?" "127"
V run --rm busybox /etc/passwd 2>/dev/null; expect_eq "run: not executable is 126" "$?" "126"
err=$(V run -p 80:abc busybox 2>&1); expect_eq "bad -p is 125" "$?" "125"
expect_eq "bad -p message" "$err" 'vmrun: invalid argument "80:abc" for "-p, --publish" flag: invalid containerPort: abc'
V run --memory 12q busybox true 2>/dev/null; expect_eq "bad --memory is 125" "$?" "125"
V run -v ./rel:/x busybox true 2>/dev/null; expect_eq "relative -v is 125" "$?" "125"
expect_eq "run -i forwards stdin" "$(echo piped | V run --rm -i busybox cat)" "piped"
expect_eq "stderr is kept apart" "$(V run --rm busybox sh -c 'echo out; echo err >&2' 2>/dev/null)" "out"
expect_eq "flags reach the container" \
  "$(V run --rm -e X=1 -w /tmp -u 1000 --hostname hh busybox sh -c 'echo $X $(pwd) $(id -u) $(hostname)')" "1 /tmp 1000 hh"
expect_eq "--memory reaches the cgroup" \
  "$(V run --rm --memory 64m busybox cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || echo skip)" "67108864"

# a few containers in several states, then compare tables with docker's
V run -d --name web busybox sh -c 'while true; do sleep 1; done' >/dev/null
V create --name created1 busybox echo >/dev/null
V run --name exited1 busybox sh -c 'exit 2'
same_output "ps -a table" ps -a
same_output "ps table" ps
same_output "ps -q" ps -aq
same_output "ps --no-trunc" ps -a --no-trunc
same_output "ps custom table" ps -a --format 'table {{.Names}}\t{{.Status}}\t{{.Image}}'
same_output "images table" images
same_output "images -q" images -q
same_output "inspect container" inspect exited1
same_output "inspect image" inspect busybox
same_output "inspect template" inspect --format '{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}} {{json .Config.Env}}' exited1
same_output "top" top web
same_output "network ls" network ls
same_output "logs" logs exited1
expect_eq "exec" "$(V exec web echo in-exec)" "in-exec"
V exec web sh -c 'exit 5'; expect_eq "exec exit status" "$?" "5"
expect_eq "wait" "$(V wait exited1)" "2"
expect_eq "stop prints names" "$(V stop -t 1 web)" "web"
V inspect nope >/dev/null 2>&1; expect_eq "inspect missing is 1" "$?" "1"
expect_eq "rm -f" "$(V rm -f web created1 exited1 | tr '\n' ' ')" "web created1 exited1 "
V volume create vol1 >/dev/null
same_output "volume ls" volume ls
expect_eq "named volume" "$(V run --rm -v vol1:/data busybox sh -c 'echo x >/data/f; cat /data/f')" "x"
expect_eq "volume rm" "$(V volume rm vol1)" "vol1"

# no daemon: plain commands fail, run/create/start/load start one
NOSOCK=$WORK/auto.sock
out=$("$VMRUN" -H "unix://$NOSOCK" ps 2>&1); code=$?
expect_eq "ps without daemon exits 1" "$code" "1"
expect_eq "ps without daemon message" "$out" "vmrun: cannot connect to the vmrun daemon at unix://$NOSOCK: is it running?"
# A copy of vmrun with a vmrund stand-in next to it (found before PATH).
FAKEBIN=$WORK/fakebin
mkdir -p "$FAKEBIN"
cp "$VMRUN" "$FAKEBIN/vmrun"
cat >"$FAKEBIN/vmrund" <<'EOF'
#!/bin/sh
# Stand-in for vmrund: maps its flags onto a private dockerd.
while [ $# -gt 0 ]; do
  case "$1" in
    --host) HOST=$2; shift 2;; --data-root) DATA=$2; shift 2;; --exec-root) EXEC=$2; shift 2;; *) shift;;
  esac
done
mkdir -p "$EXEC"
exec dockerd --host "$HOST" --data-root "$DATA" --exec-root "$EXEC" --pidfile "$EXEC/fake.pid" --bridge none --iptables=false
EOF
chmod +x "$FAKEBIN/vmrund"
docker $H save busybox:latest -o "$WORK/bb.tar"
out=$(VMRUN_DAEMON_LOG=$WORK/log/vmrund.log VMRUN_DATA_ROOT=$WORK/auto-root \
  VMRUN_EXEC_ROOT=$WORK/auto-exec "$FAKEBIN/vmrun" -H "unix://$NOSOCK" load -i "$WORK/bb.tar" 2>&1)
AUTO_PID=$(printf '%s\n' "$out" | sed -nE 's/.*started the vmrun daemon \(pid ([0-9]+),.*/\1/p')
expect_eq "load starts the daemon" "$(printf '%s\n' "$out" | sed -E 's/pid [0-9]+/pid N/')" \
  "vmrun: started the vmrun daemon (pid N, log $WORK/log/vmrund.log)
Loaded image: busybox:latest"
expect_eq "run on the started daemon" "$("$VMRUN" -H "unix://$NOSOCK" run --rm busybox echo auto)" "auto"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all checks passed"
