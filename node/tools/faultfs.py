"""TEST/DRILL ONLY: an LD_PRELOAD shim that makes the disk fail a node process on demand
(the nemesis `disk-full` and `fsync-fail` scenarios, and tests).

Why a shim: it needs no privileges (a CI container has no CAP_SYS_ADMIN for a small tmpfs
or loop file system), it fails exactly the node's data directory and nothing else (its log,
sockets and the Python runtime go on), it gives the errno a real fault gives (ENOSPC for a
full disk, EIO for a failed fsync), and it is switched on and off while the process runs.
RLIMIT_FSIZE is the other unprivileged way (tests/node/test_storage_faults.py uses it), but
it limits every file the process writes, its log included, and its error is EFBIG.

The shim is C, compiled with the system's C compiler into a directory of the caller's at
drill time (`build`; None when there is no compiler: the caller skips). A process started
with ``LD_PRELOAD=<lib>`` and ``AFTERCHAIN_FAULTFS_DIR=<data dir>`` and
``AFTERCHAIN_FAULTFS_TRIGGER=<file>`` checks, at most every 20 ms, whether the trigger file
exists; while it does, its first word is the fault:

- ``enospc``: write, pwrite, writev, pwritev, fallocate and posix_fallocate on a file under
  the data directory fail with ENOSPC (nothing written);
- ``eio-fsync``: fsync, fdatasync and sync_file_range on such a file fail with EIO.

`arm(trigger, mode)` creates the trigger, `disarm(trigger)` deletes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["ENV_DIR", "ENV_TRIGGER", "MODES", "arm", "build", "disarm", "env"]

ENV_DIR = "AFTERCHAIN_FAULTFS_DIR"
ENV_TRIGGER = "AFTERCHAIN_FAULTFS_TRIGGER"
MODES = ("enospc", "eio-fsync")

_SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* 0: no fault, 1: ENOSPC on writes, 2: EIO on syncs (under the data directory) */
static volatile int mode;
static volatile long long next_check_ns;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int current_mode(void) {
    long long now = now_ns();
    if (now < next_check_ns) return mode;
    next_check_ns = now + 20000000LL;
    const char *trigger = getenv("AFTERCHAIN_FAULTFS_TRIGGER");
    int m = 0;
    if (trigger) {
        int fd = open(trigger, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            char buf[16] = {0};
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n > 0 && strncmp(buf, "enospc", 6) == 0) m = 1;
            else if (n > 0 && strncmp(buf, "eio-fsync", 9) == 0) m = 2;
        }
    }
    mode = m;
    return m;
}

static int in_data_dir(int fd) {
    const char *dir = getenv("AFTERCHAIN_FAULTFS_DIR");
    if (!dir || !*dir) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    size_t len = strlen(dir);
    return strncmp(path, dir, len) == 0 && (path[len] == '/' || path[len] == 0);
}

static int fails(int fd, int which) {
    return current_mode() == which && in_data_dir(fd);
}

#define REAL(name) static __typeof__(name) *real; if (!real) real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(write);
    if (fails(fd, 1)) { errno = ENOSPC; return -1; }
    return real(fd, buf, n);
}
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite);
    if (fails(fd, 1)) { errno = ENOSPC; return -1; }
    return real(fd, buf, n, off);
}
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite64);
    if (fails(fd, 1)) { errno = ENOSPC; return -1; }
    return real(fd, buf, n, off);
}
ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    REAL(writev);
    if (fails(fd, 1)) { errno = ENOSPC; return -1; }
    return real(fd, iov, cnt);
}
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    REAL(pwritev);
    if (fails(fd, 1)) { errno = ENOSPC; return -1; }
    return real(fd, iov, cnt, off);
}
int fallocate(int fd, int m, off_t off, off_t len) {
    REAL(fallocate);
    if (fails(fd, 1)) { errno = ENOSPC; return -1; }
    return real(fd, m, off, len);
}
int posix_fallocate(int fd, off_t off, off_t len) {
    REAL(posix_fallocate);
    if (fails(fd, 1)) return ENOSPC;
    return real(fd, off, len);
}
int fsync(int fd) {
    REAL(fsync);
    if (fails(fd, 2)) { errno = EIO; return -1; }
    return real(fd);
}
int fdatasync(int fd) {
    REAL(fdatasync);
    if (fails(fd, 2)) { errno = EIO; return -1; }
    return real(fd);
}
int sync_file_range(int fd, off_t off, off_t n, unsigned int flags) {
    REAL(sync_file_range);
    if (fails(fd, 2)) { errno = EIO; return -1; }
    return real(fd, off, n, flags);
}
"""


def build(out_dir: str | Path) -> Path | None:
    """Compile the shim into `out_dir` (created); its path, or None when no C compiler is
    installed or it does not compile here."""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src, lib = out / "faultfs.c", out / "libfaultfs.so"
    src.write_text(_SOURCE)
    r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src), "-ldl"],
                       capture_output=True, text=True, timeout=120, check=False)
    return lib if r.returncode == 0 and lib.exists() else None


def env(lib: str | Path, data_dir: str | Path, trigger: str | Path) -> dict[str, str]:
    """The environment variables of a process that runs under the shim."""
    return {"LD_PRELOAD": str(lib), ENV_DIR: str(Path(data_dir).resolve()), ENV_TRIGGER: str(trigger)}


def arm(trigger: str | Path, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode is one of {', '.join(MODES)}")
    Path(trigger).write_text(mode + "\n")


def disarm(trigger: str | Path) -> None:
    Path(trigger).unlink(missing_ok=True)
