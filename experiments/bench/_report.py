"""The benchmark's outputs: the race summary, results.md, the plots, summary.json."""

from __future__ import annotations

import math
import pathlib

from experiments import plots
from experiments.bench._cases import DTYPES, MODES, REFERENCE_MODE, SHAPES, RowKey

IMPL_ORDER = (
    "jconv_auto", "jconv_lax", "lax_raw", "jconv_einsum", "jconv_onednn",
    "jconv_fft", "jconv_winograd", "torch", "keras_tf",
)  # fmt: skip
# The rows whose answer is jconv's own: any problem there fails the run (but
# rows skipped before running: the config's choice, no oneDNN here). Every
# other implementation is a peer, and its wrong answer is a finding.
JCONV_IMPLS = (
    "jconv_auto", "jconv_lax", "jconv_einsum", "jconv_onednn", "jconv_fft",
    "jconv_winograd",
)  # fmt: skip
JAX_IMPLS = (*JCONV_IMPLS, "lax_raw")
PEERS = ("torch", "keras_tf")  # the other frameworks; lax_raw is reported apart
# The target for in_scan / fwd+bwd of every jconv implementation.
SCAN_RATIO_TARGET = 1.2
# "Within 5% of the fastest peer": a jconv time at most this times the peer's.
NEAR_PEER = 1.05
# The jconv implementations with a column time / lax's in the mode tables.
OVER_LAX = ("jconv_auto", "jconv_einsum", "jconv_onednn")


def _index(records) -> dict[RowKey, dict]:
    return {RowKey.of(r): r for r in records}


def record_rank(record: dict) -> int:
    """A row's spatial rank: from its input shape, else from its shape's
    geometry; 2 for a shape the registry does not know (hand-made rows)."""
    if "x_shape" in record:
        return len(record["x_shape"]) - 2
    geometry = SHAPES.get(record["shape"])
    return 2 if geometry is None else geometry.rank


def rank_groups(records) -> list[tuple[int, ...]]:
    """How the tables and summaries split the rows by spatial rank: the 2-D
    rows on their own (as they always were), then every other rank together.

    Example:
      >>> rank_groups([{"shape": "resnet1d"}, {"shape": "mnist"},
      ...              {"shape": "voxnet_conv2"}])
      [(2,), (1, 3)]
    """
    ranks = {record_rank(r) for r in records}
    others = tuple(sorted(ranks - {2}))
    return [g for g in ((2,) if 2 in ranks else (), others) if g]


def rank_label(ranks) -> str:
    """`", 1-D and 3-D"` for a group of other ranks; `""` for the 2-D rows,
    whose headings and lines read as they always did."""
    if tuple(ranks) == (2,):
        return ""
    return ", " + " and ".join(f"{r}-D" for r in ranks)


def summarise_race(sides: dict, race: dict, data: dict) -> dict:
    """Flattens both sides of the kernel-learning race into `kernel_race`."""
    jax_side, keras_side = sides.get("jax", {}), sides.get("keras", {})
    n, h, w, _ = data["x"].shape
    out = {
        "task": (
            f"recover the document's 3x3 kernel from {n} random {h}x{w} images "
            "(targets exact, 'valid'), kernel from zeros, full batch, loss mse"
        ),
        "optimizer": race["optimizer"],
        "learning_rate": race["learning_rate"],
        "steps": race["steps"],
        "errors": {k: v["error"] for k, v in sides.items() if "error" in v},
    }
    equal = jax_side.get("equal_steps", {})
    if equal:
        impl = min(equal, key=lambda i: equal[i]["seconds"])
        best = equal[impl]
        out.update(
            jconv_impl=impl,
            jconv_seconds=best["seconds"],
            jconv_compile_seconds=best["compile_seconds"],
            jconv_kernel_max_abs_error=best["kernel_max_abs_error"],
            jconv_final_loss=best["final_loss"],
            jconv_seconds_by_impl={i: r["seconds"] for i, r in equal.items()},
            jconv=equal,
        )
    if "seconds" in keras_side:
        out.update(
            keras_seconds=keras_side["seconds"],
            keras_first_fit_seconds=keras_side["first_fit_seconds"],
            keras_kernel_max_abs_error=keras_side["kernel_max_abs_error"],
            keras_final_loss=keras_side["final_loss"],
            keras_jit_compile=keras_side["jit_compile"],
            keras_steps_per_execution=keras_side["steps_per_execution"],
            keras_iterations=keras_side["iterations"],
            keras_fastest_seconds=keras_side["fast"]["seconds"],
            keras_fastest_first_fit_seconds=keras_side["fast"]["first_fit_seconds"],
            keras_fastest_kernel_max_abs_error=keras_side["fast"][
                "kernel_max_abs_error"
            ],
        )
    if "jconv_seconds" in out and "keras_seconds" in out:
        out["speedup_vs_keras"] = out["keras_seconds"] / out["jconv_seconds"]
        out["speedup_vs_keras_fastest"] = (
            out["keras_fastest_seconds"] / out["jconv_seconds"]
        )
        out["speedup_vs_keras_including_compile"] = (
            out["keras_seconds"] + out["keras_first_fit_seconds"]
        ) / (out["jconv_seconds"] + out["jconv_compile_seconds"])
    to_target = jax_side.get("to_target", {})
    reached = {k: v for k, v in to_target.items() if v["reached"]}
    out["target_error"] = race["target_error"]
    out["to_target"] = to_target
    if reached:
        name = min(reached, key=lambda k: reached[k]["seconds"])
        out.update(
            best_optimizer=name,
            time_to_target_seconds=reached[name]["seconds"],
            time_to_target_compile_seconds=reached[name]["compile_seconds"],
            time_to_target_steps=reached[name]["steps"],
        )
    floors = jax_side.get("closed_form", {})
    if floors:
        out["closed_form"] = floors
        out["lstsq_seconds"] = floors["lstsq"]["seconds"]
        out["floor_seconds"] = min(f["seconds"] for f in floors.values())
        if "time_to_target_seconds" in out:
            out["time_to_target_vs_floor"] = (
                out["time_to_target_seconds"] / out["floor_seconds"]
            )
            out["time_to_target_vs_lstsq"] = (
                out["time_to_target_seconds"] / out["lstsq_seconds"]
            )
    return out


