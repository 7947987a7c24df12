//! The stack tools on the real kernel ELF: checkstack's list and the
//! compiler's figures, the frame-size gate, the worst case per entry point.

use std::process::Command;

use crate::common::*;

const CHECKSTACK: &str = env!("CARGO_BIN_FILE_CHECKSTACK_checkstack");

/// checkstack on the kernel the runner boots: (exit status, stdout).
fn checkstack(args: &[&str]) -> (Option<i32>, String) {
    let elf = runner(&["--kernel-elf"]).serial.trim().to_string();
    let out = Command::new(CHECKSTACK).arg(&elf).args(args).output().expect("run checkstack");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `0xADDR name [kernel]:<tabs>SIZE` lines, as (name, size).
fn listed(out: &str) -> Vec<(String, u64)> {
    out.lines()
        .filter(|l| l.starts_with("0xffffffff8"))
        .map(|l| {
            let (left, size) = l.rsplit_once(":\t").unwrap_or_else(|| panic!("not checkstack's shape: {l:?}"));
            let name = left.split_once(' ').unwrap().1.strip_suffix(" [kernel]").expect("[kernel] tag");
            (name.to_string(), size.trim_start_matches('\t').parse().unwrap())
        })
        .collect()
}

#[test]
fn checkstack_lists_the_demo_hogs_first_with_the_compilers_sizes() {
    let (status, out) = checkstack(&[]);
    assert_eq!(status, Some(0), "{out}");
    let list = listed(&out);
    assert!(list.len() > 20 && list.iter().all(|(_, s)| *s >= 100), "{out}");
    assert!(list.windows(2).all(|w| w[0].1 >= w[1].1), "not largest first:\n{out}");
    // The deliberate hogs of the overflow and stackleak demos are near the top.
    let top: Vec<&str> = list[..6].iter().map(|(n, _)| n.as_str()).collect();
    for hog in [
        "tristack::demos::threads::recurse",
        "tristack::demos::irq::irq_recurse",
        "tristack::user::syscall::stackleak_plant",
    ] {
        assert!(top.contains(&hog), "{hog} not in the top 6: {top:?}");
        // ... with the compiler's own figure: not among the disagreements.
        assert!(!out.contains(&format!("disagree: {hog} at")), "{out}");
    }
    // Almost every function compared with .stack_sizes, and they agree.
    let summary = out.lines().find(|l| l.starts_with("checkstack: ") && l.contains(".stack_sizes")).unwrap();
    let n: Vec<u64> = summary.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    // [functions, dynamic, entries, compared, disagree]: at least 4 in 5
    // functions have a compiler figure (the rest are assembly, or come
    // precompiled from core), and under 1% of those disagree.
    assert!(n[3] > 500 && n[3] * 5 >= n[0] * 4 && n[4] * 100 < n[3], "{summary}");
}

#[test]
fn the_frame_size_gate_fails_above_the_limit_unless_allowed() {
    let (status, out) = checkstack(&["--threshold", "100000", "--frame-warn", "1000"]);
    assert_eq!(status, Some(1), "{out}");
    let recurse =
        listed(&checkstack(&[]).1).into_iter().find(|(n, _)| n == "tristack::demos::threads::recurse").unwrap();
    assert!(
        out.contains(&format!(
            "checkstack: error: the frame size of {} bytes is larger than 1000 bytes: tristack::demos::threads::recurse\n",
            recurse.1
        )),
        "{out}"
    );
    let allow = concat!(env!("CARGO_MANIFEST_DIR"), "/../checkstack/frame-warn-allow.txt");
    let (status, out) = checkstack(&["--threshold", "100000", "--frame-warn", "1024", "--allow", allow]);
    assert_eq!(status, Some(0), "{out}");
    assert!(out.contains(" over the limit, 0 not allowed\n"), "{out}");
}

#[test]
fn every_entry_point_has_a_worst_case_within_its_stack() {
    let (status, out) = checkstack(&["--threshold", "100000", "--entries"]);
    assert_eq!(status, Some(0), "{out}");
    for (entry, size) in [
        ("thread start  TASK", 16384),
        ("syscall       TASK", 16384),
        ("IRQ           IRQ ", 16384),
        ("#DF           #DF ", 8192),
        ("NMI           NMI ", 8192),
        ("#DB           #DB ", 8192),
        ("#MC           #MC ", 8192),
    ] {
        let row = out.lines().find(|l| l.trim_start().starts_with(entry)).unwrap_or_else(|| panic!("{entry}:\n{out}"));
        let n: Vec<u64> = row.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
        let (worst, of, left) = (n[n.len() - 3], n[n.len() - 2], n[n.len() - 1]);
        assert!(worst > 100 && of == size && left == size - worst, "{row}");
    }
    // The syscall entry reaches the kstack demo's recursion: reported, not followed.
    assert!(
        out.contains("recursion (not bounded by this figure) at: tristack::user::syscall::kstack_recurse"),
        "{out}"
    );
}

/// `stack-trace KIND`'s rows: (depth, size, location).
fn trace_rows(run: &Run, kind: &str) -> Vec<(u64, u64, String)> {
    let lines = run.kernel_lines();
    let start = lines
        .iter()
        .position(|l| l.starts_with(&format!("stack-trace: {kind} stack, recorded on CPU ")))
        .unwrap_or_else(|| panic!("no {kind} table:\n{run}"));
    assert_eq!(lines[start + 2].trim(), "-----    ----   --------", "{run}");
    lines[start + 3..]
        .iter()
        .take_while(|l| l.contains(") "))
        .map(|l| {
            let (_, rest) = l.split_once(") ").unwrap();
            let mut w = rest.split_whitespace();
            let depth = w.next().unwrap().parse().unwrap();
            let size = w.next().unwrap().parse().unwrap();
            (depth, size, w.next().unwrap().to_string())
        })
        .collect()
}

/// The tracer, filtered to the overflow demo's recursion, records its
/// deepest chain on the task stack: Linux's table, whose sizes add up to
/// the depth, and every `recurse` frame exactly as big as checkstack reads
/// it from the code (its frame plus the return address).
#[test]
fn the_tracer_records_the_overflow_recursion_and_agrees_with_checkstack() {
    let run = boot("stacktrace; stacktrace-filter *recurse; overflow; stack-trace TASK; stack-max-size; poweroff");
    run.expect_status(0);
    let rows = trace_rows(&run, "TASK");
    let max: u64 = run.kernel_lines()[run.line_index("tristack> stack-max-size") + 1].parse().unwrap();
    assert_eq!(rows[0].0, max, "{run}");
    assert_eq!(rows.iter().map(|r| r.1).sum::<u64>(), max, "{run}");
    assert!(rows.windows(2).all(|w| w[0].0 > w[1].0), "{run}");
    // The demo's thread dies at its guard page, a little over 16 KiB down.
    assert!(max > 14 * 1024 && max < 16 * 1024, "{run}");
    let frame =
        listed(&checkstack(&[]).1).into_iter().find(|(n, _)| n == "tristack::demos::threads::recurse").unwrap().1;
    let recursions: Vec<_> =
        rows[1..].iter().filter(|r| r.2.starts_with("tristack::demos::threads::recurse+")).collect();
    assert!(recursions.len() >= 10, "{run}");
    // Row 0 is where the maximum was taken (inside the innermost call);
    // each later `recurse` row is a whole caller frame: its stack size plus
    // the return address it pushed for the call below.
    assert_eq!(rows[0].1, frame, "{run}");
    for r in &recursions {
        assert_eq!(r.1, frame + 8, "{r:?} vs checkstack's {frame}:\n{run}");
    }
}

/// Tables of their own for the IRQ and NMI stacks (Linux's tracer skips
/// interrupt stacks); `reset` clears every maximum.
#[test]
fn irq_and_nmi_stacks_get_tables_of_their_own_and_reset_clears_them() {
    let run = boot(
        "stacktrace; irqnest 3; nmi; stack-trace IRQ; stack-trace NMI; stack-max-size IRQ; \
         stack-tracer off; stack-tracer reset; stack-max-size IRQ; stack-trace NMI; poweroff",
    );
    run.expect_status(0);
    let irq = trace_rows(&run, "IRQ");
    assert!(irq.iter().any(|r| r.2.starts_with("tristack::demos::irq::irqnest_handler+")), "{run}");
    let nmi = trace_rows(&run, "NMI");
    assert!(nmi.iter().any(|r| r.2.starts_with("tristack::arch::x86_64::entry::nmi::handle+")), "{run}");
    let sizes: Vec<&str> = run.kernel_lines().into_iter().filter(|l| l.starts_with("IRQ ")).collect();
    assert_eq!(sizes.len(), 2, "{run}");
    assert_eq!(sizes[0], format!("IRQ {}", irq[0].0), "{run}");
    assert_eq!(sizes[1], "IRQ 0", "{run}");
    run.expect("stack-trace: NMI: nothing recorded");
}

/// The hook runs in NMI context thousands of times a second on every CPU
/// without deadlock or a lost count.
#[test]
fn the_tracer_stays_safe_under_an_nmi_storm() {
    let run = boot_smp(4, "stacktrace; nmi-storm 2; stack-trace NMI; stack-trace #DB1; poweroff");
    run.expect_status(0).expect("nmi-storm: ok, every count adds up");
    assert!(!trace_rows(&run, "NMI").is_empty() && !trace_rows(&run, "#DB1").is_empty(), "{run}");
}

/// Runtime and static agree, frame by frame: every row of every table the
/// tracer recorded (task, IRQ, #DF, NMI, #DB, #DB1, #MC) has the size the
/// code gives that frame at that call, as checkstack decodes it.
#[test]
fn every_frame_the_tracer_records_has_the_size_the_code_gives_it() {
    let run = boot("stacktrace; overflow; irqnest 3; db 2 nmi; mce; stack-trace; poweroff");
    run.expect_status(0);
    let log = std::env::temp_dir().join(format!("{}.log", token("stack-trace")));
    std::fs::write(&log, &run.serial).unwrap();
    let (status, out) = checkstack(&["--check-trace", log.to_str().unwrap()]);
    let (_, entries) = checkstack(&["--threshold", "100000", "--entries", "--indirect-from", log.to_str().unwrap()]);
    let _ = std::fs::remove_file(&log);
    assert_eq!(status, Some(0), "{out}\n{run}");
    let numbers =
        |l: &str| -> Vec<u64> { l.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect() };
    let summary = out.lines().find(|l| l.starts_with("checkstack: trace check: ")).unwrap();
    let n = numbers(summary);
    // [tables, agree, disagree, not compared]
    assert!(n[0] == 7 && n[1] >= 50 && n[2] == 0, "{summary}");
    // Runtime within static: each table's deepest depth is bounded by the
    // static worst case below the calls of its chain (the calls through
    // pointers it took added to the graph).
    let summary =
        out.lines().find(|l| l.starts_with("checkstack: depth bound: 7 tables")).unwrap_or_else(|| panic!("{out}"));
    let n = numbers(summary);
    // [tables, within, of them below a recursion, disagree]
    assert!(n[0] == 7 && n[1] == 7 && n[3] == 0, "{summary}");
    // Where the chain does not recurse, the bound is the whole entry's: from
    // the entry stub's call into its handler.
    for (kind, stub) in
        [("IRQ", "tristack_irq_common"), ("NMI", "tristack_paranoid_common"), ("#DB", "tristack_debug_common")]
    {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("checkstack: depth bound: {kind:<5} ")))
            .unwrap_or_else(|| panic!("{kind}:\n{out}"));
        assert!(line.contains(&format!(" where {stub} calls ")) && line.contains(" within "), "{line}");
    }
    // The entries table's model of each stub matches the depth the tracer
    // saw there: every interrupt and exception stack is entered through one
    // (the task table's deepest chain may start in an interrupt instead of
    // at the thread's start).
    assert!(!out.contains("DISAGREE"), "{out}");
    for kind in ["IRQ", "#DF", "NMI", "#DB", "#DB1", "#MC"] {
        assert!(out.contains(&format!("checkstack: entry model: {kind:<5} tristack_")), "{kind}:\n{out}");
    }
    // With the calls through pointers the run took, the per-entry worst case
    // covers what one entry reached (the IRQ table nests three entries; the
    // #DF one nests formatting, a cycle the search does not follow).
    for kind in ["NMI", "#DB", "#MC"] {
        let line = out.lines().find(|l| l.starts_with(&format!("checkstack: depth bound: {kind:<5} "))).unwrap();
        let row = entries
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{kind:<13} {kind:<5}")))
            .unwrap_or_else(|| panic!("{entries}"));
        assert!(numbers(line)[0] <= numbers(row)[0], "{line}\n{row}");
    }
}
