#!/usr/bin/env python3
"""Plays the privileged CSI node plugin for tests: mounts /dev/fuse itself,
hands the descriptor to the broker over a Unix socket, and unmounts when
told to stop.

usage: fuse_fd_helper.py MOUNTPOINT SOCKET

As root: opens /dev/fuse, mounts it read-only at MOUNTPOINT (nosuid, nodev,
noexec, allow_other), listens on SOCKET, prints "ready" on stdout, accepts one
connection and sends the descriptor (SCM_RIGHTS), closes its own copy so the
broker's exit aborts the connection, then waits for SIGTERM or SIGINT and
detaches the mount.  Standard library only (ctypes for mount(2)).
"""
import ctypes
import ctypes.util
import os
import signal
import socket
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MNT_DETACH = 2
ACCEPT_TIMEOUT = 30.0

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                   use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                       ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def fail(what):
    err = ctypes.get_errno()
    sys.stderr.write("fuse_fd_helper: %s: %s\n" % (what, os.strerror(err)))
    sys.exit(1)


def mount_fuse(mountpoint):
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    opts = "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other" % fd
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY
    if libc.mount(b"credbroker", os.fsencode(mountpoint),
                  b"fuse.credbroker", flags, opts.encode()) != 0:
        fail("mount %s" % mountpoint)
    return fd


def unmount(mountpoint):
    if libc.umount2(os.fsencode(mountpoint), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (22,):  # EINVAL: no longer mounted
            fail("umount2 %s" % mountpoint)


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    mountpoint, path = sys.argv[1], sys.argv[2]
    # Blocked, then waited for: a signal that comes early is not lost.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)

    fd = mount_fuse(mountpoint)
    try:
        if os.path.exists(path):
            os.unlink(path)
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(path)
        lsock.listen(1)
        lsock.settimeout(ACCEPT_TIMEOUT)
        print("ready", flush=True)
        conn, _ = lsock.accept()
        with conn:
            socket.send_fds(conn, [b"fuse"], [fd])
        lsock.close()
        os.close(fd)
        fd = -1
        signal.sigwait(stop_signals)
    finally:
        if fd >= 0:
            os.close(fd)
        unmount(mountpoint)
        if os.path.exists(path):
            os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