def _fmt_s(seconds) -> str:
    if seconds is None:
        return "n/a"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def _fmt_mib(n) -> str:
    return "n/a" if n is None else f"{n / 2**20:.3g}"


def _fmt_rate(record) -> str:
    if record.get("tflops") is not None:
        pct = record.get("percent_of_peak")
        tail = f" ({pct:.0f}% peak)" if pct is not None else " (peak n/a)"
        return f"{record['tflops']:.1f} TF/s{tail}"
    return f"{record['gflops']:.3g} GF/s" if record.get("gflops") else "n/a"


def _cell(record) -> str:
    if record is None:
        return "—"
    if record.get("status") == "mismatch":
        check = record["check"]
        worst = max(check["errors"].values())
        return f"mismatch ({worst:.2g} > {check['tolerance']:g})¹"
    if record.get("status") != "ok":
        return f"{record.get('status')}¹"
    text = (
        f"{_fmt_s(record['median_seconds'])} (min {_fmt_s(record['min_seconds'])})"
        f" · {_fmt_rate(record)}"
    )
    if record.get("single_call_seconds") is not None:
        text += f" (1 call: {_fmt_s(record['single_call_seconds'])})"
    return text


def _onednn_text(state: dict | None) -> str:
    if state is None:
        return "TensorFlow oneDNN not known (keras_tf did not run)"
    env = state["TF_ENABLE_ONEDNN_OPTS"]
    return (
        f"TensorFlow oneDNN {'on' if state['enabled'] else 'off'} "
        f"({state['enabled_from']}; TF_ENABLE_ONEDNN_OPTS="
        f"{'unset' if env is None else repr(env)}, default on this CPU: "
        f"{'on' if state['default_on_this_cpu'] else 'off'})"
    )


def _machine_line(machine: dict) -> str:
    host = machine["host"]
    dev = machine.get("jax_device", {})
    features = host.get("cpu_features", {})
    has = " ".join(n for n, on in features.items() if on) or "none"
    lacks = " ".join(n for n, on in features.items() if not on) or "none"
    text = (
        f"{host['cpu']} (has {has}; lacks {lacks}), "
        f"{host['cpu_count']} cores, {host['memory_gib']} GiB, "
        f"{host['os']}, Python {host['python']}; JAX device: "
        f"{dev.get('platform')} ({dev.get('device_kind')}); load average "
        f"{host.get('load_average_at_start')} at start, "
        f"{machine.get('load_average_at_end')} at end"
    )
    versions = []
    for meta in machine.get("frameworks", {}).values():
        for name in ("jax", "torch", "tensorflow", "keras"):
            if name in meta and f"{name} {meta[name]}" not in versions:
                versions.append(f"{name} {meta[name]}")
    text += f"; {_onednn_text(machine.get('tensorflow_onednn'))}"
    ours = machine.get("jconv_onednn")
    if ours is not None:
        text += (
            f"; jconv oneDNN {ours['version']} (impl='onednn')"
            if ours["available"]
            else f"; jconv oneDNN unavailable ({ours['reason']})"
        )
    return text + (f"; {', '.join(versions)}" if versions else "")


def _row(cells) -> str:
    """One row of a markdown table."""
    return "| " + " | ".join(map(str, cells)) + " |"


def _table(heads, rows) -> list[str]:
    """A markdown table: the header row `heads`, its rule, then `rows` (each
    a sequence of cells)."""
    return [_row(heads), "|---" * len(heads) + "|", *map(_row, rows)]


def _section(title: str, text: str, heads, rows) -> list[str]:
    """A results.md section: its heading, a paragraph, then a table."""
    return [f"## {title}", "", text, "", *_table(heads, rows)]


def plan_lines(recs) -> list[str]:
    """What `impl="auto"` ran per shape and dtype: the formulation of the
    output, the input gradient and the kernel gradient."""
    plans = {}
    for r in recs:
        if r["impl"] == "jconv_auto" and r.get("plan"):
            plans.setdefault((r["shape"], r["dtype"]), r["plan"])
    if not plans:
        return []
    return [
        "",
        *_section(
            "jconv_auto's plans",
            "The formulation of the output / input gradient / kernel gradient "
            'that `impl="auto"` picked (`jconv._plan.choose_plan`).',
            ["shape", "dtype", "plan"],
            [[shape, dtype, plan] for (shape, dtype), plan in plans.items()],
        ),
    ]


