//! The IST exception stacks: the live table, #BP, nested #DB, NMI, #MC, #DF.

use crate::common::*;

struct Row {
    ty: String,
    bottom: u64,
    top: u64,
    size: u64,
    guard: Option<(u64, u64)>,
    via: String,
}

fn stacks_rows(run: &Run, cpu: u32) -> Vec<Row> {
    run.kernel_lines()
        .into_iter()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 6 || w[0].parse::<u32>().ok() != Some(cpu) {
                return None;
            }
            let guard = w[5].split_once('-').map(|(lo, hi)| (hex(lo), hex(hi)));
            Some(Row {
                ty: w[1].into(),
                bottom: hex(w[2]),
                top: hex(w[3]),
                size: w[4].parse().unwrap(),
                guard,
                via: w[w.len() - 1].into(),
            })
        })
        .collect()
}

#[test]
fn stacks_table_shows_linux_ordering_guards_and_ist_slots() {
    let run = boot("stacks; poweroff");
    run.expect_status(0);
    let rows = stacks_rows(&run, 0);
    let ex: Vec<&Row> = rows.iter().filter(|r| r.top >= 0xffff_fe00_0000_0000).collect();
    let types: Vec<&str> = ex.iter().map(|r| r.ty.as_str()).collect();
    assert_eq!(types, ["#DF", "NMI", "#DB2", "#DB1", "#DB", "#MC"], "{run}");
    let via: Vec<&str> = ex.iter().map(|r| r.via.as_str()).collect();
    assert_eq!(via, ["IST1", "IST2", "IST3-2", "IST3-1", "IST3", "IST4"], "{run}");
    for (i, r) in ex.iter().enumerate() {
        let want = if r.ty == "#DB2" { 0 } else { 8192 };
        assert_eq!((r.size, r.top - r.bottom), (want, want), "{} size:\n{run}", r.ty);
        // Every stack has an unmapped guard page right below it...
        let (lo, hi) = r.guard.unwrap_or_else(|| panic!("{} has no guard:\n{run}", r.ty));
        assert_eq!((lo, hi), (r.bottom - 4096, r.bottom - 1), "{} guard:\n{run}", r.ty);
        // ... and sits above the previous stack (lowest address first).
        if i > 0 {
            assert!(lo >= ex[i - 1].top, "{} overlaps {}:\n{run}", r.ty, ex[i - 1].ty);
        }
    }
    // DB_STACK_OFFSET = EXCEPTION_STKSZ + PAGE_SIZE between DB, DB1 and DB2 tops.
    assert_eq!(ex[4].top - ex[3].top, 12288, "{run}");
    assert_eq!(ex[3].top - ex[2].top, 12288, "{run}");
    // The boot task's stack is listed too, with its guard.
    let task = rows.iter().find(|r| r.ty == "TASK").unwrap_or_else(|| panic!("{run}"));
    assert!(task.guard.is_some() && task.size >= 16384, "{run}");
}

#[test]
fn int3_runs_on_the_db_stack_and_returns() {
    let run = boot("int3; poweroff");
    run.expect_status(0);
    let line = line_starting(&run, "int3: #BP handled on the ");
    assert!(line.contains("on the #DB stack") && line.contains("on TASK"), "{line}");
    // The shell ran on after the handler returned.
    assert!(run.line_index("int3: returned to the shell") > run.line_index(line), "{run}");
}

/// The `db: level N:` lines of a run, as (level, stack, interrupted stack).
fn db_levels(run: &Run) -> Vec<(String, String, String)> {
    run.kernel_lines()
        .into_iter()
        .filter(|l| l.starts_with("db: level "))
        .map(|l| {
            let stack = l.split("#DB on the ").nth(1).unwrap().split(' ').next().unwrap();
            let interrupted = l.split("interrupted RSP on ").nth(1).unwrap().split(';').next().unwrap();
            (l[10..11].to_string(), stack.to_string(), interrupted.to_string())
        })
        .collect()
}

#[test]
fn db_1_runs_on_db_and_restores_the_ist_slot() {
    let run = boot("db 1; poweroff");
    run.expect_status(0);
    assert_eq!(db_levels(&run), [("1".into(), "#DB".into(), "TASK".into())], "{run}");
    let before = hex_after(line_starting(&run, "db: arming"), "TSS IST[DB] = ");
    let during = hex_after(line_starting(&run, "db: level 1"), "TSS IST[DB] now ");
    let after = hex_after(line_starting(&run, "db: back from level 1"), "TSS IST[DB] = ");
    assert_eq!((before - during, after), (12288, before), "{run}");
}

#[test]
fn db_2_nests_onto_db1() {
    let run = boot("db 2; poweroff");
    run.expect_status(0);
    assert_eq!(
        db_levels(&run),
        [("1".into(), "#DB".into(), "TASK".into()), ("2".into(), "#DB1".into(), "#DB".into())],
        "{run}"
    );
}

