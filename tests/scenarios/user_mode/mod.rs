//! User mode: ring-3 processes, syscalls on the thread stack, IST entries
//! from user mode moved to the thread stack, the kernel stack empty while
//! a thread is in user space, user faults, and the two hardenings.

mod processes;

use crate::common::*;

/// The user stack's guard page (layout.rs: USER_TOP - USER_STACK_SIZE - one page).
const USER_TOP: u64 = (1 << 47) - 4096;
const USER_STACK_GUARD: std::ops::Range<u64> = USER_TOP - 0x10000 - 0x1000..USER_TOP - 0x10000;

/// The number after `key` (decimal) in `line`.
fn dec_after(line: &str, key: &str) -> i64 {
    let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key:?} not in {line:?}")) + key.len()..];
    rest.trim_start().split(|c: char| !c.is_ascii_digit() && c != '-').next().unwrap().parse().unwrap()
}

/// `userstate` columns, in order.
const CPU: usize = 0;
const SYSCALLS: usize = 1;
const SYSRET: usize = 2;
const IRET: usize = 3;
const SYSCALL_IRET: usize = 4;
const BAD_IRET: usize = 5;
const USER_IRQS: usize = 6;
const ON_IRQ_STACK: usize = 7;
const MOVED_OFF_IST: usize = 8;
const USER_NMIS: usize = 9;
const VIOLATIONS: usize = 10;

/// The rows of the `nth` `userstate` table.
fn userstate_rows(run: &Run, nth: usize) -> Vec<[u64; 11]> {
    let header = "CPU  syscalls   sysret     iret  sys-iret  bad-iret  user-IRQs  on-IRQ-stack  moved-off-IST  user-NMIs  violations";
    let lines = run.kernel_lines();
    let start = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == header)
        .nth(nth)
        .unwrap_or_else(|| panic!("no userstate #{nth}:\n{run}"))
        .0
        + 1;
    lines[start..]
        .iter()
        .take_while(|l| l.starts_with("  ") && l.split_whitespace().count() == 11)
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().map(|w| w.parse().unwrap()).collect();
            v.try_into().unwrap()
        })
        .collect()
}

/// A program runs in ring 3 with its arguments, its syscalls come back by
/// SYSRET, and the syscall dispatcher runs on its 16 KiB thread stack just
/// below the frame (the depth `stack_info` reports is inside the stack).
#[test]
fn a_program_runs_in_ring_3_and_its_syscalls_run_on_its_thread_stack() {
    let word = token("arg");
    let run = boot(&format!("run hello {word} two; userstate; poweroff"));
    run.expect_status(0);
    let hello = line_starting(&run, "hello from user space: pid ");
    assert!(hello.ends_with(&format!("args '{word} two'")), "{hello}");
    let pid = dec_after(hello, "pid ");
    let depth = dec_after(line_starting(&run, "hello: syscalls run "), "syscalls run ");
    // Below the 176-byte frame and the random offset (< 1 KiB + 16), far from the bottom.
    assert!((176..4096).contains(&depth), "dispatcher depth {depth}");
    run.expect(&format!("run: hello[{pid}] exited with status 0"));
    let rows = userstate_rows(&run, 0);
    let (syscalls, sysret): (u64, u64) = (rows.iter().map(|r| r[SYSCALLS]).sum(), rows.iter().map(|r| r[SYSRET]).sum());
    // getpid, write x2, stack_info; exit never returns.
    assert!(syscalls >= 4 && sysret >= 3, "{rows:?}");
    assert!(rows.iter().all(|r| r[VIOLATIONS] == 0), "return-to-user violations: {rows:?}");
}

