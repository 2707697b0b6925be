#!/usr/bin/env bash
# Compatibility test of the vmrun CLI: runs the same commands through vmrun
# and through the real docker CLI against ONE private daemon, and compares
# output and exit statuses; then checks daemon auto-start.
#
# Usage: host/cli/tests/compat.sh [--daemon vmrund|dockerd]   (default vmrund)
#
#   vmrund   our daemon (crate vmrun-daemon) with vmrun-shim; auto-start is
#            checked with the real vmrund found next to vmrun.
#   dockerd  Debian's docker.io as the reference engine; auto-start is
#            checked with a vmrund stand-in script that runs dockerd.
#
# Environment: VMRUN_BIN_DIR = a folder with vmrun (and vmrund, vmrun-shim
# for --daemon vmrund); without it the binaries are built with cargo into
# CARGO_TARGET_DIR (default /tmp/target-cli).
#
# Contract for tests/run.sh: exit 0 = passed, or skipped with a line
# "skipping: REASON" on stderr (not root, a tool missing); exit 1 = at least
# one check failed (each failure is printed as "FAIL: NAME" with a diff).
set -u

DAEMON=vmrund
while [ $# -gt 0 ]; do
  case "$1" in
    --daemon) DAEMON=${2:-}; shift 2 ;;
    --daemon=*) DAEMON=${1#--daemon=}; shift ;;
    *) echo "usage: $0 [--daemon vmrund|dockerd]" >&2; exit 2 ;;
  esac
done
case "$DAEMON" in vmrund|dockerd) ;; *) echo "unknown daemon: $DAEMON" >&2; exit 2 ;; esac

skip() {
  echo "skipping: $*" >&2
  [ -n "${VMRUN_TEST_SKIP_LOG:-}" ] && printf "compat.sh --daemon %s\t%s\n" "$DAEMON" "$*" >>"$VMRUN_TEST_SKIP_LOG"
  exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root to run $DAEMON"
command -v docker >/dev/null || skip "docker CLI not installed (apt-get install docker.io)"
command -v script >/dev/null || skip "script not installed (apt-get install bsdutils)"
if [ "$DAEMON" = dockerd ]; then
  command -v dockerd >/dev/null || skip "dockerd not installed (apt-get install docker.io)"
fi
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || skip "busybox not installed (apt-get install busybox-static)"
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' || skip "$BUSYBOX is not static"

REPO=$(cd "$(dirname "$0")/../../.." && pwd)
if [ -z "${VMRUN_BIN_DIR:-}" ]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-cli}
  packages=(-p vmrun)
  [ "$DAEMON" = vmrund ] && packages+=(-p vmrun-daemon -p vmrun-shim)
  (cd "$REPO" && cargo build -q "${packages[@]}") || { echo "FAIL: build" >&2; exit 1; }
  VMRUN_BIN_DIR=$CARGO_TARGET_DIR/debug
fi
VMRUN=$VMRUN_BIN_DIR/vmrun
[ -x "$VMRUN" ] || { echo "FAIL: no vmrun in $VMRUN_BIN_DIR" >&2; exit 1; }
if [ "$DAEMON" = vmrund ]; then
  for b in vmrund vmrun-shim; do
    [ -x "$VMRUN_BIN_DIR/$b" ] || { echo "FAIL: no $b in $VMRUN_BIN_DIR" >&2; exit 1; }
  done
fi

