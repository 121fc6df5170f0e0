# The Python reference of shmkit bench: the same workloads over
# multiprocessing.Queue and multiprocessing.Pipe. Run by the Go runner as
# `python3 -c <this> <spec json>`; prints one JSON object per cell.
#
# Messages are checked as in Go, with zlib's CRC-32 instead of CRC-32C:
# [0:8] sequence (bit 63: end marker), [8:12] CRC of [16:], [12:16] a
# check of the sequence; the sender varies the last byte per message and
# takes the CRC from a 256-entry table. Below 16 bytes: the sequence, then
# byte i = fold(sequence) + i.
import json
import os
import signal
import struct
import sys
import time
import zlib
import resource
import multiprocessing as mp

MARK = 1 << 63
MIX = 0x5EED5EED
PATTERN = bytes((i * 31 + 7) & 0xFF for i in range(256))


def fold(seq):
    seq ^= seq >> 32
    seq ^= seq >> 16
    return (seq ^ (seq >> 8)) & 0xFF


def cpu_ns():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return int((r.ru_utime + r.ru_stime) * 1e9)


class Gen:
    def __init__(self, size):
        self.size = size
        self.buf = bytearray(size)
        self.n = 0
        self.tab = None
        if size > 16:
            body = (PATTERN * ((size - 16) // 256 + 1))[: size - 16]
            self.buf[16:] = body
            prefix = zlib.crc32(memoryview(self.buf)[16 : size - 1])
            self.tab = [zlib.crc32(bytes([v]), prefix) for v in range(256)]

    def next(self):
        seq = self.n
        self.n += 1
        return self.write(seq)

    def marker(self, phase):
        return self.write(MARK | phase)

    def write(self, seq):
        b, size = self.buf, self.size
        if size < 16:
            struct.pack_into("<Q", b, 0, seq)
            for i in range(8, size):
                b[i] = (fold(seq) + i) & 0xFF
            return b
        crc = 0
        if size > 16:
            v = (seq ^ (seq >> 8)) & 0xFF
            b[size - 1] = v
            crc = self.tab[v]
        struct.pack_into("<QII", b, 0, seq, crc, (seq & 0xFFFFFFFF) ^ (seq >> 32) ^ MIX)
        return b


def check(m, size, want):
    """Verifies message m; returns its sequence. want: the counter due."""
    if len(m) != size:
        raise ValueError("message of %d bytes, want %d" % (len(m), size))
    (seq,) = struct.unpack_from("<Q", m, 0)
    if size < 16:
        for i in range(8, size):
            if m[i] != (fold(seq) + i) & 0xFF:
                raise ValueError("message %#x corrupt at byte %d" % (seq, i))
    else:
        _, crc, chk = struct.unpack_from("<QII", m, 0)
        if chk != (seq & 0xFFFFFFFF) ^ (seq >> 32) ^ MIX:
            raise ValueError("message header corrupt")
        if zlib.crc32(memoryview(m)[16:]) != crc:
            raise ValueError("message %#x checksum mismatch (corrupt payload)" % seq)
    if not seq & MARK and seq != want:
        raise ValueError("message %d where %d was due (lost, repeated or reordered)" % (seq, want))
    return seq


def depth(size):
    return max(4, min(1024, (1 << 20) // size))


def endpoints(kind, rtt, size, ctx):
    """Returns (parent (send, recv), child (send, recv), closers)."""
    if kind == "py-mp-queue":
        fwd = ctx.Queue(maxsize=depth(size))
        back = ctx.Queue(maxsize=depth(size)) if rtt else None
        psend = lambda b: fwd.put(bytes(b))  # put pickles later: pass a copy
        csend = (lambda b: back.put(bytes(b))) if rtt else None
        precv = back.get if rtt else None
        return (psend, precv), (csend, fwd.get), [q for q in (fwd, back) if q]
    if rtt:
        a, b = ctx.Pipe(duplex=True)
        pa, pb = a, b
    else:
        r, w = ctx.Pipe(duplex=False)
        pa, pb = w, r
    pbuf = bytearray(size)
    cbuf = bytearray(size)

    def recv_into(conn, buf):
        def f():
            n = conn.recv_bytes_into(buf)
            return memoryview(buf)[:n]
        return f

    parent = (pa.send_bytes, recv_into(pa, pbuf) if rtt else None)
    child = (pb.send_bytes if rtt else None, recv_into(pb, cbuf))
    return parent, child, [pa, pb]


def set_deathsig():
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def peer(size, rtt, ctl, send, recv, cpu):
    set_deathsig()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        ctl.send(("ready",))
        want = 0
        cpu0 = cpu_ns()
        phase = 0
        while True:
            msgs = 0
            while True:
                m = recv()
                seq = check(m, size, want)
                if rtt:
                    send(m)
                if seq & MARK:
                    if seq & 0xFFFFFFFFFF != phase:
                        raise ValueError("end marker of phase %d in phase %d" % (seq & 0xFFFFFFFFFF, phase))
                    break
                want += 1
                msgs += 1
            cpu1 = cpu_ns()
            ctl.send(("phase", msgs, cpu1 - cpu0))
            cpu0 = cpu1
            phase += 1
            if ctl.recv() != "next":
                return
    except Exception as e:
        ctl.send(("error", "%s: %s" % (type(e).__name__, e)))
        sys.exit(1)


def expect(ctl, proc, typ):
    while not ctl.poll(0.2):
        if not proc.is_alive():
            raise RuntimeError("peer process exited (%s)" % proc.exitcode)
    m = ctl.recv()
    if m[0] == "error":
        raise RuntimeError("peer: " + m[1])
    if m[0] != typ:
        raise RuntimeError("control message %r where %r was due" % (m[0], typ))
    return m


def pct(sorted_lat, q):
    n = len(sorted_lat)
    i = min(n - 1, max(0, -(-n * q // 100) - 1))
    return sorted_lat[int(i)]


def run_cell(ctx, spec, cell):
    kind, mode, size = cell["transport"], cell["mode"], cell["size"]
    rtt = mode == "rtt"
    pin = spec.get("pin")
    (psend, precv), (csend, crecv), closers = endpoints(kind, rtt, size, ctx)
    ctl, cctl = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=peer, args=(size, rtt, cctl, csend, crecv, pin[1] if pin else None), daemon=True)
    proc.start()
    reps = []
    try:
        expect(ctl, proc, "ready")
        gen = Gen(size)
        want = 0
        nreps = spec["reps"]
        for phase in range(nreps + 1):
            if phase == 0:
                dur, limit = spec["warmup"], max(1, spec["messages"] // 10)
            else:
                dur, limit = spec["duration"], spec["messages"]
            if spec["messages"] <= 0 and dur > 0:
                limit = 0
            cpu0 = cpu_ns()
            t0 = time.perf_counter_ns()
            deadline = t0 + int(dur * 1e9)
            n = 0
            lat = []
            while (limit and n < limit) or (not limit and time.perf_counter_ns() < deadline):
                f = gen.next()
                if rtt:
                    s = time.perf_counter_ns()
                    psend(f)
                    m = precv()
                    lat.append(time.perf_counter_ns() - s)
                    check(m, size, want)
                    want += 1
                else:
                    psend(f)
                n += 1
            psend(gen.marker(phase))
            if rtt:
                seq = check(precv(), size, want)
                if not seq & MARK:
                    raise RuntimeError("a message came back where the end marker was due")
            rep = expect(ctl, proc, "phase")
            elapsed = time.perf_counter_ns() - t0
            cpu = cpu_ns() - cpu0 + rep[2]
            if rep[1] != n:
                raise RuntimeError("%d messages sent, %d received" % (n, rep[1]))
            ctl.send("next" if phase < nreps else "quit")
            if phase == 0:
                continue
            r = {"elapsed_ns": elapsed, "msgs": n, "cpu_ns": cpu}
            if rtt and lat:
                lat.sort()
                r.update(p50_ns=pct(lat, 50), p90_ns=pct(lat, 90), p99_ns=pct(lat, 99), p999_ns=pct(lat, 99.9), max_ns=lat[-1])
            reps.append(r)
        proc.join(5)
        if proc.exitcode != 0:
            raise RuntimeError("peer process exited (%s)" % proc.exitcode)
        return {"transport": kind, "mode": mode, "size": size, "reps": reps}
    except Exception as e:
        return {"transport": kind, "mode": mode, "size": size, "error": "%s" % e}
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
        for c in closers + [ctl, cctl]:
            try:
                c.close()
            except Exception:
                pass
        for c in closers:
            if hasattr(c, "join_thread"):
                c.cancel_join_thread()


def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the Go runner decides
    spec = json.loads(sys.argv[1])
    pin = spec.get("pin")
    if pin:
        os.sched_setaffinity(0, {pin[0]})
    ctx = mp.get_context("fork")
    for cell in spec["cells"]:
        print(json.dumps(run_cell(ctx, spec, cell)), flush=True)


if __name__ == "__main__":
    main()