/// `int3`, a hardware data breakpoint and single-stepping in user mode
/// arrive on the #DB IST stack, are moved to the thread stack (sync_regs)
/// and handled there, each #DB named by its cause in DR6; the program
/// carries on.
#[test]
fn int3_and_a_data_breakpoint_from_user_mode_are_handled_on_the_task_stack() {
    let run = boot("run int3; run watch; run int3 single-step; userstate; poweroff");
    run.expect_status(0);
    // TF set by popfq: a trap after each of the next four instructions.
    let steps = lines_starting(&run, "#DB (single-step) from user mode: int3[");
    assert_eq!(steps.len(), 4, "{run}");
    assert!(steps.iter().all(|l| l.contains("; handled on the TASK stack (frame ffffc9")), "{steps:#?}");
    let bp = line_starting(&run, "int3 from user mode: int3[");
    assert!(bp.contains("; handled on the TASK stack (frame ffffc9"), "{bp}");
    run.expect("int3: back in user mode after the breakpoint\n");
    let db = line_starting(&run, "#DB (data breakpoint 3, write) from user mode: watch[");
    assert!(db.contains("; handled on the TASK stack (frame ffffc9"), "{db}");
    run.expect("watch: the write completed (value 42), back in user mode\n");
    // The frame sits at the very top of the thread stack: top - 176, and
    // stacks are 16 KiB aligned blocks, so the offset in the block is fixed.
    let frame = hex_after(db, "(frame ");
    assert_eq!(frame % 0x4000, 0x4000 - 176, "frame {frame:#x} not at the top of its stack");
    let moved: u64 = userstate_rows(&run, 0).iter().map(|r| r[MOVED_OFF_IST]).sum();
    assert!(moved >= 2, "frames moved off IST stacks: {moved}");
    assert!(lines_starting(&run, "run: int3[").iter().all(|l| l.ends_with("exited with status 0")));
    assert!(lines_starting(&run, "run: watch[").iter().all(|l| l.ends_with("exited with status 0")));
}

/// While a CPU spins in user mode: `ps` shows the thread in user mode with
/// an empty kernel stack; an NMI from another CPU (`userstate`) lands in
/// user mode and is handled on the thread stack with its frame alone at
/// the top, irq_count -1 and the #DB stack idle; `bt-all` shows the trace
/// ending in the user registers; the process then finishes normally.
#[test]
fn an_nmi_while_a_cpu_spins_in_user_mode_is_handled_on_the_task_stack_and_the_process_continues() {
    let run = boot_smp(
        2,
        "run --cpu 1 --bg spin 4000; sleep 300; ps; stacks; ps; stacks; ps; stacks; userstate; bt-all; bt-all; bt-all; \
         bt-ipi 1; wait; poweroff",
    );
    run.expect_status(0);
    let started = line_starting(&run, "run: spin[");
    let pid = dec_after(started, "spin[");
    // `ps` and `stacks` say whether the spinner is in user mode right now
    // (now and then a tick or a clock check has it in the kernel: three
    // looks, at least one in user mode).
    let ps: Vec<&str> = lines_starting(&run, "spin ");
    assert_eq!(ps.len(), 3, "{run}");
    assert!(ps
        .iter()
        .all(|l| l.ends_with("  1   16K user (kernel stack empty)") || l.ends_with("  1   16K user, in kernel")));
    assert!(ps.iter().any(|l| l.ends_with("  1   16K user (kernel stack empty)")), "{ps:#?}");
    let rows: Vec<&str> = lines_starting(&run, "  1 TASK  ").into_iter().filter(|l| l.contains(" spin")).collect();
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert!(rows.iter().any(|l| l.ends_with(&format!("pid {pid} spin (in user mode: empty)"))), "{rows:#?}");
    // Timer interrupts hit the spinner in user mode: the frame went on its
    // thread stack, every handler ran on CPU 1's IRQ stack.
    let cpu1 = userstate_rows(&run, 0).into_iter().find(|r| r[CPU] == 1).expect("a row for CPU 1");
    assert!(cpu1[USER_IRQS] >= 10 && cpu1[ON_IRQ_STACK] == cpu1[USER_IRQS], "{cpu1:?}");
    let probe = line_starting(&run, &format!("spin[{pid}] cpu 1: user mode at ip 0x4"));
    for part in [
        "NMI handled on the TASK stack (its frame alone at the top: the stack was empty)",
        "irq_count -1",
        "#DB depth 0, IST[DB] at its top",
        "NMI/#MC handlers 1 (this one)",
    ] {
        assert!(probe.contains(part), "{part:?} missing: {probe}");
    }
    // bt-all: CPU 1's trace is taken on its task stack and ends at the user
    // frame. (Its NMI may also catch the spinner in the kernel for a moment,
    // a tick or a clock check: then the trace starts <NMI>. Three tries.)
    let lines = run.kernel_lines();
    let from_user = (0..lines.len())
        .filter(|&i| lines[i] == "NMI backtrace for cpu 1")
        .filter(|&at| {
            assert_eq!(lines[at + 1], format!("CPU: 1 PID: {pid} Comm: spin"));
            let trace = trace_from(&run, at);
            let end = at + 2 + 1 + trace.len();
            trace.last().unwrap().contains("tristack_exception_from_user")
                && lines[end].starts_with("RIP: 0033:0x4")
                && lines[end + 1].starts_with("RSP: 002b:00007fff")
        })
        .count();
    assert!(from_user >= 1, "no NMI backtrace of CPU 1 from user mode:\n{run}");
    // bt-ipi: an interrupt from user mode (or from a syscall of spin's)
    // runs on CPU 1's IRQ stack; the trace crosses to the task stack and
    // ends with the user registers.
    let at = run.line_index("IPI backtrace for cpu 1");
    assert_eq!(lines[at + 1], format!("CPU: 1 PID: {pid} Comm: spin"));
    let trace = trace_from(&run, at);
    let (open, close) = (trace.iter().position(|l| *l == " <IRQ>"), trace.iter().position(|l| *l == " </IRQ>"));
    assert!(matches!((open, close), (Some(0), Some(c)) if c > 1), "{trace:#?}");
    assert!(trace.iter().any(|l| l.contains("tristack_irq_common")), "{trace:#?}");
    assert!(lines[at + 3 + trace.len()].starts_with("RIP: 0033:0x4"), "{}", lines[at + 3 + trace.len()]);
    run.expect("spin: done after 4000 ms\n").expect(&format!("run: spin[{pid}] exited with status 0"));
}

