/*
 * The command init of vmrun's VM tests: PID 1 of a test guest. It mounts /proc, /sys and
 * /dev, listens on vsock port 1024 and serves one command per connection (a line), each in
 * its own child, so many connections run at once:
 *
 *   echo             echo everything back until the host closes its side
 *   nproc            the number of online CPUs
 *   sh CMD           run CMD with /bin/busybox sh; its output, then "exit=N"
 *   hello PORT       connect to the host (CID 2) on PORT, send "hello from the guest\n",
 *                    read the same line back, answer "ok" (or "fail: why")
 *   sink             read until EOF, answer the byte count and a FNV-1a 64 checksum
 *   source N         send N bytes of the test pattern, then close
 *   reboot|poweroff|halt   answer "bye", wait for the host to close, sync and end the VM
 *                    that way
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <linux/vm_sockets.h>
#include <unistd.h>

static void say(int fd, const char *s) { (void)!write(fd, s, strlen(s)); }

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; n -= (size_t)w;
    }
    return 0;
}

/* The byte at offset i of the test pattern (the host computes the same). */
static inline unsigned char pattern(uint64_t i) { return (unsigned char)((i * 31 + (i >> 13)) & 0xff); }

static void cmd_sh(int c, const char *cmd) {
    pid_t pid = fork();
    if (pid == 0) {
        dup2(c, 1); dup2(c, 2);
        execl("/bin/busybox", "sh", "-c", cmd, (char *)0);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    char buf[64];
    snprintf(buf, sizeof buf, "\nexit=%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    say(c, buf);
}

static void cmd_hello(int c, unsigned port) {
    int h = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_port = port, .svm_cid = VMADDR_CID_HOST };
    if (h < 0 || connect(h, (struct sockaddr *)&a, sizeof a)) { say(c, "fail: connect\n"); return; }
    const char *msg = "hello from the guest\n";
    char buf[64] = {0};
    size_t got = 0;
    write_all(h, msg, strlen(msg));
    while (got < strlen(msg)) {
        ssize_t n = read(h, buf + got, strlen(msg) - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    say(c, got == strlen(msg) && memcmp(buf, msg, got) == 0 ? "ok\n" : "fail: echo\n");
    close(h);
}

static void serve(int c) {
    char line[512];
    size_t n = 0;
    while (n < sizeof line - 1) {
        ssize_t r = read(c, line + n, 1);
        if (r <= 0) return;
        if (line[n] == '\n') break;
        n++;
    }
    line[n] = 0;
    static char buf[1 << 16];
    if (strcmp(line, "echo") == 0) {
        ssize_t r;
        while ((r = read(c, buf, sizeof buf)) > 0)
            if (write_all(c, buf, (size_t)r)) break;
    } else if (strcmp(line, "nproc") == 0) {
        char out[32];
        snprintf(out, sizeof out, "%ld\n", sysconf(_SC_NPROCESSORS_ONLN));
        say(c, out);
    } else if (strncmp(line, "sh ", 3) == 0) {
        cmd_sh(c, line + 3);
    } else if (strncmp(line, "hello ", 6) == 0) {
        cmd_hello(c, (unsigned)strtoul(line + 6, 0, 10));
    } else if (strcmp(line, "sink") == 0) {
        uint64_t total = 0, h = 0xcbf29ce484222325ULL; /* FNV-1a 64 offset basis */
        ssize_t r;
        while ((r = read(c, buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < r; i++) { h ^= (unsigned char)buf[i]; h *= 0x100000001b3ULL; }
            total += (uint64_t)r;
        }
        if (r < 0) fprintf(stderr, "init: sink: read failed after %llu bytes: %s\n", (unsigned long long)total, strerror(errno));
        char out[64];
        snprintf(out, sizeof out, "%llu %016llx\n", (unsigned long long)total, (unsigned long long)h);
        say(c, out);
    } else if (strncmp(line, "source ", 7) == 0) {
        uint64_t total = strtoull(line + 7, 0, 10), off = 0;
        while (off < total) {
            size_t k = total - off < sizeof buf ? (size_t)(total - off) : sizeof buf;
            for (size_t i = 0; i < k; i++) buf[i] = (char)pattern(off + i);
            if (write_all(c, buf, k)) break;
            off += k;
        }
    } else if (strcmp(line, "reboot") == 0 || strcmp(line, "poweroff") == 0 || strcmp(line, "halt") == 0) {
        /* Deliver "bye" before the VM ends: half-close, then wait (at most 5 s) for the host
         * to close its side, which it does once it has read the line. */
        say(c, "bye\n");
        shutdown(c, SHUT_WR);
        struct timeval tv = { .tv_sec = 5 };
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char drain[64];
        while (read(c, drain, sizeof drain) > 0) {}
        sync();
        reboot(line[0] == 'r' ? RB_AUTOBOOT : line[0] == 'p' ? RB_POWER_OFF : RB_HALT_SYSTEM);
    } else {
        say(c, "unknown command\n");
    }
}

int main(void) {
    mkdir("/proc", 0755); mkdir("/sys", 0755); mkdir("/dev", 0755); mkdir("/tmp", 01777); mkdir("/mnt", 0755);
    mount("proc", "/proc", "proc", 0, 0);
    mount("sysfs", "/sys", "sysfs", 0, 0);
    mount("devtmpfs", "/dev", "devtmpfs", 0, 0);
    mount("tmpfs", "/tmp", "tmpfs", 0, 0);
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    signal(SIGPIPE, SIG_IGN);
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_port = 1024, .svm_cid = VMADDR_CID_ANY };
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 128)) { perror("vsock"); reboot(RB_AUTOBOOT); }
    printf("init: listening on vsock port 1024\n");
    fflush(stdout);
    for (;;) {
        int c = accept(s, 0, 0);
        if (c < 0) continue;
        pid_t pid = fork();
        if (pid == 0) { close(s); serve(c); close(c); _exit(0); }
        close(c);
    }
}
