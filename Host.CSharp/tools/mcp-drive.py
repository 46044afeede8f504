#!/usr/bin/env python3
"""Manual check: feed raw JSON-RPC lines to the molecule-mcp binary and label every stdout line.

usage: mcp-drive.py BINARY [--hold SECS] [--gap SECS] < lines
Each stdin line is sent as-is (garbage included); a line `#sleep SECS` pauses instead. After the last line the script waits --hold seconds,
closes the server's stdin and reports how long the process took to exit and its exit code.
stdout lines are printed as `JSON <line>` or `NOT-JSON <line>`; stderr is printed as `ERR <line>`.
"""
import json, subprocess, sys, threading, time

def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__); sys.exit(2)
    binary, hold, gap = args[0], 1.0, 0.05
    if "--hold" in args: hold = float(args[args.index("--hold") + 1])
    if "--gap" in args: gap = float(args[args.index("--gap") + 1])
    p = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    bad = [0]
    def pump(stream, label):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if label == "OUT":
                try:
                    json.loads(line); tag = "JSON"
                except ValueError:
                    tag = "NOT-JSON"; bad[0] += 1
                print(f"{tag} {line}", flush=True)
            else:
                print(f"ERR {line}", flush=True)
    t1 = threading.Thread(target=pump, args=(p.stdout, "OUT")); t1.start()
    t2 = threading.Thread(target=pump, args=(p.stderr, "ERR")); t2.start()
    for line in sys.stdin:
        if line.startswith("#sleep "):
            time.sleep(float(line.split()[1])); continue
        p.stdin.write(line.encode()); p.stdin.flush(); time.sleep(gap)
    time.sleep(hold)
    closed = time.monotonic()
    p.stdin.close()
    rc = p.wait()
    elapsed = (time.monotonic() - closed) * 1000
    t1.join(); t2.join()
    print(f"EXIT code={rc} after_eof_ms={elapsed:.0f} non_json_stdout_lines={bad[0]}")

main()