# Short: the daemon puts Unix sockets under its exec root (108-byte limit).
WORK=$(mktemp -d /tmp/vc.XXXXXX)
SOCK=$WORK/d.sock
H="-H unix://$SOCK"
DAEMON_PID=
AUTO_PID=
cleanup() {
  for p in $DAEMON_PID $AUTO_PID; do kill "$p" 2>/dev/null; done
  [ -f "$WORK/ax/fake.pid" ] && kill "$(cat "$WORK/ax/fake.pid")" 2>/dev/null
  for p in $DAEMON_PID $AUTO_PID; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  # Shims of containers still running outlive the daemon: stop them too.
  pgrep -f "vmrun-shim $WORK/" | while read -r p; do kill -9 "$p" 2>/dev/null; done
  sleep 0.5
  grep -o " $WORK[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
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
# same_output NAME ARGS...: vmrun and docker print the same and exit the same
# (retried, since "N seconds ago" and CPU figures can change between calls).
same_output() {
  local name=$1; shift
  local a b
  for _ in 1 2 3; do
    a=$("$VMRUN" $H "$@" 2>&1; echo "exit $?"); b=$(docker $H "$@" 2>&1; echo "exit $?")
    [ "$a" = "$b" ] && { pass "$name"; return; }
    sleep 0.5
  done
  fail "$name"; diff <(printf '%s\n' "$b") <(printf '%s\n' "$a") >&2
}
# same_output_any_container NAME ARGS...: as same_output, with container ids
# masked: dockerd names whichever user of an image its map yields first.
same_output_any_container() {
  local name=$1; shift
  local mask='s/container [0-9a-f]\{12\}/container ID/g'
  local a b
  a=$("$VMRUN" $H "$@" 2>&1 | sed "$mask"; echo "exit ${PIPESTATUS[0]}")
  b=$(docker $H "$@" 2>&1 | sed "$mask"; echo "exit ${PIPESTATUS[0]}")
  if [ "$a" = "$b" ]; then pass "$name"; else fail "$name"; diff <(printf '%s\n' "$b") <(printf '%s\n' "$a") >&2; fi
}
wait_for_socket() {
  for _ in $(seq 100); do docker -H "unix://$1" version >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# --- the daemon and the busybox image ---------------------------------------
if [ "$DAEMON" = dockerd ]; then
  dockerd --host "unix://$SOCK" --data-root "$WORK/data" --exec-root "$WORK/x" \
    --pidfile "$WORK/d.pid" --bridge none --iptables=false >"$WORK/d.log" 2>&1 &
  DAEMON_PID=$!
else
  "$VMRUN_BIN_DIR/vmrund" --host "unix://$SOCK" --data-root "$WORK/data" --exec-root "$WORK/x" \
    --shim "$VMRUN_BIN_DIR/vmrun-shim" >"$WORK/d.log" 2>&1 &
  DAEMON_PID=$!
fi
wait_for_socket "$SOCK" || { echo "FAIL: $DAEMON did not start; log:" >&2; cat "$WORK/d.log" >&2; exit 1; }
bash "$REPO/installer/make-busybox-image.sh" "$WORK/bb.tar" --format docker >/dev/null \
  || { echo "FAIL: make-busybox-image.sh" >&2; exit 1; }

V() { "$VMRUN" $H "$@"; }

expect_eq "load" "$(V load -i "$WORK/bb.tar" 2>&1)" "Loaded image: busybox:latest"
load_tty=$(script -qec "$VMRUN $H load -i $WORK/bb.tar" /dev/null </dev/null)
case "$load_tty" in
  *Uploading*Loaded\ image:\ busybox:latest*) pass "load draws a progress bar on a terminal" ;;
  *) fail "load draws a progress bar on a terminal"; printf '%s\n' "$load_tty" | cat -A >&2 ;;
esac
same_output "load -q" load -q -i "$WORK/bb.tar"
same_output "load of a missing file" load -i "$WORK/nope.tar"

# --- run: output and exit statuses ------------------------------------------
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
tty_out=$( (sleep 1; printf 'echo in-$((1+2))\nexit 4\n') | script -qec "stty cols 100 rows 30; $VMRUN $H run --rm -it busybox sh" /dev/null)
expect_eq "run -it exit status" "$?" "4"
case "$tty_out" in *in-3*) pass "run -it runs the shell" ;; *) fail "run -it runs the shell"; printf '%s\n' "$tty_out" >&2 ;; esac

