#!/usr/bin/env python3
"""Which system calls the shipped unit's seccomp filter allows, from `systemd-analyze syscall-filter`:
@system-service minus @privileged and @resources (the unit's SystemCallFilter= lines). Reads `strace -c`
summaries and fails, naming them, on any call the daemon made that the filter would refuse."""
import re
import subprocess
import sys


def groups():
    text = subprocess.run(["systemd-analyze", "syscall-filter"], check=True, capture_output=True, text=True).stdout
    out, current = {}, None
    for line in text.splitlines():
        if line.startswith("@"):
            current = line.strip()
            out[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            out[current].append(line.strip())
    return out


def expand(name, table, seen=None):
    seen = set() if seen is None else seen
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    calls = set()
    for item in table.get(name, []):
        calls |= expand(item, table, seen)
    return calls


def used(path):
    calls = set()
    for line in open(path):
        fields = line.split()
        # The table's rows: "% time  seconds  usecs/call  calls  [errors]  syscall".
        if len(fields) >= 5 and re.fullmatch(r"[0-9.]+", fields[0]) and re.fullmatch(r"[a-z_0-9]+", fields[-1]) and fields[-1] != "total":
            calls.add(fields[-1])
    return calls


table = groups()
allowed = expand("@system-service", table) - expand("@privileged", table) - expand("@resources", table)
made = set().union(*(used(p) for p in sys.argv[1:]))
# execve starts the binary (systemd's own, before the filter applies to it) in a real unit.
refused = sorted(made - allowed - {"execve"})
print(f"sandbox: {len(made)} distinct system calls made; {len(allowed)} allowed by the unit's filter", flush=True)
if refused:
    print("sandbox: the unit's SystemCallFilter= would refuse: " + ", ".join(refused), flush=True)
    sys.exit(1)