#[test]
fn db_3_pushes_into_the_db2_hole_and_oopses() {
    let run = boot("db 3; echo survived");
    run.expect_status(1).expect_no_line("survived");
    assert_eq!(db_levels(&run).len(), 2, "{run}");
    let bug = line_starting(&run, "BUG: #DB2 stack guard page was hit at ");
    let (hit, bottom) = (hex_after(bug, "hit at "), hex_after(bug, "(stack is "));
    // The hole has no pages: the push lands in the guard page just below it.
    assert!(hit < bottom && hit >= bottom - 4096, "{bug}");
    let oops = run.line_index("Oops: stack guard page: 0002 [#1] SMP");
    assert!(oops > run.line_index(bug), "{run}");
    // The handler ran on DB1 (the #PF went onto the healthy stack below).
    line_starting(&run, "Exception stack: #DB1 ");
    line_starting(&run, "---[ end trace ");
    // The trace crosses DB1, then DB, then the task, each bracketed by markers.
    let lines = run.kernel_lines();
    let start = run.line_index("Call Trace:") + 1;
    let n = lines[start..].iter().take_while(|l| l.starts_with(' ')).count();
    let trace = &lines[start..start + n];
    let at = |m: &str| trace.iter().position(|l| *l == m).unwrap_or_else(|| panic!("no {m:?} in {trace:#?}"));
    assert!(
        at(" <#DB1>") < at(" </#DB1>") && at(" </#DB1>") < at(" <#DB>") && at(" <#DB>") < at(" </#DB>"),
        "{trace:#?}"
    );
    let names = symbolized_frames(trace);
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap_or_else(|| panic!("{n} not in {names:?}"));
    assert!(pos("tristack::demos::ist::db_target_2") < pos("tristack::demos::ist::db_target_1"), "{names:?}");
    assert!(pos("tristack::demos::ist::db_target_1") < pos("tristack::demos::ist::db"), "{names:?}");
    // The shell is init: an oops there cannot be survived (Linux panics too).
    run.expect("\nKernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n");
}

#[test]
fn nmi_from_thread_context_runs_on_the_nmi_stack() {
    let run = boot("nmi; nmi; poweroff");
    run.expect_status(0);
    let lines: Vec<&str> = run.kernel_lines().into_iter().filter(|l| l.starts_with("nmi: NMI #")).collect();
    assert_eq!(lines.len(), 2, "{run}");
    assert!(lines[0].starts_with("nmi: NMI #1 on CPU 0 handled on the NMI stack"), "{run}");
    assert!(lines[1].starts_with("nmi: NMI #2 on CPU 0") && lines[1].ends_with("on TASK"), "{run}");
}

#[test]
fn nmi_inside_a_db_handler_interrupts_the_db_stacks() {
    let run = boot("db 1 nmi; db 2 nmi; poweroff");
    run.expect_status(0);
    let nmis: Vec<&str> = run.kernel_lines().into_iter().filter(|l| l.starts_with("db: NMI #")).collect();
    assert_eq!(nmis.len(), 2, "{run}");
    assert!(nmis[0].contains("handled on the NMI stack") && nmis[0].ends_with("on #DB"), "{run}");
    assert!(nmis[1].contains("handled on the NMI stack") && nmis[1].ends_with("on #DB1"), "{run}");
}

#[test]
fn watch_fires_a_data_write_breakpoint_on_the_db_stack() {
    let run = boot("watch; poweroff");
    run.expect_status(0);
    let armed = hex_after(line_starting(&run, "watch: arming DR0"), "writes to ");
    let hit = line_starting(&run, "watch: write to ");
    assert_eq!(hex_after(hit, "write to "), armed, "{run}");
    assert!(hit.ends_with("#DB ran on the #DB stack"), "{hit}");
    // The debug registers belong to the CPU: the demo must not be
    // preemptible while DR0 is armed, or another thread could hit it.
    assert!(hit.contains(", writer's interrupts off;"), "{hit}");
}

#[test]
fn int_18_runs_the_mce_handler_on_the_mce_stack() {
    let run = boot("mce; poweroff");
    run.expect_status(0);
    let line = line_starting(&run, "mce: CPU 0: #MC handler ran on the ");
    assert!(line.contains("on the #MC stack") && line.contains("MCIP clear"), "{line}");
}

#[test]
fn an_injected_machine_check_is_reported_per_bank_and_resumed() {
    let timeout = TIMEOUT_SECS.to_string();
    let run = runner_steps(
        &["--timeout", &timeout],
        Some(b"mce wait; poweroff"),
        vec![(
            // The whole line: an #MC injected mid-print would land inside it.
            "mce: waiting for machine check (QEMU monitor: mce ...); Ctrl-C cancels\n",
            Action::Monitor("mce 0 1 0xb200000000000000 0x5 0x1234 0x0".into()),
        )],
    );
    run.expect_status(0);
    run.expect("\nmce: CPU 0: Machine Check: bank 1 status 0xb200000000000000 addr 0x1234 misc 0x0\n");
    let resumed = line_starting(&run, "mce: CPU 0: handled on the #MC stack");
    assert!(resumed.contains("MCG_STATUS 0x5: RIPV set, resuming"), "{resumed}");
    run.expect("mce: machine check seen, back in the shell");
}

