#!/usr/bin/env python3
"""Example login events for the README's quick start (standard library only).

    python3 examples/logins.py csv > examples/logins.csv
        Writes the committed sample: 1000 logins from a fixed seed, so the
        file is the same byte for byte on every run.

    python3 examples/logins.py stream | psql -h 127.0.0.1 -p 5433 -U freshet freshet
        Prints one INSERT INTO logins_raw per login, RATE a second, until
        interrupted (or COUNT logins). psql runs each as it arrives. The server
        numbers them (the largest login_id so far plus one), so a second run
        continues where the first stopped; event_time is the server's clock.

Users and locations follow the distribution login_risk.onnx was trained on
(tools/fixtures/generate.py): user ids 1..99999, eight countries, and high
user ids (new accounts) and some countries are riskier.
"""

import argparse
import datetime
import random
import sys
import time

LOCATIONS = ["US", "DE", "FR", "BR", "IN", "CN", "GB", "JP"]
WEIGHTS = [0.3, 0.12, 0.1, 0.1, 0.12, 0.1, 0.08, 0.08]
SEED = 17
ROWS = 1000
START = datetime.datetime(2026, 1, 5, 8, 0, 0)


def login(rng):
    return rng.randint(1, 99_999), rng.choices(LOCATIONS, WEIGHTS)[0]


def write_csv(out):
    rng = random.Random(SEED)
    t = START
    out.write("login_id,user_id,location,event_time\n")
    for login_id in range(1, ROWS + 1):
        user_id, location = login(rng)
        t += datetime.timedelta(seconds=rng.randint(1, 120))
        out.write(f"{login_id},{user_id},{location},{t:%Y-%m-%d %H:%M:%S}\n")


def stream(rate, count):
    rng = random.Random()
    sent = 0
    while count is None or sent < count:
        user_id, location = login(rng)
        print(
            "INSERT INTO logins_raw SELECT coalesce(max(login_id), 0) + 1, "
            f"{user_id}, '{location}', now() FROM logins_raw;",
            flush=True,
        )
        sent += 1
        if rate > 0:
            time.sleep(1.0 / rate)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("csv", help="write the sample CSV to stdout")
    st = sub.add_parser("stream", help="print INSERT statements for psql")
    st.add_argument("--rate", type=float, default=2.0,
                    help="logins per second (0: as fast as possible); default 2")
    st.add_argument("--count", type=int, default=None,
                    help="stop after this many logins; default: never")
    args = ap.parse_args()
    try:
        if args.command == "csv":
            write_csv(sys.stdout)
        else:
            stream(args.rate, args.count)
    except (KeyboardInterrupt, BrokenPipeError):
        # Ctrl-C stops the pipeline; psql exiting first closes the pipe.
        sys.stderr.close()
        sys.exit(0)


if __name__ == "__main__":
    main()