def markdown(results: dict) -> str:
    """results.md: a table per (mode, dtype), memory, problems, the race."""
    recs = results["records"]
    index = _index(recs)
    shapes = list(dict.fromkeys(r["shape"] for r in recs))
    impls = [i for i in IMPL_ORDER if any(r["impl"] == i for r in recs)]
    lines = [
        "# Convolution benchmark",
        "",
        f"Machine: {_machine_line(results['machine'])}.",
        "",
        "Median (and minimum) time per convolution over the repeats, warm-up "
        "excluded, and the rate achieved at the median. "
        "FLOPs: `2·N·Ho·Wo·KH·KW·(C_in/groups)·C_out` forward, 3x that for "
        "fwd+bwd (input and kernel gradients). Shapes with `inner_iters > 1` "
        "run that many convolutions per call (a jitted `fori_loop`, a "
        "`tf.function` loop, a Python loop for PyTorch) and also show the time "
        "of a single call, dispatch included. in_scan: fwd+bwd as a training "
        "loop runs it, 10 steps (or `inner_iters`, if more) in one jitted "
        "`lax.scan`, each step depending on the one before; time per step, "
        "JAX only." + _other_ranks_text(recs),
        "",
        "Rows: " + "; ".join(_case_line(r) for r in _first_per_shape(recs)) + ".",
        "",
        "## Summary",
        "",
        *summary_lines(recs),
        *peer_table_lines(recs),
    ]
    groups = rank_groups(recs)
    for dtype in DTYPES:
        for mode in MODES:
            for ranks in groups:
                lines += _mode_table(index, recs, impls, mode, dtype, ranks)
    lines += scan_lines(index, shapes)
    lines += plan_lines(recs)
    lines += memory_lines(index, shapes, impls)
    problems = [r for r in recs if r.get("status") != "ok"]
    lines += ["", "## ¹ Not timed", ""]
    if problems:
        lines += [
            "A peer's answer outside the tolerance is a finding about that peer "
            "on this machine; a jconv row that is not ok, or a worker that died, "
            "fails the run.",
            "",
        ]
        lines += problem_lines(problems)
    else:
        lines.append("Every implementation ran every case and passed the check.")
    checked = [r for r in recs if r.get("status") == "ok" and "errors" in r["check"]]
    if checked:
        worst = max(checked, key=lambda r: max(r["check"]["errors"].values()))
        err = max(worst["check"]["errors"].values())
        lines += [
            "",
            "Answer check before timing: every output (`y`, and `dx`, `dk` for "
            "fwd+bwd; in_scan's last step against fwd+bwd's) against jconv_lax's, "
            "error `max|out - ref| / max|ref|`, "
            "tolerances "
            + ", ".join(f"{k} {v:g}" for k, v in sorted(_tolerances(checked).items()))
            + f"; the largest error seen: {err:.2g} ({' '.join(RowKey.of(worst))}).",
        ]
    lines += ["", *overhead_lines(index, shapes)]
    wins = peer_wins(recs)
    lines += ["", "## Where a peer is faster than jconv", ""]
    if wins:
        columns = ("shape", "mode", "dtype", "peer")
        lines += [
            "Against the fastest of " + ", ".join(JCONV_IMPLS) + " in the same case:",
            "",
            *_table(
                [*columns, "peer faster by"],
                [[*(w[c] for c in columns), f"{w['speedup']:.2f}x"] for w in wins],
            ),
        ]
    else:
        lines.append("Nowhere: jconv is at least as fast in every case.")
    race = results.get("kernel_race")
    if race:
        lines += ["", "## Kernel-learning race", "", *race_lines(race)]
    return "\n".join(lines) + "\n"


def _mode_table(index, recs, impls, mode: str, dtype: str, ranks) -> list[str]:
    """The times of one mode and dtype for the shapes of spatial rank in
    `ranks`: a row per shape, a column per implementation, then each of
    `OVER_LAX`'s time over jconv_lax's."""
    rows = [
        r for r in recs
        if r["mode"] == mode and r["dtype"] == dtype and record_rank(r) in ranks
    ]  # fmt: skip
    if not rows:
        return []
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    # A column every row of which was skipped (the peers in in_scan) is left
    # out; the reason is under "Not timed".
    cols = [
        i for i in impls
        if any(r["impl"] == i and r["status"] != "skipped" for r in rows)
    ]  # fmt: skip
    over_lax = [i for i in OVER_LAX if i in cols and "jconv_lax" in cols]
    heads = cols + [f"{i.removeprefix('jconv_')} / lax" for i in over_lax]
    table = [
        [shape]
        + [_cell(index.get(RowKey(shape, i, mode, dtype))) for i in cols]
        + [_ratio(index, RowKey(shape, i, mode, dtype), "jconv_lax") for i in over_lax]
        for shape in shapes
    ]
    title = f"## {mode}, {dtype}{rank_label(ranks)}"
    return ["", title, "", *_table(["shape", *heads], table)]


