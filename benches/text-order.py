"""The functions of a binary that ran under callgrind, for the linker's --symbol-ordering-file (benches/text-order.sh).

Usage: text-order.py BINARY_NAME CALLGRIND_OUT...   (callgrind run with --demangle=no: names are the symbols')

Prints the functions of BINARY_NAME's object that ran in the first run, costliest first (the hot ones share pages),
then those that ran only in the second, and so on: what a run of the first kind touches comes first, together.
"""

import collections
import re
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


def main():
    binary, paths = sys.argv[1], sys.argv[2:]
    listed = set()
    for path in paths:
        run = costs(path, binary)
        for name, _ in sorted(run.items(), key=lambda item: (-item[1], item[0])):
            if name not in listed:
                listed.add(name)
                print(name)


if __name__ == "__main__":
    main()