/// QEMU's monitor `nmi` reaches the CPU spinning in user mode: the NMI
/// from user mode is counted there, and the process goes on to finish.
/// (`nmi` arrives through each CPU's LINT1, which, as in Linux, only the
/// boot CPU leaves unmasked: so the spinner runs on CPU 0, while the shell
/// sleeps waiting for input.)
#[test]
fn a_monitor_nmi_on_a_cpu_in_user_mode_is_handled_and_the_process_continues() {
    let timeout = TIMEOUT_SECS.to_string();
    let run = runner_steps(
        &["--smp", "2", "--timeout", &timeout],
        Some(b"run --cpu 0 --bg spin 3000"),
        // The NMIs go while the shell sleeps, so CPU 0 runs the spinner:
        // most land in user mode (the spinner's clock checks and ticks
        // take it into the kernel now and then, hence several).
        vec![
            ("spinning in user mode", Action::Type(b"sleep 1500\n".to_vec())),
            ("sleep 1500", Action::Pause(std::time::Duration::from_millis(300))),
            ("", Action::Monitor("nmi".into())),
            ("", Action::Pause(std::time::Duration::from_millis(200))),
            ("", Action::Monitor("nmi".into())),
            ("", Action::Pause(std::time::Duration::from_millis(200))),
            ("", Action::Monitor("nmi".into())),
            ("sleep: 1500 ms asked", Action::Type(b"userstate\n".to_vec())),
            ("user-NMIs  violations", Action::Type(b"wait\n".to_vec())),
            ("exited with status", Action::Type(b"poweroff\n".to_vec())),
        ],
    );
    run.expect_status(0);
    let cpu0 = userstate_rows(&run, 0).into_iter().find(|r| r[CPU] == 0).expect("a row for CPU 0");
    assert!(cpu0[USER_NMIS] >= 1, "no NMI from user mode counted on CPU 0: {cpu0:?}\n{run}");
    assert!(cpu0[VIOLATIONS] == 0, "violations: {cpu0:?}");
    run.expect("spin: done after 3000 ms\n");
    let ended = lines_starting(&run, "run: spin[");
    assert!(ended.last().unwrap().ends_with("exited with status 0"), "{ended:?}");
}