def _other_ranks_text(recs) -> str:
    """The intro's note on the 1-D and 3-D rows, where there are any."""
    if not any(record_rank(r) != 2 for r in recs):
        return ""
    return (
        " 1-D and 3-D rows (their own tables): FLOPs "
        "`2·N·prod(out)·prod(K)·(C_in/groups)·C_out`; jconv through "
        "`jconv.conv` (the rank read from the kernel), the peers through "
        "PyTorch's `conv1d` / `conv3d` and Keras' `Conv1D` / `Conv3D`; "
        '`padding="causal"` is Keras Conv1D\'s (in PyTorch: `F.pad` on the '
        "left, then `conv1d`)."
    )


def memory_lines(index: dict, shapes, impls) -> list[str]:
    """The peak memory table: a row per shape, dtype and mode that any
    implementation ran."""
    rows = []
    for shape in shapes:
        for dtype in DTYPES:
            for mode in MODES:
                cells = []
                for impl in impls:
                    r = index.get(RowKey(shape, impl, mode, dtype))
                    if r is None or r.get("status") != "ok":
                        cells.append("—")
                        continue
                    main = _fmt_mib(r.get("peak_memory_bytes"))
                    rss = r.get("rss_peak_bytes")
                    cells.append(
                        main if impl not in JAX_IMPLS else f"{main} [{_fmt_mib(rss)}]"
                    )
                if any(c != "—" for c in cells):
                    rows.append([shape, mode, dtype, *cells])
    return [
        "",
        *_section(
            "Peak memory (MiB)",
            "JAX: the compiled executable's `memory_analysis()` (argument + output "
            "+ temp; on the CPU the convolution library's own scratch is not "
            "counted). All implementations, in brackets: argument bytes + the "
            "sampled peak rise of resident memory during one call (freed buffers "
            "returned to the OS; not sampled for in_scan).",
            ["shape", "mode", "dtype", *impls],
            rows,
        ),
    ]


def _seconds(index: dict, key: RowKey):
    """The row's median time, or None where it was not timed."""
    return index.get(key, {}).get("median_seconds")


def _ratio(index: dict, key: RowKey, over: str) -> str:
    """`key`'s time over implementation `over`'s in the same case, as text."""
    a, b = _seconds(index, key), _seconds(index, key._replace(impl=over))
    return f"{a / b:.2f}x" if a and b else "—"


def _geomean(values) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _fastest_peer(index: dict, key: RowKey):
    """`(seconds, peer)` of the fastest peer in `key`'s case (in_scan: their
    fwd+bwd, as no peer has a scan), or None where no peer was timed."""
    mode = REFERENCE_MODE[key.mode]
    times = [
        (t, p) for p in PEERS if (t := _seconds(index, key._replace(impl=p, mode=mode)))
    ]
    return min(times) if times else None


def peer_summary(records) -> list[dict]:
    """Per rank group (`rank_groups`: the 2-D shapes, then the others), dtype,
    mode and jconv implementation: its time over the fastest peer's,
    geometric mean over the shapes both timed, and on how many it is at least
    as fast, and within 5% (`NEAR_PEER`)."""
    index = _index(records)
    out = []
    for ranks in rank_groups(records):
        shapes = _shapes_of_rank(records, ranks)
        for dtype in DTYPES:
            for mode in MODES:
                for impl in JCONV_IMPLS:
                    ratios = []
                    for s in shapes:
                        key = RowKey(s, impl, mode, dtype)
                        ours, peer = _seconds(index, key), _fastest_peer(index, key)
                        if ours and peer:
                            ratios.append(ours / peer[0])
                    if ratios:
                        out.append(
                            {
                                "dtype": dtype, "mode": mode, "impl": impl,
                                "ranks": list(ranks), "shapes": len(ratios),
                                "wins": sum(r <= 1 for r in ratios),
                                "near": sum(r <= NEAR_PEER for r in ratios),
                                "geomean": _geomean(ratios),
                            }
                        )  # fmt: skip
    return out


def _shapes_of_rank(records, ranks) -> list[str]:
    """The shapes, in order of appearance, whose spatial rank is in `ranks`."""
    return list(dict.fromkeys(r["shape"] for r in records if record_rank(r) in ranks))


def peer_table_lines(records) -> list[str]:
    """The summary's table: every jconv implementation against the fastest
    peer, per mode and dtype (`peer_summary`)."""
    rows = peer_summary(records)
    if not rows:
        return []
    impls = [i for i in JCONV_IMPLS if any(r["impl"] == i for r in rows)]
    cells = {(tuple(r["ranks"]), r["dtype"], r["mode"], r["impl"]): r for r in rows}
    table = []
    for ranks in dict.fromkeys(tuple(r["ranks"]) for r in rows):
        for dtype in DTYPES:
            for mode in MODES:
                line = [cells.get((ranks, dtype, mode, i)) for i in impls]
                if any(line):
                    table.append(
                        [mode + rank_label(ranks), dtype]
                        + [
                            "—" if c is None
                            else f"{c['geomean']:.2f}x ({c['near']} of {c['shapes']})"
                            for c in line
                        ]
                    )  # fmt: skip
    return [
        "",
        "Each jconv implementation against the fastest peer "
        f"({', '.join(PEERS)}; in_scan against their fwd+bwd): the geometric "
        "mean over shapes of its time / the peer's, and (in brackets) on how "
        f"many of the shapes both timed it is within {NEAR_PEER - 1:.0%} of "
        "the peer or faster.",
        "",
        *_table(["mode", "dtype", *impls], table),
    ]


