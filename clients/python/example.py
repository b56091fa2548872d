#!/usr/bin/python3
"""A short tour of ShoalClient against the server at SHOAL_ADDR (default 127.0.0.1:50051).

    clients/python/generate.sh build/python
    PYTHONPATH=build/python:clients/python python3 clients/python/example.py
"""

from itertools import islice

from shoal_client import ShoalClient


def main():
    with ShoalClient() as shoal:
        shoal.delete_prefix("example/")  # start from a clean slate on every run

        first = shoal.put("example/greeting", "hello")
        print(f"put example/greeting at revision {first.revision}")

        # Compare-and-swap: applies only if nobody wrote the key since.
        swap = shoal.put("example/greeting", "hello again", if_revision=first.revision)
        print(f"conditional put applied: {swap.applied}")

        entry = shoal.get("example/greeting")
        print(f"get: {entry.value.decode()!r}, version {entry.version}")

        for fruit, colour in [("apple", "red"), ("banana", "yellow"), ("cherry", "dark red")]:
            shoal.put(f"example/fruit/{fruit}", colour)
        shoal.delete("example/fruit/banana")
        # page_size=1 only to show that range follows the pages for us.
        for e in shoal.range("example/fruit/", page_size=1):
            print(f"range: {e.key.decode()} = {e.value.decode()}")

        # A watch from a past revision replays the history, then follows live changes: here, the
        # six writes above, from the first one on.
        for ev in islice(shoal.watch("example/", from_revision=first.revision, timeout=10), 6):
            print(f"watch: revision {ev.revision} {ev.type.value} {ev.key.decode()}")


if __name__ == "__main__":
    main()