/// #PF, #UD, #GP and a user stack overflow each print Linux's line and end
/// only the process; the shell and the next program carry on.
#[test]
fn every_user_fault_kind_ends_only_the_process() {
    let run = boot("run segv; run ud2; run gpf; run ustack-overflow; run hello; poweroff");
    run.expect_status(0).expect_not("Oops").expect_not("BUG:");
    let segv = line_starting(&run, "segv[");
    assert!(segv.contains("]: segfault at 0 ip 0000000000400") && segv.contains(" error 6 in segv[400000+"), "{segv}");
    let ud2 = line_starting(&run, "traps: ud2[");
    assert!(ud2.contains("] trap invalid opcode ip:400") && ud2.contains(" error:0 in ud2[400000+"), "{ud2}");
    let gpf = line_starting(&run, "traps: gpf[");
    assert!(gpf.contains("] general protection fault ip:400"), "{gpf}");
    let so = line_starting(&run, "ustack-overflow[");
    let addr = hex_after(so, "segfault at ");
    assert!(USER_STACK_GUARD.contains(&addr), "fault at {addr:#x}, not in the user stack guard {USER_STACK_GUARD:x?}");
    assert!(line_starting(&run, "run: segv[").ends_with("killed by signal 11"));
    assert!(line_starting(&run, "run: ud2[").ends_with("killed by signal 4"));
    assert!(line_starting(&run, "run: gpf[").ends_with("killed by signal 11"));
    assert!(line_starting(&run, "run: ustack-overflow[").ends_with("killed by signal 11"));
    assert!(line_starting(&run, "run: hello[").ends_with("exited with status 0"));
}

/// A syscall that recurses past 16 KiB overflows the thread stack: #DF,
/// an oops whose trace runs from the recursion to the syscall entry and
/// ends with the user registers; only that process dies.
#[test]
fn a_kernel_stack_overflow_from_a_syscall_oopses_and_kills_only_that_process() {
    let run = boot("run kstack 8000; run kstack 20000; run hello; userstate; poweroff");
    run.expect_status(0);
    let ok = line_starting(&run, "kstack: the syscall reached ");
    assert!((8000..8600).contains(&dec_after(ok, "reached ")), "{ok}");
    let bug = line_starting(&run, "BUG: TASK stack guard page was hit at ");
    let oops = run.line_index("Call Trace:");
    assert!(
        run.kernel_lines()[..oops].iter().any(|l| l.starts_with("RIP: 0010:tristack::user::syscall::kstack_recurse+")),
        "{run}"
    );
    let trace = trace_from(&run, oops);
    let frames = symbolized_frames(&trace);
    let n = frames.len();
    assert!(n >= 3, "{trace:#?}");
    assert_eq!(frames[n - 2], "tristack::arch::x86_64::entry::syscall::do_syscall_64", "{trace:#?}");
    assert_eq!(frames[n - 1], "tristack_entry_SYSCALL_64", "{trace:#?}");
    let lines = run.kernel_lines();
    let end = oops + 1 + trace.len();
    assert!(lines[end].starts_with("RIP: 0033:0x4"), "{}\n{bug}", lines[end]);
    assert!(lines[end + 1].starts_with("RSP: 002b:00007fff") && lines[end + 1].ends_with("ORIG_RAX: 00000000000003e8"));
    assert!(lines[end + 2].starts_with("RAX: ffffffffffffffda "), "RAX preset to -ENOSYS: {}", lines[end + 2]);
    assert!(line_starting(&run, "oops: killed kstack (").contains("stays until it is reaped"));
    let killed = lines_starting(&run, "run: kstack[");
    assert!(killed[0].ends_with("exited with status 0") && killed[1].ends_with("killed by an oops"), "{killed:?}");
    assert!(line_starting(&run, "run: hello[").ends_with("exited with status 0"));
}