def auto_summary(records) -> list[dict]:
    """Per rank group (`rank_groups`: the 2-D shapes, then the others), dtype
    and mode: how jconv_auto compares with the fastest peer, with lax_raw, and
    with jconv_lax, over the shapes both sides timed. In in_scan, where no
    peer has a scan, the peers' times are their fwd+bwd ones (what a training
    step costs them at best)."""
    index = _index(records)
    out = []
    for ranks in rank_groups(records):
        shapes = _shapes_of_rank(records, ranks)
        for dtype in DTYPES:
            for mode in MODES:
                entry = _auto_entry(index, shapes, mode, dtype)
                if entry is not None:
                    out.append(dict(entry, ranks=list(ranks)))
    return out


def _auto_entry(index: dict, shapes, mode: str, dtype: str) -> dict | None:
    """`auto_summary`'s entry for one mode and dtype over `shapes`; None
    where jconv_auto timed none of them."""
    auto = {
        s: t
        for s in shapes
        if (t := _seconds(index, RowKey(s, "jconv_auto", mode, dtype)))
    }
    if not auto:
        return None
    peer_mode = REFERENCE_MODE[mode]  # in_scan: the peers' fwd+bwd
    peer = {
        s: best
        for s in auto
        if (best := _fastest_peer(index, RowKey(s, "jconv_auto", mode, dtype)))
    }
    raw = {
        s: t for s in auto if (t := _seconds(index, RowKey(s, "lax_raw", mode, dtype)))
    }
    slower = []
    for s in auto:
        lax = index.get(RowKey(s, "jconv_lax", mode, dtype), {})
        if lax.get("median_seconds") and auto[s] > lax["median_seconds"]:
            ours = index[RowKey(s, "jconv_auto", mode, dtype)]
            same = ours.get("program_digest") is not None and ours.get(
                "program_digest"
            ) == lax.get("program_digest")
            slower.append(
                {
                    "shape": s,
                    "ratio": auto[s] / lax["median_seconds"],
                    "same_program": same,
                }
            )
    return {
        "dtype": dtype,
        "mode": mode,
        "peer_mode": peer_mode,
        "shapes_vs_peer": len(peer),
        "wins_vs_peer": sum(auto[s] <= peer[s][0] for s in peer),
        "near_peer": sum(auto[s] <= NEAR_PEER * peer[s][0] for s in peer),
        "geomean_vs_peer": _geomean([auto[s] / peer[s][0] for s in peer])
        if peer
        else None,
        "fastest_peer": {s: p for s, (_, p) in peer.items()},
        "shapes_vs_lax_raw": len(raw),
        "wins_vs_lax_raw": sum(auto[s] <= raw[s] for s in raw),
        "geomean_vs_lax_raw": _geomean([auto[s] / raw[s] for s in raw])
        if raw
        else None,
        "slower_than_jconv_lax": sorted(slower, key=lambda w: -w["ratio"]),
    }


def _ratios(rows) -> str:
    return ", ".join(f"{w['shape']} {w['ratio']:.2f}x" for w in rows)


def summary_lines(records) -> list[str]:
    """One line per (dtype, mode), the 2-D shapes' first, then the other
    ranks' (their bold head names them): jconv_auto against the fastest peer
    (torch, keras_tf: on how many shapes at least as fast, within 5%, the
    geometric mean of the time ratios), against lax_raw, and where it is
    slower than jconv_lax."""
    lines = []
    for a in auto_summary(records):
        head = f"- **{a['mode']}, {a['dtype']}{rank_label(a['ranks'])}**"
        if a["peer_mode"] != a["mode"]:
            head += f" (peers have no scan: against their {a['peer_mode']})"
        if a["shapes_vs_peer"]:
            text = (
                f"{head}: jconv_auto at least as fast as the fastest peer on "
                f"{a['wins_vs_peer']} of {a['shapes_vs_peer']} shapes (within "
                f"{NEAR_PEER - 1:.0%} of it on {a['near_peer']}), geometric "
                f"mean jconv_auto / fastest peer {a['geomean_vs_peer']:.2f}x"
            )
        else:
            text = f"{head}: no peer timed"
        if a["shapes_vs_lax_raw"]:
            text += (
                f"; against lax_raw: {a['wins_vs_lax_raw']} of "
                f"{a['shapes_vs_lax_raw']}, {a['geomean_vs_lax_raw']:.2f}x"
            )
        slower = [w for w in a["slower_than_jconv_lax"] if not w["same_program"]]
        noise = [w for w in a["slower_than_jconv_lax"] if w["same_program"]]
        if slower:
            text += "; slower than jconv_lax on " + _ratios(slower)
        else:
            text += "; never slower than jconv_lax"
        if noise:
            text += f" (and by timing noise, same program, on {_ratios(noise)})"
        lines.append(text + ".")
    return lines or ["jconv_auto was not timed."]


def scan_ratios(index: dict, shapes) -> list[dict]:
    """in_scan / fwd+bwd time per shape, dtype and JAX implementation."""
    out = []
    for shape in shapes:
        for dtype in DTYPES:
            for impl in JAX_IMPLS:
                scan = _seconds(index, RowKey(shape, impl, "in_scan", dtype))
                top = _seconds(index, RowKey(shape, impl, "fwd+bwd", dtype))
                if scan and top:
                    out.append(
                        {"shape": shape, "dtype": dtype, "impl": impl,
                         "ratio": scan / top}
                    )  # fmt: skip
    return out


