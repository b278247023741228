#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""ivshmem server for the NTB test device (scripts/testbed/ntb_hw_ivshmem).

QEMU's ivshmem-doorbell devices connect to this server over a UNIX socket
and get, per the protocol in QEMU's docs/specs/ivshmem-spec.txt, an id, a
shared memory and eventfds to interrupt each other. Debian ships no
ivshmem-server, hence this one.

The two ports of one NTB link are the first two clients: ids 0 and 1 (a
client that disconnects frees its id for the next one; a third client is
refused). The shared memory starts with the window layout the driver
reads (struct ntb_ivshmem_hdr), followed by one 4 KiB block per port id
(struct ntb_ivshmem_port_regs). When a client disconnects, the server
zeroes its block, which takes its link down, and interrupts the survivor
on the link vector so that it notices at once.

It runs in the foreground until SIGTERM or SIGINT, writes "ready" to
--ready-file once it listens, and removes its socket when it stops.
"""

import argparse
import mmap
import os
import select
import signal
import socket
import struct
import sys

MAGIC = 0x4D485349  # "ISHM", NTB_IVSHMEM_MAGIC
VERSION = 1
BLOCK = 4096
VEC_LINK = 0
MAX_PEERS = 2


def size_arg(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = s.strip().upper()
    if s and s[-1] in mult:
        return int(s[:-1], 0) * mult[s[-1]]
    return int(s, 0)


class Client:
    def __init__(self, sock, cid, vectors):
        self.sock = sock
        self.id = cid
        self.fds = [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
                    for _ in range(vectors)]

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.sock.close()


class Server:
    def __init__(self, args):
        self.args = args
        self.vectors = args.vectors
        self.clients = {}
        size = max(args.shm_size, (MAX_PEERS + 1) * BLOCK)
        if size & (size - 1):
            sys.exit("ivshmem-server: --shm-size must be a power of two")
        self.shm_fd = os.memfd_create("ntb-ivshmem", os.MFD_CLOEXEC)
        os.ftruncate(self.shm_fd, size)
        self.shm = mmap.mmap(self.shm_fd, size)
        struct.pack_into("<IIIIQQ", self.shm, 0, MAGIC, VERSION,
                         args.mw_count, 0, args.region_base,
                         args.region_size)
        if os.path.exists(args.socket):
            os.unlink(args.socket)
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(args.socket)
        self.lsock.listen(4)

    def log(self, msg):
        print(f"ivshmem-server: {msg}", file=sys.stderr, flush=True)

    @staticmethod
    def send(sock, val, fd=None):
        data = struct.pack("<q", val)
        if fd is None:
            sock.sendall(data)
        else:
            socket.send_fds(sock, [data], [fd])

    def accept(self):
        sock, _ = self.lsock.accept()
        free = [i for i in range(MAX_PEERS) if i not in self.clients]
        if not free:
            self.log("a third client: refused")
            sock.close()
            return
        new = Client(sock, free[0], self.vectors)
        try:
            self.send(sock, 0)              # protocol version
            self.send(sock, new.id)         # its id
            self.send(sock, -1, self.shm_fd)
            for other in self.clients.values():
                for fd in other.fds:
                    self.send(sock, other.id, fd)
            for fd in new.fds:
                self.send(sock, new.id, fd)
        except OSError as e:
            self.log(f"client {new.id}: setup failed: {e}")
            new.close()
            return
        for other in list(self.clients.values()):
            try:
                for fd in new.fds:
                    self.send(other.sock, new.id, fd)
            except OSError:
                self.drop(other)
        self.clients[new.id] = new
        self.log(f"client {new.id} connected")

    def drop(self, gone):
        if self.clients.get(gone.id) is not gone:
            return
        del self.clients[gone.id]
        # The port is gone with its QEMU: clear its status and doorbells
        # (struct ntb_ivshmem_port_regs: status, generation, db).
        off = (gone.id + 1) * BLOCK
        self.shm[off:off + 4] = bytes(4)
        self.shm[off + 8:off + 16] = bytes(8)
        gone.close()
        self.log(f"client {gone.id} disconnected")
        for other in list(self.clients.values()):
            try:
                self.send(other.sock, gone.id)
                os.eventfd_write(other.fds[VEC_LINK], 1)
            except OSError:
                self.drop(other)

    def run(self):
        if self.args.ready_file:
            with open(self.args.ready_file, "w") as f:
                f.write("ready\n")
        while True:
            socks = [self.lsock] + [c.sock for c in self.clients.values()]
            ready, _, _ = select.select(socks, [], [])
            for s in ready:
                if s is self.lsock:
                    self.accept()
                    continue
                client = next((c for c in self.clients.values()
                               if c.sock is s), None)
                if client is None:
                    continue
                try:
                    data = s.recv(64)
                except OSError:
                    data = b""
                # Clients never send; readable means closed.
                if not data:
                    self.drop(client)

    def close(self):
        for c in list(self.clients.values()):
            c.close()
        self.lsock.close()
        try:
            os.unlink(self.args.socket)
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--socket", required=True, help="UNIX socket path")
    p.add_argument("--vectors", type=int, default=2)
    p.add_argument("--shm-size", type=size_arg, default=size_arg("64K"))
    p.add_argument("--mw-count", type=int, default=2)
    p.add_argument("--region-base", type=size_arg, required=True,
                   help="guest physical base of the memmap= reserved range")
    p.add_argument("--region-size", type=size_arg, required=True,
                   help="bytes of the range per port id")
    p.add_argument("--ready-file")
    args = p.parse_args()

    server = Server(args)

    def stop(signum, frame):
        server.close()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.run()


if __name__ == "__main__":
    main()
