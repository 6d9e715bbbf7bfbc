#!/usr/bin/env python3
"""Runs the README's "Try it" curl steps as written against a running caller and responder.

    readme_steps.py README CALLER_PORT RESPONDER_PORT

Each `curl ...` line of the first sh block under "## Try it" runs with localhost:5000 and
localhost:5001 turned into the given ports, and the `# -> STATUS JSON` line after it is the
answer it must get (same status, same JSON). Prints one "ok"/"not ok" line per step and exits
non-zero when any step fails or the block has no steps, so a README edit that breaks the
steps (or drops them) fails the end-to-end test.
"""
import json
import re
import shlex
import subprocess
import sys


def readme_steps(path):
    """[(curl argv, expected status, expected JSON)] from the "Try it" block."""
    text = open(path, encoding="utf-8").read()
    section = text.split("\n## Try it\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    steps = []
    for line in block.splitlines():
        line = line.strip()
        if line.startswith("curl "):
            steps.append([shlex.split(line), None, None])
        elif line.startswith("# -> ") and steps and steps[-1][1] is None:
            status, body = line[len("# -> "):].split(" ", 1)
            steps[-1][1] = int(status)
            steps[-1][2] = json.loads(body)
    return steps


def main():
    readme, caller_port, responder_port = sys.argv[1:4]
    ports = {"5000": caller_port, "5001": responder_port}
    steps = readme_steps(readme)
    failed = 0
    for argv, want_status, want_body in steps:
        run = [re.sub(r"localhost:(500[01])", lambda m: f"localhost:{ports[m.group(1)]}", a) for a in argv]
        shown = " ".join(shlex.quote(a) for a in run)
        out = subprocess.run(run[:1] + ["-sS", "--max-time", "10", "-w", "\n%{http_code}"] + run[1:],
                             capture_output=True, text=True, timeout=30)
        body, _, status = out.stdout.rpartition("\n")
        try:
            got = json.loads(body)
        except ValueError:
            got = body
        if want_status is None:
            failed += 1
            print(f"not ok - {shown}: the README gives no '# -> STATUS JSON' answer for it")
        elif int(status or 0) == want_status and got == want_body:
            print(f"ok - {shown} -> {status} {body}")
        else:
            failed += 1
            print(f"not ok - {shown} -> {status} {body} {out.stderr.strip()} "
                  f"(README says {want_status} {json.dumps(want_body)})")
    if not steps:
        print("not ok - no curl steps under '## Try it' in the README")
        failed += 1
    print(f"{len(steps) - failed if steps else 0} of {len(steps)} README steps answered as written")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