def scan_lines(index: dict, shapes) -> list[str]:
    """The in_scan / fwd+bwd table and whether every jconv row meets the
    target."""
    ratios = scan_ratios(index, shapes)
    if not ratios:
        return []
    impls = [i for i in JAX_IMPLS if any(r["impl"] == i for r in ratios)]
    by_key = {(r["shape"], r["dtype"], r["impl"]): r["ratio"] for r in ratios}
    rows = []
    for shape in shapes:
        for dtype in DTYPES:
            cells = [by_key.get((shape, dtype, i)) for i in impls]
            if any(c is not None for c in cells):
                text = ["—" if c is None else f"{c:.2f}x" for c in cells]
                rows.append([shape, dtype, *text])
    lines = [
        "",
        *_section(
            "Inside lax.scan against top level (fwd+bwd)",
            "Time per step in a 10-step jitted `lax.scan` over the top-level "
            "fwd+bwd time (for shapes with `inner_iters > 1` both are loops of "
            f"that many steps). Target: at most {SCAN_RATIO_TARGET}x for every "
            "jconv implementation. lax_raw, differentiated by JAX, loses "
            "XLA:CPU's fast convolutions in a loop body (jax-ml/jax#12868); it "
            "has a column where `config.in_scan_impls` names it.",
            ["shape", "dtype", *impls],
            rows,
        ),
    ]
    over = [
        r for r in ratios if r["impl"] in JCONV_IMPLS and r["ratio"] > SCAN_RATIO_TARGET
    ]
    ours = [r for r in ratios if r["impl"] in JCONV_IMPLS]
    lines.append("")
    if over:
        lines.append(
            f"Over {SCAN_RATIO_TARGET}x: "
            + ", ".join(
                f"{r['impl']} {r['shape']} {r['dtype']} {r['ratio']:.2f}x" for r in over
            )
            + f" ({len(over)} of {len(ours)} jconv rows)."
        )
    elif ours:
        worst = max(ours, key=lambda r: r["ratio"])
        lines.append(
            f"Every jconv row within {SCAN_RATIO_TARGET}x ({len(ours)} rows; the "
            f"largest {worst['ratio']:.2f}x, {worst['impl']} {worst['shape']} "
            f"{worst['dtype']})."
        )
    return lines


def problem_lines(problems) -> list[str]:
    """One line per row not timed; rows skipped or refused for one reason
    (the peers in in_scan, the peers on a GPU machine) share a line."""
    groups: dict[tuple, list[dict]] = {}
    lines = []
    for r in problems:
        if r["status"] in ("skipped", "unsupported"):
            groups.setdefault((r["impl"], r["status"], r.get("reason")), []).append(r)
        else:
            lines.append(f"- {' '.join(RowKey.of(r))}: {_problem(r)}")
    for (impl, status, reason), rows in groups.items():
        if len(rows) == 1:
            lines.append(f"- {' '.join(RowKey.of(rows[0]))}: {_problem(rows[0])}")
            continue
        modes = ", ".join(dict.fromkeys(r["mode"] for r in rows))
        lines.append(
            f"- {impl} ({len(rows)} rows: {modes}; "
            f"{', '.join(dict.fromkeys(r['shape'] for r in rows))}; "
            f"{', '.join(dict.fromkeys(r['dtype'] for r in rows))}): "
            f"{status}: {reason}"
        )
    return lines


def _problem(record) -> str:
    """Why a row was not timed; for a wrong answer, the error it had."""
    text = f"{record['status']}: {record.get('reason', '')}"
    if record["status"] == "mismatch":
        check = record["check"]
        errors = ", ".join(f"{n} {e:.2g}" for n, e in check["errors"].items())
        text += (
            f" (error max|out - ref| / max|ref|: {errors}; "
            f"tolerance {check['tolerance']:g})"
        )
    return text


def failures(results: dict) -> list[str]:
    """What fails the run, one line each: a jconv row that is not ok (a wrong
    answer, or it did not run) unless the config left it out, and a worker
    that died. A peer's wrong answer is a finding, shown in results.md, and
    is not here."""
    out = [
        f"{'/'.join(RowKey.of(r))} {_problem(r)}"
        for r in results["records"]
        if r["status"] == "failed"
        or (r["impl"] in JCONV_IMPLS and r["status"] != "ok" and not r.get("by_config"))
    ]
    race = results.get("kernel_race") or {}
    return out + [f"race {side}: {e}" for side, e in race.get("errors", {}).items()]


def _first_per_shape(records) -> list[dict]:
    seen = {}
    for r in records:
        if "x_shape" in r:
            seen.setdefault(r["shape"], r)
    return list(seen.values())


def _case_line(r) -> str:
    text = (
        f"`{r['shape']}` x{tuple(r['x_shape'])} k{tuple(r['kernel_shape'])} "
        f"{r['padding']}"
    )
    if any(v != 1 for v in r["strides"]):
        text += f" stride {_per_axis_text(r['strides'])}"
    if r.get("dilation_rate"):
        text += f" dilation {_per_axis_text(r['dilation_rate'])}"
    if r["groups"] > 1:
        text += f" groups {r['groups']}"
    return text + (f", {r['inner_iters']} per call" if r["inner_iters"] > 1 else "")


