#!/usr/bin/python3
"""The include graph of common/, caller/ and responder/: no loop, and libmicrohttpd sealed.

A module is a .c file and its .h; module A uses module B when either of A's
files includes B's header. No module may use itself through others.

Prints one "PASS|FAIL <check>" line per check, findings indented below a FAIL.
Exit status 0 when every check passes.
  tests/analysis/include_graph.py
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIRS = ("common", "caller", "responder")
# Only the HTTP server's own files may include libmicrohttpd's header.
MHD_ALLOWED = {"common/http_server.c", "common/response.c"}
INCLUDE = re.compile(r'^\s*#\s*include\s+([<"])([^>"]+)[>"]', re.M)


def includes(path):
    """(local, system) includes of one file; local ones as paths relative to ROOT."""
    local, system = [], []
    for kind, name in INCLUDE.findall(path.read_text()):
        if kind == "<":
            system.append(name)
        else:
            local.append((path.parent / name).resolve().relative_to(ROOT).as_posix())
    return local, system


def find_loop(graph):
    """One include loop as a list of files, or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt):] + [nxt]
            if nxt not in state:
                loop = visit(nxt, trail + [nxt])
                if loop:
                    return loop
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            loop = visit(node, [node])
            if loop:
                return loop
    return None


def main():
    files = sorted(p for d in DIRS for p in (ROOT / d).glob("*.[ch]"))
    graph, mhd = {}, []
    for f in files:
        rel = f.relative_to(ROOT).as_posix()
        module = rel.rsplit(".", 1)[0]
        local, system = includes(f)
        uses = graph.setdefault(module, set())
        uses.update(h.rsplit(".", 1)[0] for h in local if h.endswith(".h"))
        uses.discard(module)
        if "microhttpd.h" in system and rel not in MHD_ALLOWED:
            mhd.append(rel)
    graph = {m: sorted(u) for m, u in graph.items()}
    failed = 0
    loop = find_loop(graph)
    if loop:
        failed += 1
        print("FAIL include-graph: no include loop")
        print("    " + " -> ".join(loop))
    else:
        print(f"PASS include-graph: no include loop ({len(graph)} modules)")
    if mhd:
        failed += 1
        print("FAIL include-graph: only " + " and ".join(sorted(MHD_ALLOWED)) +
              " include microhttpd.h")
        for rel in mhd:
            print(f"    {rel}")
    else:
        print("PASS include-graph: only " + " and ".join(sorted(MHD_ALLOWED)) +
              " include microhttpd.h")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
