"""The functions of a binary that ran, for the linker's --symbol-ordering-file (benches/text-order.sh).

Usage: text-order.py BINARY_NAME RUN...
       text-order.py --native BINARY LIST PERF

With RUNs: prints the functions of BINARY_NAME's object that ran in the first run, then those that ran only in the
second, and so on, so that what a run of the first kind touches comes first, together. A RUN is a callgrind output
(run with --demangle=no: names are the symbols'), listed costliest first (the hot ones share pages), or, ending in
`.txt`, a list of symbols, one a line, in order.

With --native: prints LIST (a `.txt` list, if it exists) and what PERF adds to it, keeping only the names BINARY (a
path) defines. PERF is the output of `perf script --no-demangle -F event,addr,ip,sym,dso` of a native run recorded
with `-d -e cpu-clock -e page-faults`: the functions whose code faulted in (an instruction fetch: the address is the
instruction's), then those sampled. A native run finds what callgrind does not run: a contended lock's slow path
(callgrind runs one thread at a time), code picked by CPU features valgrind does not offer (SHA-1 instructions), a
cache's pressure path under a long burst. A fault names only the first function touched in each run of pages the
kernel maps at once, and which that is depends on the placement, so the finds of earlier runs are kept.
"""

import collections
import os
import re
import subprocess
import sys

DEFINITION = re.compile(r"^(c?ob|c?fi|c?fe|c?fn)=\((\d+)\)(?: (.*))?$")


def costs(path, binary):
    """Self cost (instructions) per function of `binary` in one callgrind output (compressed names)."""
    objects, functions = {}, {}
    cost = collections.Counter()
    current_object = function = None
    after_calls = False
    with open(path, errors="replace") as lines:
        for line in lines:
            line = line.rstrip("\n")
            found = DEFINITION.match(line)
            if found:
                kind, ident, name = found.groups()
                table = objects if kind.endswith("ob") else functions if kind.endswith("fn") else None
                if table is not None and name is not None:
                    table[ident] = name
                if kind == "ob":
                    current_object = objects.get(ident)
                elif kind == "fn":
                    owner = current_object or ""
                    function = functions.get(ident) if owner.endswith("/" + binary) else None
                    if function:
                        cost[function] += 0
                continue
            if line.startswith("calls="):
                # The next cost line is the call's (inclusive), not the function's own.
                after_calls = True
                continue
            if after_calls:
                after_calls = False
                continue
            if function and line[:1] and (line[0].isdigit() or line[0] in "+-*"):
                fields = line.split()
                if len(fields) >= 2 and fields[1].isdigit():
                    cost[function] += int(fields[1])
    return cost


PERF_LINE = re.compile(r"^\s*(\S+?):?\s+([0-9a-f]+)\s+(?:(\S+)\s+\((.*?)\)\s+)?([0-9a-f]+)\s+(\S+)\s+\((.*?)\)\s*$")


def sampled(path, binary):
    """The functions of `binary` a native run faulted in (first) or was sampled in (by samples), from perf script."""
    faulted, samples = [], collections.Counter()
    with open(path, errors="replace") as lines:
        for line in lines:
            found = PERF_LINE.match(line)
            if not found:
                continue
            event, address, _, _, ip, symbol, dso = found.groups()
            if not dso.endswith("/" + binary) or symbol.startswith("["):
                continue
            if event.startswith("page-faults"):
                if address == ip and symbol not in faulted:
                    faulted.append(symbol)
            else:
                samples[symbol] += 1
    return faulted + [name for name, _ in samples.most_common() if name not in faulted]


def native(binary_path, previous, perf):
    defined = set(subprocess.run(["nm", "--defined-only", binary_path], capture_output=True, text=True).stdout.split())
    names = listed(previous) if os.path.exists(previous) else []
    known = set(names)
    names += [name for name in sampled(perf, os.path.basename(binary_path)) if name not in known]
    for name in names:
        if name in defined:
            print(name)


def listed(path):
    """A `.txt` list of symbols, one a line."""
    with open(path) as lines:
        return [line.strip() for line in lines if line.strip()]


def main():
    if sys.argv[1] == "--native":
        native(*sys.argv[2:5])
        return
    binary, paths = sys.argv[1], sys.argv[2:]
    printed = set()
    for path in paths:
        if path.endswith(".txt"):
            names = listed(path)
        else:
            run = costs(path, binary)
            names = [name for name, _ in sorted(run.items(), key=lambda item: (-item[1], item[0]))]
        for name in names:
            if name not in printed:
                printed.add(name)
                print(name)


if __name__ == "__main__":
    main()