def _per_axis_text(values) -> str:
    """`2` for `[2, 2]`, `(2, 1)` for `[2, 1]`."""
    return str(values[0]) if len(set(values)) == 1 else str(tuple(values))


def overhead_lines(index: dict, shapes) -> list[str]:
    """jconv_lax against raw lax: inside jit (same compiled program, so any
    gap is noise) and per eager Python call (jconv's argument checks)."""
    rows, ranks = [], set()
    for shape in shapes:
        for dtype in DTYPES:
            ours = index.get(RowKey(shape, "jconv_lax", "fwd", dtype), {})
            raw = index.get(RowKey(shape, "lax_raw", "fwd", dtype), {})
            if not (ours.get("median_seconds") and raw.get("median_seconds")):
                continue
            eager = ""
            if ours.get("eager_call_seconds") and raw.get("eager_call_seconds"):
                eager = (
                    f"{_fmt_s(ours['eager_call_seconds'])} vs "
                    f"{_fmt_s(raw['eager_call_seconds'])}"
                )
            same = {True: "yes", False: "no"}.get(
                ours.get("same_program_as_lax_raw"), "?"
            )
            ratio = ours["median_seconds"] / raw["median_seconds"]
            rows.append([shape, dtype, same, f"{ratio:.2f}", eager])
            ranks.add(record_rank(ours))
    if not rows:
        return []
    api = "`jconv.conv2d`"
    if ranks - {2}:
        api += " or, for the 1-D and 3-D rows, `jconv.conv`"
    return _section(
        "jconv_lax against raw lax (forward)",
        "Whether jconv's compiled program equals raw lax's (instructions "
        "compared with names stripped; if so, a time ratio away from 1 is "
        "timing noise), the time ratio of the jitted calls, and one eager "
        f"Python call of {api} (argument checks, then its jit) vs a "
        "jitted `lax.conv_general_dilated`.",
        [
            "shape",
            "dtype",
            "same program",
            "jconv_lax / lax_raw",
            "eager call: jconv vs lax",
        ],
        rows,
    )


def peer_wins(records) -> list[dict]:
    """Cases where a peer beats every jconv implementation, by how much."""
    index = _index(records)
    out = []
    for key, r in index.items():
        if key.impl not in ("torch", "keras_tf") or r.get("status") != "ok":
            continue
        ours = [
            index.get(key._replace(impl=j), {}).get("median_seconds")
            for j in JCONV_IMPLS
        ]
        ours = [t for t in ours if t]
        if ours and r["median_seconds"] < min(ours):
            out.append(
                {
                    "shape": key.shape, "mode": key.mode, "dtype": key.dtype,
                    "peer": key.impl, "speedup": min(ours) / r["median_seconds"],
                }
            )  # fmt: skip
    return sorted(out, key=lambda w: -w["speedup"])


def _tolerances(records) -> dict:
    return {r["dtype"]: r["check"]["tolerance"] for r in records}


def race_lines(race: dict) -> list[str]:
    lines = [f"Task: {race['task']}.", ""]
    if race.get("errors"):
        lines += [f"- {side}: {err}" for side, err in race["errors"].items()]
    if "speedup_vs_keras" in race:
        lines += [
            f"Same optimiser ({race['optimizer']}, learning rate "
            f"{race['learning_rate']}), {race['steps']} steps:",
            "",
            "| | wall time | compile / first call | kernel max error | final loss |",
            "|---|---|---|---|---|",
            f"| jconv ({race['jconv_impl']}, jitted lax.scan) | "
            f"{_fmt_s(race['jconv_seconds'])} | "
            f"{_fmt_s(race['jconv_compile_seconds'])} | "
            f"{race['jconv_kernel_max_abs_error']:.2g} | "
            f"{race['jconv_final_loss']:.2g} |",
            f"| Keras model.fit (TensorFlow, jit_compile="
            f"{race['keras_jit_compile']}) | {_fmt_s(race['keras_seconds'])} | "
            f"{_fmt_s(race['keras_first_fit_seconds'])} | "
            f"{race['keras_kernel_max_abs_error']:.2g} | "
            f"{race['keras_final_loss']:.2g} |",
            f"| Keras model.fit, jit_compile=True, steps_per_execution="
            f"{race['steps']} | {_fmt_s(race['keras_fastest_seconds'])} | "
            f"{_fmt_s(race['keras_fastest_first_fit_seconds'])} | "
            f"{race['keras_fastest_kernel_max_abs_error']:.2g} | |",
            "",
            f"Speed-up over Keras' `model.fit` with its defaults: "
            f"**{race['speedup_vs_keras']:.0f}x** warm "
            f"({race['speedup_vs_keras_including_compile']:.1f}x counting "
            "compile/tracing on both sides); over its fastest settings: "
            f"{race['speedup_vs_keras_fastest']:.1f}x. jconv per impl: "
            + ", ".join(
                f"{i} {_fmt_s(s)}" for i, s in race["jconv_seconds_by_impl"].items()
            )
            + ".",
        ]
    if race.get("to_target"):
        lines += [
            "",
            f"Time to a kernel max error of {race['target_error']:g} (jitted "
            "while_loop, compile excluded):",
            "",
            "| optimiser | steps | wall time | compile | reached |",
            "|---|---|---|---|---|",
        ]
        for name, r in race["to_target"].items():
            lines.append(
                f"| {name} | {r['steps']} | {_fmt_s(r['seconds'])} | "
                f"{_fmt_s(r['compile_seconds'])} | "
                f"{'yes' if r['reached'] else 'no'} |"
            )
    if race.get("closed_form"):
        lines.append("")
        for name, r in race["closed_form"].items():
            lines.append(
                f"- closed form, {name}: {_fmt_s(r['seconds'])} "
                f"(kernel error {r['kernel_max_abs_error']:.2g}, compile "
                f"{_fmt_s(r['compile_seconds'])})"
            )
    if "time_to_target_vs_floor" in race:
        lines += [
            "",
            f"Best optimiser `{race['best_optimizer']}`: "
            f"{_fmt_s(race['time_to_target_seconds'])} to "
            f"{race['target_error']:g}, "
            f"{race['time_to_target_vs_lstsq']:.2f}x the lstsq solve and "
            f"{race['time_to_target_vs_floor']:.2f}x the fastest closed form.",
        ]
    return lines