/// A syscall that rewrites its return frame (as `rt_sigreturn` does)
/// cannot return by SYSRET (RCX no longer matches): it returns by IRET.
/// A non-canonical RIP (CVE-2012-0217's case for SYSRET) ends in a #GP of
/// the process (QEMU, like AMD, raises it at the user fetch); a bad SS makes
/// the IRET itself fault in the kernel with the user's GS loaded, and the
/// entry's fix-up turns that into the process's #GP. Only the process dies.
#[test]
fn a_rewritten_return_frame_returns_by_iret_and_a_faulting_iret_kills_only_the_process() {
    let run = boot(
        "run sysret canonical; userstate; run sysret noncanonical; run sysret badss; userstate; run hello; poweroff",
    );
    run.expect_status(0).expect_not("Oops").expect_not("BUG:");
    let landed = line_starting(&run, "sysret: landed at 0x4");
    assert!(landed.ends_with(": the kernel returned by IRET"), "{landed}");
    run.expect_no_line("sysret: returned to the caller?");
    let before = userstate_rows(&run, 0);
    assert_eq!(before.iter().map(|r| r[SYSCALL_IRET]).sum::<u64>(), 1, "{before:?}");
    assert_eq!(before.iter().map(|r| r[BAD_IRET]).sum::<u64>(), 0, "{before:?}");
    let gps = lines_starting(&run, "traps: sysret[");
    assert_eq!(gps.len(), 2, "{gps:?}");
    assert!(gps[0].contains("] general protection fault ip:8000000000000000 sp:7fff"), "{}", gps[0]);
    // The #GP's error code is the bad selector (0x18, RPL dropped).
    assert!(
        gps[1].contains("] general protection fault ip:400") && gps[1].contains(" error:18 in sysret["),
        "{}",
        gps[1]
    );
    let after = userstate_rows(&run, 1);
    assert_eq!(after.iter().map(|r| r[SYSCALL_IRET]).sum::<u64>(), 3, "{after:?}");
    assert_eq!(after.iter().map(|r| r[BAD_IRET]).sum::<u64>(), 1, "the bad-SS IRET was fixed up: {after:?}");
    assert_eq!(after.iter().map(|r| r[VIOLATIONS]).sum::<u64>(), 0, "{after:?}");
    let ends = lines_starting(&run, "run: sysret[");
    assert!(ends[0].ends_with("exited with status 0"), "{ends:?}");
    assert!(ends[1..].iter().all(|l| l.ends_with("killed by signal 11")), "{ends:?}");
    assert!(line_starting(&run, "run: hello[").ends_with("exited with status 0"));
}

/// Hostile syscalls get errors: -ENOSYS, -EFAULT for null, kernel,
/// unmapped and wrapping pointers, -EBADF.
#[test]
fn bad_syscall_numbers_and_pointers_return_errors() {
    let run = boot("run badcalls; poweroff");
    run.expect_status(0).expect("badcalls: 23 of 23 answered as expected\n").expect_not("WRONG");
    assert!(line_starting(&run, "run: badcalls[").ends_with("exited with status 0"));
}

/// RANDOMIZE_KSTACK_OFFSET: 1000 syscalls see dozens of distinct depths
/// within Linux's 10-bit range; switched off, one.
#[test]
fn kstack_offset_1000_sees_many_distinct_offsets_within_linuxs_range() {
    let run = boot("kstack-offset 1000; hardening randomize_kstack_offset off; kstack-offset 300; poweroff");
    run.expect_status(0);
    let lines = lines_starting(&run, "kstack-offset: ");
    let on = lines.iter().find(|l| l.starts_with("kstack-offset: 1000 syscalls")).expect("the 1000-call line");
    let distinct = dec_after(on, "syscalls, ");
    let spread = dec_after(on, "(spread ");
    // x86-64 masks to 10 bits and aligns to 16: at most 65 values, 1024 bytes.
    assert!((32..=65).contains(&distinct), "{on}");
    assert!((512..=1024).contains(&spread), "{on}");
    let off = lines.iter().find(|l| l.starts_with("kstack-offset: 300 syscalls")).expect("the 300-call line");
    assert!(off.contains(" 1 distinct offsets") && off.contains("(spread 0)"), "{off}");
}

