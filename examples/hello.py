#!/usr/bin/env python3
"""Load hello.bpf.o with the library, print every exec for a while, then the
per-uid counts from the hash map.  Run as root: python3 hello.py [SECONDS]"""
import struct
import sys
import time

import pybpf

EVENT = struct.Struct("<II16s128s")      # struct event: pid, uid, comm, filename


def cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def on_event(data: memoryview) -> None:
    pid, uid, comm, filename = EVENT.unpack_from(data)
    print(f"exec pid={pid} uid={uid} comm={cstr(comm)} file={cstr(filename)}", flush=True)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    with pybpf.BPFObject.open("hello.bpf.o") as obj:
        obj.load()
        obj.attach()
        with pybpf.RingBuffer(obj.maps["events"], on_event) as rb:
            print("tracing execs; Ctrl-C to stop", file=sys.stderr, flush=True)
            deadline = time.monotonic() + seconds
            try:
                while time.monotonic() < deadline:
                    rb.poll(timeout_ms=100)
            except KeyboardInterrupt:
                pass
        for uid, count in sorted(obj.maps["execs_by_uid"].items()):
            print(f"uid {uid}: {count} exec(s)")


if __name__ == "__main__":
    main()
