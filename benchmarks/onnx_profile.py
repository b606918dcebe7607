"""Where an ONNX graph's time goes on this CPU: onnxruntime's own profiler (SessionOptions.enable_profiling),
kernel time summed per operator type and per node over many runs, at the graph optimisation level the
onnxruntime backend uses (all). Compare model.onnx and model.int8.onnx with it:

    python benchmarks/onnx_profile.py src/onepass/default_model/model.onnx
    python benchmarks/onnx_profile.py src/onepass/default_model/model.int8.onnx --batch 8
    python benchmarks/onnx_profile.py PACKAGE/model.frame.onnx --size 480x640    # the frame-size graph

The input is random uint8 frames of the graph's own (static) size. Profiling adds its own overhead, so
the totals are larger than a plain run's latency; read the shares.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np


def kernel_times(
    path: Path, batch: int, runs: int, threads: int, size: tuple[int, int] | None = None
) -> tuple[Counter, Counter, Counter]:
    """(microseconds per operator type, nodes per operator type, microseconds per node), summed over `runs`."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="onepass-profile-"), "ort")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    _, height, width, channels = feed.shape
    if size is not None:
        height, width = size
    if not all(isinstance(v, int) for v in (height, width, channels)):
        raise SystemExit(f"{path}: the input {feed.name} has a dynamic size {feed.shape}: give --size HxW")
    frames = np.random.default_rng(0).integers(0, 256, (batch, height, width, channels), dtype=np.uint8)
    for _ in range(runs):
        session.run(None, {feed.name: frames})
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    per_type, nodes, per_node = Counter(), Counter(), Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            kind = event["args"]["op_name"]
            per_type[kind] += event["dur"]
            nodes[kind] += 1
            per_node[event["name"].removesuffix("_kernel_time")] += event["dur"]
    return per_type, Counter({k: n // runs for k, n in nodes.items()}), per_node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("graph", type=Path, help="an ONNX file with a fixed-size uint8 NHWC input (model.onnx, ...)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50, help="profiled runs (default 50)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="intra-op threads (default: cores)")
    parser.add_argument("--size", help="HxW frames, for a graph with a dynamic size (model.frame.onnx)")
    parser.add_argument("--top", type=int, default=15, help="operator types and nodes listed (default 15)")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    per_type, nodes, per_node = kernel_times(args.graph, args.batch, args.runs, args.threads, size)
    total = sum(per_type.values())
    print(f"{args.graph}: {total / args.runs / 1e3:.2f} ms of kernel time per run (batch {args.batch})")
    for kind, micros in per_type.most_common(args.top):
        print(f"  {kind:<24} {micros / args.runs / 1e3:7.3f} ms  {100 * micros / total:5.1f} %  {nodes[kind]} nodes")
    print("slowest nodes:")
    for name, micros in per_node.most_common(args.top):
        print(f"  {name[:64]:<64} {micros / args.runs / 1e3:7.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