/// STACKLEAK: with erasing on, what one syscall left on the stack is gone
/// by the next; off, the next syscall finds it.
#[test]
fn stack_erasing_hides_what_a_syscall_left_behind() {
    let run = boot("run stackleak; hardening stackleak off; run stackleak; poweroff");
    run.expect_status(0);
    let found = lines_starting(&run, "stackleak: the next syscall ");
    assert_eq!(found.len(), 2, "{run}");
    assert!(found[0].contains("did not find the secret"), "erasing on: {}", found[0]);
    assert!(found[1].contains("found the secret") && !found[1].contains("did not"), "erasing off: {}", found[1]);
}

/// A thread killed by an oops hands its CPU straight to the next task
/// (`kill_current`), not through `schedule`; stack erasing must follow
/// that switch too. Here the next task is a process spinning in user mode
/// on the same CPU: its next return to user erases its own stack. When
/// only `schedule` told stack erasing which stack ran, it went on with the
/// killed thread's record and the kernel panicked ("the running stack's
/// record ... does not hold the frame"); without that check it would have
/// filled the memory between the two stacks.
#[test]
fn a_process_that_gets_the_cpu_of_a_thread_killed_by_an_oops_erases_its_own_stack() {
    // Three looks: one `ps` can catch the process inside the kernel, in a
    // timer interrupt of its CPU (a CI run did); it must be seen back in
    // user mode, running, at least once.
    let run = boot("run --bg spin --cpu 1; doublefault --cpu 1; sleep 200; ps; sleep 50; ps; sleep 50; ps; poweroff");
    run.expect_status(0).expect("doublefault: (expected oops)").expect_not("Kernel panic");
    let spin: Vec<&str> = run.kernel_lines().into_iter().filter(|l| l.starts_with("spin ")).collect();
    assert_eq!(spin.len(), 3, "{run}");
    assert!(spin.iter().all(|l| l.contains(" R ")), "{spin:?}");
    assert!(spin.iter().any(|l| l.ends_with("user (kernel stack empty)")), "{spin:?}");
}

/// Every way into the kernel from user mode on four CPUs at once —
/// syscalls, yields, #BP and #DB moved off their IST stack, timer IRQs,
/// NMIs (probes and bt-all) — and every return to user passes the check.
/// CPU 0's run is the longest: it starts last, and a run of 600 rounds
/// there once ended before a timer tick found it in user mode.
#[test]
fn the_return_to_user_check_finds_no_violation_after_a_stress_of_every_entry_kind_on_4_cpus() {
    let run = boot_smp(
        4,
        "run --cpu 1 --bg ustress 600; run --cpu 2 --bg ustress 600; run --cpu 3 --bg ustress 600; \
         userstate; userstate; bt-all; userstate; run --cpu 0 ustress 2400; wait; userstate; poweroff",
    );
    run.expect_status(0);
    assert_eq!(lines_starting(&run, "ustress: pid ").len(), 4, "{run}");
    let nth = run.kernel_lines().iter().filter(|l| l.starts_with("CPU  syscalls")).count() - 1;
    let rows = userstate_rows(&run, nth);
    assert_eq!(rows.len(), 4, "{rows:?}");
    let sum = |i: usize| rows.iter().map(|r| r[i]).sum::<u64>();
    assert!(sum(SYSCALLS) >= 4 * 600, "syscalls {rows:?}");
    assert!(sum(MOVED_OFF_IST) >= 4 * 10, "#BP/#DB frames moved off the IST stack: {rows:?}");
    assert!(rows.iter().all(|r| r[IRET] > 0 && r[USER_IRQS] > 0), "every CPU took IRQs in user mode: {rows:?}");
    assert_eq!(sum(USER_IRQS), sum(ON_IRQ_STACK), "an IRQ from user mode ran off the IRQ stack: {rows:?}");
    assert_eq!(sum(VIOLATIONS), 0, "return-to-user violations: {rows:?}");
}
