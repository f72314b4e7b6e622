#!/usr/bin/env python3
"""Where a request's CPU time goes, from a call-graph profile of run.sh.

run.sh records each measured run with `perf record` when PERF_DIR is set;
with PERF_ARGS="--call-graph dwarf" (and a binary built with
CARGO_PROFILE_RELEASE_DEBUG=line-tables-only) the samples carry their
stacks. This script turns one such profile into microseconds per request:
a function's share of the samples times the CPU per request that run.sh
measured for that run (perf's own figures are slowed by the sampling; the
shares are not, much).

    profile.py login-h1-credgate-1.data 28.2              # user-space functions
    profile.py login-h1-credgate-1.data 28.2 --base get-h1-credgate-1.data 21.0
    profile.py login-h1-credgate-1.data 28.2 --children 'Pipeline::inspect_login'
    profile.py login-h1-credgate-1.data 28.2 --syscalls   # the kernel's share
    profile.py get-h1-credgate-1.data 21.0 --crates       # own code, by crate

With --base, each row is the difference (this profile minus the base), so
that a login against a GET shows what inspecting it costs. Inclusive time
counts a function once per sample however often it recurs in the stack.
"""

import argparse
import collections
import subprocess
import sys


def samples(path):
    """Each sample's stack, leaf first: a list of (address, symbol)."""
    if path.endswith(".data"):
        text = subprocess.run(
            ["perf", "script", "-i", path, "--no-inline", "-F", "ip,sym"],
            capture_output=True, text=True, errors="replace", check=True,
        ).stdout
    else:
        with open(path, errors="replace") as f:
            text = f.read()
    stack = []
    for line in text.splitlines():
        parts = line.split(None, 1)
        if not parts:
            if stack:
                yield stack
            stack = []
            continue
        symbol = parts[1].rsplit(" (", 1)[0] if len(parts) == 2 else "[unknown]"
        stack.append((parts[0], symbol))
    if stack:
        yield stack


# Symbols outside any Rust crate, by the library they come from.
C_SYMBOLS = (
    ("mimalloc", ("mi_", "_mi_")),
    ("ring", ("ring_core_",)),
    ("libc", ("__mem", "__GI_", "__libc", "__vdso", "clock_gettime")),
)


def crate(symbol):
    """The crate of a demangled Rust symbol (`<T as hyper::...>` counts as
    T's), or the C library of one of C_SYMBOLS, or `other`."""
    path = symbol.lstrip("<&*")
    if "::" in path:
        return path.split("::", 1)[0]
    for library, prefixes in C_SYMBOLS:
        if path.startswith(prefixes):
            return library
    return "other"


def in_kernel(stack):
    return stack[0][0].startswith("ffffffff")


class Profile:
    def __init__(self, path, us_per_request):
        self.stacks = list(samples(path))
        if not self.stacks:
            sys.exit(f"{path}: no samples")
        # Microseconds per request that one sample stands for.
        self.weight = us_per_request / len(self.stacks)

    def user(self):
        return (s for s in self.stacks if not in_kernel(s))

    def inclusive(self):
        out = collections.Counter()
        for stack in self.user():
            # The root of every stack perf could not unwind further.
            for symbol in {sym for _, sym in stack} - {"[unknown]"}:
                out[symbol] += self.weight
        return out

    def own(self):
        out = collections.Counter()
        for stack in self.user():
            out[stack[0][1]] += self.weight
        return out

    def children(self, parent):
        """Time under the outermost frame matching `parent`, by its callee."""
        out = collections.Counter()
        for stack in self.user():
            symbols = [sym for _, sym in stack]
            hits = [i for i, sym in enumerate(symbols) if parent in sym]
            if hits:
                i = hits[-1]
                out["(its own code)" if i == 0 else symbols[i - 1]] += self.weight
        return out

    def crates(self):
        """Own-code time by crate (the leaf frame's path); C libraries by name."""
        out = collections.Counter()
        for stack in self.user():
            out[crate(stack[0][1])] += self.weight
        return out

    def syscalls(self):
        out = collections.Counter()
        for stack in self.stacks:
            if not in_kernel(stack):
                continue
            symbols = [sym for _, sym in stack]
            name = next((s for s in reversed(symbols) if s.startswith("__x64_sys_")), None)
            if name is None and "do_syscall_64" in symbols:
                i = symbols.index("do_syscall_64")
                name = symbols[i - 1] if i > 0 else "?"
            out[name or "(interrupts)"] += self.weight
        return out

    def split(self):
        user = sum(1 for _ in self.user()) * self.weight
        return user, len(self.stacks) * self.weight - user


def table(title, rows, base=None, limit=30):
    print(f"\n| {title} | µs/req |" + (" base | difference |" if base is not None else ""))
    print("|---|---:|" + ("---:|---:|" if base is not None else ""))
    if base is None:
        ranked = rows.most_common(limit)
        for name, us in ranked:
            print(f"| `{name[:110]}` | {us:.3f} |")
        return
    names = set(rows) | set(base)
    ranked = sorted(names, key=lambda n: rows.get(n, 0) - base.get(n, 0), reverse=True)
    for name in ranked[:limit]:
        a, b = rows.get(name, 0), base.get(name, 0)
        print(f"| `{name[:110]}` | {a:.3f} | {b:.3f} | {a - b:+.3f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("profile", help="perf.data, or the text of `perf script`")
    p.add_argument("us_per_request", type=float, help="the run's CPU µs per request")
    p.add_argument("--base", nargs=2, metavar=("PROFILE", "US"), help="a profile to subtract")
    p.add_argument("--children", metavar="FUNCTION", help="break down one function's time")
    p.add_argument("--syscalls", action="store_true", help="the kernel's time, by system call")
    p.add_argument("--crates", action="store_true", help="user space's own-code time, by crate")
    p.add_argument("--limit", type=int, default=30)
    args = p.parse_args()

    profile = Profile(args.profile, args.us_per_request)
    base = Profile(args.base[0], float(args.base[1])) if args.base else None
    user, kernel = profile.split()
    print(f"{len(profile.stacks)} samples: user {user:.2f} µs/req, kernel {kernel:.2f} µs/req")
    if args.children:
        views = [(f"under `{args.children}`", lambda prof: prof.children(args.children))]
    elif args.syscalls:
        views = [("kernel, by system call", Profile.syscalls)]
    elif args.crates:
        views = [("user space, own code by crate", Profile.crates)]
    else:
        views = [("user space, inclusive", Profile.inclusive), ("user space, own code", Profile.own)]
    for title, view in views:
        table(title, view(profile), view(base) if base else None, args.limit)


if __name__ == "__main__":
    main()
