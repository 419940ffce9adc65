#!/usr/bin/env python3
"""The crate's module graph at the top level (`src/<module>`): which module's code names which other module
(`crate::x`, `super::super::x`), outside test code. Prints the edges and every cycle; exits 1 on a cycle.
docs/architecture.md says how to read it."""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def top(path):
    rel = os.path.relpath(path, SRC)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def strip_tests(text):
    # Drop `#[cfg(test)]` items: a `mod x;` line, or a braced block.
    out, i = [], 0
    while True:
        j = text.find("#[cfg(test)]", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        k = j + len("#[cfg(test)]")
        semi, brace = text.find(";", k), text.find("{", k)
        if semi >= 0 and (brace < 0 or semi < brace):
            i = semi + 1
            continue
        depth, m = 0, brace
        while m < len(text):
            if text[m] == "{":
                depth += 1
            elif text[m] == "}":
                depth -= 1
                if depth == 0:
                    break
            m += 1
        i = m + 1
    return "".join(out)


def is_test_file(path):
    name = os.path.basename(path)
    return name in ("tests.rs", "hostile.rs", "corpus.rs") or f"{os.sep}tests{os.sep}" in path or f"{os.sep}conformance{os.sep}" in path


edges = {}
for root, _, files in os.walk(SRC):
    for f in files:
        if not f.endswith(".rs"):
            continue
        path = os.path.join(root, f)
        if is_test_file(path):
            continue
        src_mod = top(path)
        if src_mod in ("main", "lib"):
            continue
        text = strip_tests(open(path).read())
        text = re.sub(r"//[^\n]*", "", text)
        names = [m.group(1) for m in re.finditer(r"\bcrate::(\w+)", text)]
        # `use crate::{a::x, b}`: the first name of each part at the top of the braces.
        for m in re.finditer(r"\bcrate::\{", text):
            depth, k, part = 1, m.end(), ""
            while k < len(text) and depth:
                c = text[k]
                depth += c == "{"
                depth -= c == "}"
                if depth == 1 and c == ",":
                    names.append(re.match(r"\s*(\w*)", part).group(1))
                    part = ""
                elif depth >= 1:
                    part += c if depth == 1 else ""
                k += 1
            names.append(re.match(r"\s*(\w*)", part).group(1))
        for dst in names:
            known = os.path.exists(os.path.join(SRC, dst + ".rs")) or os.path.isdir(os.path.join(SRC, dst))
            if dst and dst != src_mod and known:
                edges.setdefault(src_mod, set()).add(dst)

for a in sorted(edges):
    print(f"{a} -> {', '.join(sorted(edges[a]))}")

# Cycles: strongly connected components with more than one module.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))


for v in list(edges):
    if v not in index:
        visit(v)
for comp in sccs:
    print("cycle: " + " <-> ".join(comp))
sys.exit(1 if sccs else 0)
