//! User processes as a whole: memory back after many, a TLB shoot-down
//! between threads of one, kill and watchpoints per thread group, the
//! exit-to-user reschedule.

use super::*;

/// Processes give back every frame: user pages, page-table pages, the top
/// level and the kernel stack, after 1000 of them ran and exited.
#[test]
fn frames_and_page_table_pages_all_return_after_1000_processes() {
    let run = boot("run true; meminfo; run-many 1000 true; meminfo; poweroff");
    run.expect_status(0).expect("run-many: 1000 runs of true: 1000 exited with status 0, 0 did not\n");
    let free = lines_starting(&run, "frames: ");
    assert_eq!(free.len(), 2);
    assert_eq!(dec_after(free[0], "usable, "), dec_after(free[1], "usable, "), "{free:?}");
}

/// `bench syscall` under QEMU's instruction counter: with both hardenings
/// off every `getpid` round trip costs the same number of instructions
/// (min = median); erasing the stack on the way out costs more.
#[test]
fn bench_syscall_is_exact_under_icount_and_stack_erasing_costs_instructions() {
    let timeout = TIMEOUT_SECS.to_string();
    let run = runner(&[
        "--timeout",
        &timeout,
        "--icount",
        "--",
        "hardening stackleak off; hardening randomize_kstack_offset off; bench syscall; \
         hardening stackleak on; bench syscall; poweroff",
    ]);
    run.expect_status(0);
    let row = "bench: syscall round trip (getpid, from user mode) ";
    let lines = lines_starting(&run, row);
    assert_eq!(lines.len(), 2, "{run}");
    let figures = |l: &str| {
        let n: Vec<u64> = l[row.len()..].split_whitespace().filter_map(|w| w.parse().ok()).collect();
        (n[0], n[1])
    };
    let (off_min, off_median) = figures(lines[0]);
    let (on_min, _) = figures(lines[1]);
    assert!(off_min > 100 && off_min == off_median, "no hardening: {}", lines[0]);
    assert!(on_min > off_min, "stack erasing cost nothing? {} vs {}", lines[1], lines[0]);
}

/// A process with two threads on two CPUs: one unmaps a page the other is
/// reading. The unmap shoots the page out of the reader's TLB before the
/// frame is freed, so the reader's next read faults and the segfault ends
/// the whole process (without the shoot-down it reads on: the program then
/// says so and exits 1). Nothing leaks across two such processes.
#[test]
fn munmap_shoots_down_the_tlb_of_another_thread_of_the_process() {
    let run = boot_smp(2, "run uthreads; userstate; meminfo; run uthreads; meminfo; poweroff");
    run.expect_status(0).expect_not("never faulted").expect_not("Oops");
    let started = lines_starting(&run, "uthreads: reader thread ");
    let faults = lines_starting(&run, "uthreads[");
    assert_eq!((started.len(), faults.len()), (2, 2), "{run}");
    for (s, f) in started.iter().zip(&faults) {
        let reader = dec_after(s, "reader thread ");
        assert!(f.starts_with(&format!("uthreads[{reader}]: segfault at 403000 ip ")), "{f}");
    }
    let ends = lines_starting(&run, "run: uthreads[");
    assert!(ends.iter().all(|l| l.ends_with("killed by signal 11")), "{ends:?}");
    // The two threads ran on different CPUs: both made syscalls.
    let rows = userstate_rows(&run, 0);
    assert!(rows.iter().all(|r| r[SYSCALLS] > 0), "{rows:?}");
    let free = lines_starting(&run, "frames: ");
    assert_eq!(dec_after(free[0], "usable, "), dec_after(free[1], "usable, "), "{free:?}");
}

/// `kill PID` is SIGKILL: it ends the whole process, every thread of it,
/// not just the thread named.
#[test]
fn kill_ends_every_thread_of_the_process() {
    let run = boot("run --bg hold 3; sleep 50; ps; kill 4; ps; poweroff");
    run.expect_status(0);
    let ps_before = run.line_index("tristack> kill 4");
    let lines = run.kernel_lines();
    let holds = |from: usize, to: usize| lines[from..to].iter().filter(|l| l.starts_with("hold  ")).count();
    assert_eq!(holds(0, ps_before), 3, "{run}");
    run.expect("run: hold[4] killed by signal 9\n");
    assert_eq!(holds(ps_before + 1, lines.len()), 0, "a thread of the killed process survived:\n{run}");
}

/// Debug registers belong to the CPU, breakpoints to a thread: on one CPU,
/// another thread of the process writes the watched variable 100 times and
/// never traps (the switch disarms DR3 for it); the owner's one write does.
/// (With the disarm left out, the other thread's writes trapped.)
#[test]
fn a_watchpoint_traps_only_the_thread_that_set_it() {
    let run = boot("run watch threads --cpu 1; poweroff");
    run.expect_status(0);
    let owner = line_starting(&run, "watch: breakpoint armed on ");
    let owner = owner.rsplit(' ').next().unwrap();
    let other = line_starting(&run, "watch: thread ");
    assert!(
        other.ends_with(" wrote the watched variable 100 times") && !other.contains(&format!(" {owner} ")),
        "{run}"
    );
    let traps = lines_starting(&run, "#DB (data breakpoint 3, write) from user mode: watch[");
    assert_eq!(traps.len(), 1, "{traps:#?}");
    assert!(
        traps[0].starts_with(&format!("#DB (data breakpoint 3, write) from user mode: watch[{owner}] ")),
        "{traps:#?}"
    );
    run.expect_not("more breakpoints in user mode");
    run.expect("watch: the write completed (value 42), back in user mode\n");
}

/// Creating a thread on this CPU asks it to reschedule; the way back to
/// user mode honours that, so the new thread runs before its creator's
/// next user instruction (20 of 20 ran only a timer tick later when the
/// exit path did not look).
#[test]
fn a_reschedule_asked_for_in_a_syscall_happens_before_the_return_to_user() {
    let run = boot("run uthreads wake --cpu 1; poweroff");
    run.expect_status(0);
    let line = line_starting(&run, "uthreads: ");
    let late: u32 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{run}"));
    // Without the fix all 20 were late. A time slice that ends while the new
    // thread is still in the kernel lets the creator run first, as it should:
    // under host load guest time jumps and that happened once in 20 (CI).
    assert!(late <= 2, "{late} of 20 late:\n{run}");
    assert!(line.ends_with(" of 20 new threads ran only after their creator was back in user mode"), "{run}");
}
