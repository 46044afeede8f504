#!/usr/bin/env python3
"""Protocol smoke check of the built molecule-mcp binary (no platform needed: heartbeat and inbox disabled,
so no HTTP is made). Prints one PASS/FAIL line per check and exits 1 if any failed.

usage: protocol-check.py [BINARY]   (default: Host.CSharp/bin/Debug/net10.0/molecule-mcp)
"""
import json, os, subprocess, sys, time, tempfile

BINARY = sys.argv[1] if len(sys.argv) > 1 else "Host.CSharp/bin/Debug/net10.0/molecule-mcp"
ENV = dict(os.environ,
           WORKSPACE_ID="0f7c6a2e-5d1b-4c8e-9a3f-2b6d8e1c4a70",
           PLATFORM_URL="http://127.0.0.1:9",
           MOLECULE_WORKSPACE_TOKEN="check-token-do-not-print",
           CONFIGS_DIR=tempfile.mkdtemp(prefix="molecule-check-"),
           MOLECULE_MCP_DISABLE_HEARTBEAT="1",
           MOLECULE_MCP_DISABLE_INBOX="1")
failures = 0


def check(name, ok, detail=""):
    global failures
    if not ok:
        failures += 1
    print(f"{'PASS' if ok else 'FAIL'} {name}{'' if ok else ': ' + detail}")


def init(version, rid=1):
    params = {"capabilities": {}, "clientInfo": {"name": "check", "version": "1"}}
    if version is not None:
        params["protocolVersion"] = version
    return {"jsonrpc": "2.0", "id": rid, "method": "initialize", "params": params}


def session(lines, wait_ids, hold=0.0):
    """Send lines, read stdout until every id in wait_ids answered, then close stdin.
    Returns (responses by id, other stdout lines, exit code, ms from EOF to exit, stderr)."""
    p = subprocess.Popen([BINARY], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    for line in lines:
        p.stdin.write((line if isinstance(line, str) else json.dumps(line)).encode() + b"\n")
    p.stdin.flush()
    answers, others, pending = {}, [], set(wait_ids)
    deadline = time.monotonic() + 15
    while pending and time.monotonic() < deadline:
        raw = p.stdout.readline()
        if not raw:
            break
        try:
            msg = json.loads(raw)
        except ValueError:
            others.append(raw.decode(errors="replace"))
            continue
        if isinstance(msg, dict) and "id" in msg and ("result" in msg or "error" in msg):
            answers[msg["id"]] = msg
            pending.discard(msg["id"])
        else:
            others.append(raw.decode(errors="replace"))
    time.sleep(hold)
    closed = time.monotonic()
    p.stdin.close()
    rest = p.stdout.read()
    rc = p.wait(timeout=10)
    ms = (time.monotonic() - closed) * 1000
    for raw in rest.splitlines():
        try:
            json.loads(raw)
        except ValueError:
            others.append(raw.decode(errors="replace"))
    return answers, others, rc, ms, p.stderr.read().decode(errors="replace")


# 1. version negotiation
for asked, expected in [("2024-11-05", "2024-11-05"), ("2025-03-26", "2025-03-26"), ("2025-06-18", "2025-06-18"),
                        ("2025-11-25", "2025-11-25"), ("1999-01-01", "2025-11-25"), ("2026-07-28", "2025-11-25"),
                        ("garbage", "2025-11-25"), (None, "2025-11-25")]:
    answers, others, rc, _, _ = session([init(asked)], [1])
    got = answers.get(1, {}).get("result", {}).get("protocolVersion")
    check(f"initialize {asked!r} -> {expected}", got == expected, f"got {answers.get(1)}")

# 2. initialize result shape, tools/list, garbage tolerance, discover rejected, stdout hygiene, EOF exit
answers, others, rc, ms, stderr = session(
    [init("2025-06-18"), {"jsonrpc": "2.0", "method": "notifications/initialized"},
     "this is not json", "[1,2,3]", "{\"jsonrpc\":\"2.0\",",
     {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
     {"jsonrpc": "2.0", "id": "server-discover-probe-1", "method": "server/discover",
      "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                           "io.modelcontextprotocol/clientCapabilities": {},
                           "io.modelcontextprotocol/clientInfo": {"name": "check", "version": "1"}}}},
     {"jsonrpc": "2.0", "id": 3, "method": "ping"},
     {"jsonrpc": "2.0", "id": 4, "method": "resources/list"},
     {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "inbox_peek", "arguments": {}}},
     {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "no_such_tool", "arguments": {}}}],
    [1, 2, "server-discover-probe-1", 3, 4, 5, 6])
result = answers.get(1, {}).get("result", {})
check("serverInfo.name is molecule-mcp", result.get("serverInfo", {}).get("name") == "molecule-mcp", str(result))
check("experimental claude/channel declared",
      result.get("capabilities", {}).get("experimental", {}).get("claude/channel") == {}, str(result))
check("instructions present", bool(result.get("instructions")), str(result)[:200])
tools = answers.get(2, {}).get("result", {}).get("tools", [])
check("tools/list has 11 tools", len(tools) == 11, f"{len(tools)} tools")
check("server/discover answered with -32601",
      answers.get("server-discover-probe-1", {}).get("error", {}).get("code") == -32601,
      str(answers.get("server-discover-probe-1")))
check("ping answered after garbage lines", answers.get(3, {}).get("result") == {}, str(answers.get(3)))
check("unknown method -> -32601", answers.get(4, {}).get("error", {}).get("code") == -32601, str(answers.get(4)))
r5 = answers.get(5, {}).get("result", {})
check("inbox tool with inbox disabled -> isError result", r5.get("isError") is True, str(answers.get(5)))
check("unknown tool -> -32602", answers.get(6, {}).get("error", {}).get("code") == -32602, str(answers.get(6)))
check("stdout carries JSON only", not others, str(others))
check("exit code 0 on EOF", rc == 0, f"rc={rc}")
check("exit within 1 s of EOF", ms < 1000, f"{ms:.0f} ms")
check("token never printed", "check-token-do-not-print" not in stderr, "token found on stderr")

# 3. EOF while a tool call is in flight (wait_for_message waits; inbox enabled but platform unreachable)
ENV.pop("MOLECULE_MCP_DISABLE_INBOX")
p = subprocess.Popen([BINARY], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
p.stdin.write((json.dumps(init("2025-06-18")) + "\n").encode())
p.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
p.stdin.write(b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"wait_for_message","arguments":{"timeout_secs":60}}}\n')
p.stdin.flush()
p.stdout.readline()
time.sleep(1.0)
closed = time.monotonic()
p.stdin.close()
rc = p.wait(timeout=10)
ms = (time.monotonic() - closed) * 1000
check("exit within 1 s of EOF with wait_for_message in flight", ms < 1000 and rc == 0, f"rc={rc} {ms:.0f} ms")

# 4. missing configuration -> exit 2 with help on stderr, nothing on stdout
p = subprocess.run([BINARY], input=b"", capture_output=True, env={"PATH": os.environ.get("PATH", ""), "HOME": ENV["CONFIGS_DIR"]})
check("missing env -> exit 2, help on stderr, empty stdout",
      p.returncode == 2 and b"WORKSPACE_ID" in p.stderr and p.stdout == b"", f"rc={p.returncode} out={p.stdout[:100]!r}")

print(f"{'ALL PASSED' if failures == 0 else str(failures) + ' FAILED'}")
sys.exit(1 if failures else 0)