def plot_times(results: dict, path) -> pathlib.Path:
    """Median time per shape per implementation, one panel per (dtype, mode)."""
    plt = plots.pyplot()
    ok = _index(r for r in results["records"] if r.get("status") == "ok")
    shapes = list(dict.fromkeys(r["shape"] for r in results["records"]))
    impls = [i for i in IMPL_ORDER if any(r["impl"] == i for r in results["records"])]
    panels = [(d, m) for d in DTYPES for m in MODES]
    fig, axes = plt.subplots(
        len(DTYPES), len(MODES), figsize=(6.5 * len(MODES), 8), dpi=100, squeeze=False
    )
    width = 0.8 / max(len(impls), 1)
    for ax, (dtype, mode) in zip(axes.ravel(), panels):
        for j, impl in enumerate(impls):
            xs, ys = [], []
            for i, shape in enumerate(shapes):
                r = ok.get(RowKey(shape, impl, mode, dtype))
                if r is not None:
                    xs.append(i + (j - (len(impls) - 1) / 2) * width)
                    ys.append(r["median_seconds"] * 1e3)
            if xs:
                ax.bar(xs, ys, width=width, label=impl)
        ax.set_yscale("log")
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels(shapes, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("ms per convolution (log)")
        ax.set_title(f"{mode}, {dtype}")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    # On the first panel with bars (one dtype run leaves a row empty).
    for ax in axes.ravel():
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
            break
    return plots.write_figure(
        fig, path, suptitle="Median time per convolution (lower is better)"
    )


def plot_race(race: dict, path) -> pathlib.Path:
    """Wall times of the race (log scale) and jconv's loss curve."""
    plt = plots.pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.5), dpi=100)
    bars = {}
    if "keras_seconds" in race:
        bars["Keras fit"] = race["keras_seconds"]
        bars["Keras first fit (1 step)"] = race["keras_first_fit_seconds"]
        bars["Keras fit, XLA, one call"] = race["keras_fastest_seconds"]
    for impl, s in race.get("jconv_seconds_by_impl", {}).items():
        bars[f"jconv {impl} (scan)"] = s
    if "jconv_compile_seconds" in race:
        bars["jconv compile"] = race["jconv_compile_seconds"]
    for name, r in race.get("to_target", {}).items():
        if r["reached"]:
            bars[f"to {race['target_error']:g}: {name}"] = r["seconds"]
    for name, r in race.get("closed_form", {}).items():
        bars[f"closed form: {name}"] = r["seconds"]
    names = list(bars)
    ax.barh(range(len(names)), [bars[n] for n in names], color="tab:blue")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log)")
    ax.set_title(f"{race['steps']} steps of {race['optimizer']}")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    for impl, r in race.get("jconv", {}).items():
        curve = r["loss_curve"]
        keep = [(s, v) for s, v in zip(curve["step"], curve["loss"]) if v > 0]
        if keep:
            ax2.plot(*zip(*keep), label=f"jconv {impl}")
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_ylabel("training loss (mse)")
    ax2.set_title("jconv loss per step")
    ax2.grid(True, which="both", alpha=0.3)
    if race.get("jconv"):
        ax2.legend()
    return plots.write_figure(fig, path)


def summary(results: dict, outputs) -> dict:
    """summary.json: counts by status, jconv_auto against the others (the
    results.md summary), the race's headline numbers and the files written."""
    counts = {}
    for r in results["records"]:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    race = results.get("kernel_race") or {}
    keys = (
        "speedup_vs_keras", "jconv_seconds", "keras_seconds",
        "time_to_target_seconds", "floor_seconds", "time_to_target_vs_floor",
    )  # fmt: skip
    return {
        "records_by_status": counts,
        "all_checks_passed": counts.get("mismatch", 0) == 0
        and counts.get("failed", 0) == 0,
        "failures": failures(results),
        "jconv_auto": auto_summary(results["records"]),
        "jconv_vs_fastest_peer": peer_summary(results["records"]),
        "in_scan_over_fwd_bwd": scan_ratios(
            _index(results["records"]),
            list(dict.fromkeys(r["shape"] for r in results["records"])),
        ),
        "kernel_race": {k: race[k] for k in keys if k in race},
        "outputs": list(outputs),
    }