# --- containers in several states, compared with docker ---------------------
V run -d --name web busybox sh -c 'while true; do sleep 1; done' >/dev/null
V create --name created1 busybox echo >/dev/null
V run --name exited1 busybox sh -c 'echo one; echo two; echo three >&2; exit 2' >/dev/null 2>&1
same_output "ps -a table" ps -a
same_output "ps table" ps
same_output "ps -q" ps -aq
same_output "ps --no-trunc" ps -a --no-trunc
same_output "ps custom table" ps -a --format 'table {{.Names}}\t{{.Status}}\t{{.Image}}'
same_output "ps json" ps -a --format json
same_output "images table" images
same_output "images -q" images -q
same_output "images json" images --format json
same_output "inspect container" inspect exited1
same_output "inspect image" inspect busybox
same_output "inspect template" inspect --format '{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}} {{json .Config.Env}}' exited1
same_output "inspect json" inspect --format json exited1 web
same_output "inspect missing" inspect nope
same_output "top" top web
same_output "logs" logs exited1
same_output "logs --tail" logs --tail 1 exited1
same_output "logs missing" logs nope
same_output "stats template" stats --no-stream --format '{{.Container}} {{.Name}} {{.PIDs}}' web
same_output "stats missing" stats --no-stream web nope
expect_eq "logs -f ends with the container" \
  "$(V run -d busybox sh -c 'echo a; sleep 1; echo b' | xargs "$VMRUN" $H logs -f)" "a
b"
expect_eq "exec" "$(V exec web echo in-exec)" "in-exec"
V exec web sh -c 'exit 5'; expect_eq "exec exit status" "$?" "5"
expect_eq "exec -i" "$(echo via-exec | V exec -i web cat)" "via-exec"
same_output "exec in a missing container" exec nope true
same_output "start missing" start nope
same_output "rm -f missing" rm -f nope
same_output "tag with a bad reference" tag busybox Bad:x
expect_eq "tag" "$(V tag busybox bb:v1; echo $?)" "0"
same_output "images after tag" images
expect_eq "rmi" "$(V rmi bb:v1)" "Untagged: bb:v1"
same_output_any_container "rmi of an image a container uses" rmi busybox
same_output "system df" system df
same_output "system df json" system df --format json
same_output "system df -v" system df -v
same_output "image prune with nothing dangling" image prune -f
same_output "image ls" image ls
same_output "history" history busybox
same_output "history --no-trunc" history --no-trunc busybox
same_output "history -q" history -q busybox
same_output "history --human=false" history --human=false busybox
same_output "history json" history --format json busybox
same_output "image history" image history busybox
same_output "image inspect" image inspect busybox
same_output "image inspect format" image inspect --format "{{.Id}} {{.Os}}" busybox
same_output "image inspect missing" image inspect nope
same_output "inspect --type image missing" inspect --type image busybox nope
same_output "inspect --type container missing" inspect --type container nope
same_output "history missing" history nope
same_output "import of a missing file" import "$WORK/nope.tar"
expect_eq "wait" "$(V wait exited1)" "2"
expect_eq "stop prints names" "$(V stop -t 1 web)" "web"
expect_eq "start prints names" "$(V start web)" "web"
expect_eq "restart prints names" "$(V restart -t 1 web)" "web"
expect_eq "kill prints names" "$(V kill web)" "web"
V inspect nope >/dev/null 2>&1; expect_eq "inspect missing is 1" "$?" "1"
expect_eq "rm -f" "$(V rm -f web created1 exited1 | tr '\n' ' ')" "web created1 exited1 "

# --- networks and volumes ---------------------------------------------------
same_output "network ls" network ls
same_output "network ls json" network ls --format json
V network create net1 >/dev/null
same_output "network inspect" network inspect net1
same_output "network inspect missing" network inspect nope
expect_eq "network rm" "$(V network rm net1)" "net1"
V volume create vol1 >/dev/null
same_output "volume ls" volume ls
same_output "volume ls json" volume ls --format json
same_output "volume inspect" volume inspect vol1
same_output "volume inspect missing" volume inspect nope
expect_eq "named volume" "$(V run --rm -v vol1:/data busybox sh -c 'echo x >/data/f; cat /data/f')" "x"
expect_eq "volume rm" "$(V volume rm vol1)" "vol1"
expect_eq "version shows the server" "$(V version | grep -c '^ Engine:')" "1"
expect_eq "info shows the server" "$(V info | grep -c '^ Server Version:')" "1"

