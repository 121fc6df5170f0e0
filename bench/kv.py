# The kv reference of `shmkit bench --kv`: Python's multiprocessing
# Manager().dict() driven by C client processes, each doing d[k] = "xxx"
# then d[k] for DURATION seconds after a common start. Prints one JSON
# object: {"requests": SET and GET requests in all, "rate": their sum of
# per-client rates}. Usage: python3 -c "$SCRIPT" C DURATION
import json
import multiprocessing as mp
import sys
import time


def client(d, i, start, duration, out):
    key = "key:%d" % i
    start.wait()
    n = 0
    t0 = time.perf_counter()
    end = t0 + duration
    while time.perf_counter() < end:
        d[key] = "xxx"
        if d[key] != "xxx":
            raise SystemExit("wrong value")
        n += 2
    out.put((n, time.perf_counter() - t0))


def main():
    c, duration = int(sys.argv[1]), float(sys.argv[2])
    with mp.Manager() as m:
        d = m.dict()
        start = mp.Event()
        out = mp.Queue()
        procs = [mp.Process(target=client, args=(d, i, start, duration, out)) for i in range(c)]
        for p in procs:
            p.start()
        time.sleep(0.2 + 0.01 * c)  # let every client connect its proxy
        start.set()
        total, rate = 0, 0.0
        for _ in procs:
            n, el = out.get(timeout=duration + 60)
            total += n
            rate += n / el
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise SystemExit("client exited %d" % p.exitcode)
    print(json.dumps({"requests": total, "rate": rate}))


if __name__ == "__main__":
    main()
