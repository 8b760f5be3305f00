"""Summarise bench/out/mem-*/samples.jsonl written by memrun.sh: one row per sample."""

from __future__ import annotations

import json
import sys


def row(label: str, req: int, b: dict) -> str:
    m = b["malloc"]
    return (f"{label:<14} {req:>9} {b['rss_kb']:>8} {b['gc_objects']:>8} {b['blocks']:>9} "
            f"{m['in_use'] // 1024:>8} {m['free'] // 1024:>7} {m['mmap'] // 1024:>6} {b['gc_stats']!s:>16} {b['gc_count'][0]:>6}")  # fmt: skip


def main(path: str) -> None:
    print(f"{'sample':<14} {'requests':>9} {'rss_kB':>8} {'gc_objs':>8} {'pyblocks':>9} "
          f"{'malloc_kB':>8} {'free_kB':>7} {'mmap':>6} {'gc_collections':>16} {'gen0':>6}")  # fmt: skip
    with open(path) as f:
        lines = f.readlines()
    for line in lines:
        s = json.loads(line)
        d = s["data"]
        print(row(s["label"] + "/pre", s["requests"], d["before"]))
        if "after_collect" in d:
            print(row(s["label"] + "/gc", s["requests"], d["after_collect"]) + f"  freed={d['collected']}")
        if "after_garbage" in d:
            g = d["garbage"]
            print(row(s["label"] + "/gc", s["requests"], d["after_garbage"]) + f"  garbage={g['count']}")
        if "after_trim" in d:
            print(row(s["label"] + "/trim", s["requests"], d["after_trim"]))
        if "internals" in d:
            print("    internals:", json.dumps(d["internals"]))
    for line in lines:
        s = json.loads(line)
        g = s["data"].get("garbage")
        if g and g["count"]:
            print(
                f"garbage at {s['label']}: {g['count']} objects; exceptions {g['exceptions'][:4]}; "
                f"types {g['types'][:8]}; {g['misc'][:4]}"
            )
    # census growth since the warm-up census, from the last sample that has one
    for line in reversed(lines):
        s = json.loads(line)
        c = s["data"].get("census")
        if c and "delta_base" in c:
            print(f"census delta since warm-up (at {s['label']}):", c["delta_base"][:15])
            break


if __name__ == "__main__":
    main(sys.argv[1])