# --- no daemon: every command that needs one starts it, and says so ------------
NOSOCK=$WORK/auto.sock
AUTOBIN=$WORK/autobin
mkdir -p "$AUTOBIN"
cp "$VMRUN" "$AUTOBIN/vmrun"
if [ "$DAEMON" = vmrund ]; then
  cp "$VMRUN_BIN_DIR/vmrund" "$VMRUN_BIN_DIR/vmrun-shim" "$AUTOBIN/"
else
  cat >"$AUTOBIN/vmrund" <<'EOF'
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
  chmod +x "$AUTOBIN/vmrund"
fi
export VMRUN_DAEMON_LOG=$WORK/log/vmrund.log VMRUN_DATA_ROOT=$WORK/ar VMRUN_EXEC_ROOT=$WORK/ax
started_pid() { printf '%s\n' "$1" | sed -nE 's/.*started the vmrun daemon \(pid ([0-9]+),.*/\1/p'; }
stop_started() { kill "$1"; for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done; }
out=$("$AUTOBIN/vmrun" -H "unix://$NOSOCK" ps -q 2>&1)
AUTO_PID=$(started_pid "$out")
expect_eq "ps starts the daemon" "$(printf '%s\n' "$out" | sed -E 's/pid [0-9]+/pid N/')" \
  "vmrun: started the vmrun daemon (pid N, log $WORK/log/vmrund.log)"
[ -n "$AUTO_PID" ] && stop_started "$AUTO_PID"
out=$("$AUTOBIN/vmrun" -H "unix://$NOSOCK" load -i "$WORK/bb.tar" 2>&1)
AUTO_PID=$(started_pid "$out")
expect_eq "load starts the daemon" "$(printf '%s\n' "$out" | sed -E 's/pid [0-9]+/pid N/')" \
  "vmrun: started the vmrun daemon (pid N, log $WORK/log/vmrund.log)
Loaded image: busybox:latest"
if [ "$DAEMON" = vmrund ]; then
  expect_eq "the started daemon is the one next to vmrun" "$(readlink "/proc/$AUTO_PID/exe")" "$AUTOBIN/vmrund"
  # Stop it: `run` must start it again (the image stays in VMRUN_DATA_ROOT).
  kill "$AUTO_PID"; for _ in $(seq 50); do kill -0 "$AUTO_PID" 2>/dev/null || break; sleep 0.1; done
  out=$("$AUTOBIN/vmrun" -H "unix://$NOSOCK" run --rm busybox echo hello from vmrun 2>"$WORK/auto.err")
  AUTO_PID=$(started_pid "$(cat "$WORK/auto.err")")
  expect_eq "run starts the daemon" "$out" "hello from vmrun"
  expect_eq "the daemon gets the roots" "$(tr '\0' ' ' <"/proc/$AUTO_PID/cmdline")" \
    "$AUTOBIN/vmrund --host unix://$NOSOCK --data-root $WORK/ar --exec-root $WORK/ax "
  "$AUTOBIN/vmrun" -H "unix://$NOSOCK" run -d --name shimcheck busybox sleep 30 >/dev/null
  expect_eq "the daemon finds vmrun-shim next to itself" \
    "$(pgrep -af "vmrun-shim $WORK/ar/" | awk '{print $2}' | head -n1)" "$AUTOBIN/vmrun-shim"
  "$AUTOBIN/vmrun" -H "unix://$NOSOCK" rm -f shimcheck >/dev/null
else
  expect_eq "run on the started daemon" "$("$VMRUN" -H "unix://$NOSOCK" run --rm busybox echo auto)" "auto"
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all checks passed"