#[test]
fn a_machine_check_without_ripv_in_a_thread_panics_instead_of_killing_it() {
    // #MC context is interrupt context (Linux nmi_enter): the oops cannot be
    // survived by killing the thread that happened to run on CPU 1.
    let timeout = TIMEOUT_SECS.to_string();
    let run = runner_steps(
        &["--timeout", &timeout],
        Some(b"mce wait --cpu 1; poweroff"),
        vec![(
            "mce: waiting for machine check (QEMU monitor: mce ...); Ctrl-C cancels\n",
            Action::Monitor("mce 1 1 0xb200000000000000 0x4 0x1234 0x0".into()),
        )],
    );
    run.expect_status(1);
    run.expect("mce: CPU 1: MCG_STATUS 0x4: RIPV clear, cannot resume\n");
    let oops = run.line_index("Oops: machine check: 0000 [#1] SMP");
    assert!(run.kernel_lines()[oops + 1].starts_with("CPU: 1 PID: "), "{run}");
    run.expect("\nKernel panic - not syncing: Fatal exception in interrupt\n");
    run.expect_not("oops: killed");
}

/// An #MC inside an NMI handler while a second NMI is pending: the #MC must
/// not return with IRET (which unblocks NMIs), or the pending NMI starts
/// over on the live NMI stack (before the fix: a jump to 0x1 and a panic).
#[test]
fn an_mce_inside_an_nmi_does_not_let_the_next_nmi_in() {
    let run = boot("nmi-mce; nmi-mce --cpu 1; poweroff");
    run.expect_status(0);
    assert_eq!(run.serial.matches("nmi-mce: 2 NMIs ran; NMI stack re-entered while live: 0\n").count(), 2, "{run}");
    run.expect("mce: CPU 1: #MC handler ran on the #MC stack");
}

#[test]
fn doublefault_that_is_not_an_overflow() {
    let run = boot("doublefault");
    run.expect_status(1);
    let panic = run.line_index("PANIC: double fault, error_code: 0x0");
    assert_eq!(run.kernel_lines()[panic + 1], "Oops: double fault: 0000 [#1] SMP", "{run}");
    run.expect_not("guard page was hit");
    line_starting(&run, "Exception stack: #DF ");
    // The #DE that could not be delivered was the divide in divide_error.
    line_starting(&run, "RIP: 0010:tristack::arch::x86_64::cpu::divide_error+0x");
    line_starting(&run, "---[ end trace ");
}

#[test]
fn a_survived_doublefault_on_an_ap_gives_the_de_gate_back() {
    // The IDT is shared: the gate `doublefault` removes must be present
    // again once its thread is killed, on every CPU. The oops is the
    // demo's point, so the command line goes on (docs/ist.md).
    let run = boot("doublefault --cpu 1; echo survived; ktest exception_gates_present; poweroff");
    run.expect_status(0);
    run.expect("doublefault: (expected oops) this thread (");
    run.expect("Oops: double fault: 0000 [#1] SMP");
    run.expect("doublefault: (expected oops) its thread on CPU 1 (doublefault/1, pid ");
    run.expect("\nsurvived\n");
    run.expect("ktest exception_gates_present ... ok\n1 passed, 0 failed\n");
}

#[test]
fn an_nmi_injected_from_the_monitor_runs_on_the_nmi_stack() {
    let timeout = TIMEOUT_SECS.to_string();
    let run = runner_steps(
        &["--timeout", &timeout],
        Some(b"nmi wait; poweroff"),
        vec![("nmi: waiting for an NMI (QEMU monitor: nmi); Ctrl-C cancels\n", Action::Monitor("nmi".into()))],
    );
    run.expect_status(0);
    let line = line_starting(&run, "nmi: NMI #1 on CPU 0 handled on the ");
    // QEMU's `nmi` reaches every CPU at a moment of its choosing: CPU 0 is
    // spinning in the shell thread or, now and then, in an interrupt
    // handler (the timer tick). Either way the handler runs on the NMI stack.
    assert!(line.contains("on the NMI stack") && (line.ends_with("on TASK") || line.ends_with("on IRQ")), "{line}");
}

#[test]
fn a_fault_inside_the_oops_prints_one_line_and_stops() {
    let run = boot("nested-oops");
    run.expect_status(1);
    let first = run.line_index("Oops: invalid opcode: 0000 [#1] SMP");
    let second = run.kernel_lines()[first + 1];
    assert!(
        second.starts_with("Oops: invalid opcode at RIP ffffffff8")
            && second.ends_with("inside the oops path; stopping"),
        "{run}"
    );
    // Stopped: no register block, no second header, no end marker.
    run.expect_not("RAX:").expect_not("[#2]").expect_not("---[ end trace");
}
