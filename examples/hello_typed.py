#!/usr/bin/env python3
"""The same through the generated skeleton (``make`` writes hello_skel.py with
``python -m pybpf gen skeleton hello.bpf.o``): records arrive as instances of
the ``event`` class, and the object travels inside the module.
Run as root: python3 hello_typed.py [SECONDS]"""
import sys
import time

from hello_skel import HelloSkeleton, event


def on_event(e: event) -> None:
    print(f"exec pid={e.pid} uid={e.uid} comm={e.comm.decode()} "
          f"file={e.filename.decode(errors='replace')}", flush=True)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    with HelloSkeleton.open() as skel:
        skel.load()
        skel.attach()
        with skel.ringbuf_events(on_event) as rb:
            print("tracing execs; Ctrl-C to stop", file=sys.stderr, flush=True)
            deadline = time.monotonic() + seconds
            try:
                while time.monotonic() < deadline:
                    rb.poll(timeout_ms=100)
            except KeyboardInterrupt:
                pass
        for uid, count in sorted(skel.maps.execs_by_uid.items()):
            print(f"uid {uid}: {count} exec(s)")


if __name__ == "__main__":
    main()
