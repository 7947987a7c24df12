//! Threads on 16 KiB guarded stacks: ps, stack usage, overflow survived,
//! corrupted end magic, stress, benchmarks.

use crate::common::*;

/// `ps` rows: (name, state, free stack bytes, pid, father, cpu); the mode
/// column after the CPU is left out.
pub fn ps_rows(run: &Run) -> Vec<(String, char, u64, u32, u32, usize)> {
    run.kernel_lines()
        .into_iter()
        .filter(|l| l.len() > 17 && !l.starts_with(' ') && l.contains(" 0x00000000 "))
        .map(|l| {
            let name = l[..15].trim_end().to_string();
            let state = l.as_bytes()[16] as char;
            let w: Vec<&str> = l[17..].split_whitespace().collect();
            let flags = w.iter().position(|w| *w == "0x00000000").unwrap_or_else(|| panic!("ps row {l:?}"));
            let num = |i: usize| w[i].parse::<u64>().unwrap_or_else(|_| panic!("ps row {l:?}"));
            (name, state, num(flags - 3), num(flags - 2) as u32, num(flags - 1) as u32, num(flags + 1) as usize)
        })
        .collect()
}

#[test]
fn spawn_8_then_ps_lists_workers_with_their_free_stack() {
    let run = boot("spawn 8; ps; poweroff");
    run.expect_status(0);
    run.expect("\n  task                        PC stack   pid father            cpu  size mode\n");
    assert!(
        ps_rows(&run).len() >= 10 && lines_starting(&run, "worker-").iter().all(|l| l.ends_with(" kthread")),
        "{run}"
    );
    let rows = ps_rows(&run);
    let workers: Vec<_> = rows.iter().filter(|r| r.0.starts_with("worker-")).collect();
    assert_eq!(workers.len(), 8, "{run}");
    for (name, state, free, pid, father, _) in &workers {
        assert!(*free > 0 && *free < 16384, "{name}: free {free}:\n{run}");
        assert_eq!(*father, 1, "{name}'s father:\n{run}");
        assert!(*pid >= 2 && "RSZ".contains(*state), "{name}:\n{run}");
    }
    // The shell itself is pid 1, running, and the idle task pid 0.
    assert!(rows.iter().any(|r| r.0 == "init" && r.3 == 1 && r.1 == 'R'), "{run}");
    assert!(rows.iter().any(|r| r.0 == "swapper/0" && r.3 == 0), "{run}");
    let usage = line_starting(&run, "cpu 0 stacks, bytes never touched: IRQ ");
    assert!(usage.contains(" #DF ") && usage.contains(" #MC "), "{usage}");
}

#[test]
fn exiting_threads_report_the_greatest_stack_depth() {
    let run = boot("spawn 4; sleep 2000; ps; poweroff");
    run.expect_status(0);
    let lows: Vec<u64> = run
        .kernel_lines()
        .into_iter()
        .filter_map(|l| l.split(" used greatest stack depth: ").nth(1))
        .map(|rest| rest.trim_end_matches(" bytes left").parse().unwrap())
        .collect();
    assert!(!lows.is_empty(), "no stack-depth line:\n{run}");
    // Each new line is a new system-wide low, below THREAD_SIZE.
    assert!(lows.windows(2).all(|w| w[1] < w[0]) && lows[0] < 16384, "{lows:?}");
    // All workers exited and were reaped by the shell before `ps`.
    assert!(ps_rows(&run).iter().all(|r| !r.0.starts_with("worker-")), "{run}");
}

#[test]
fn overflow_kills_only_the_thread_and_the_shell_carries_on() {
    let run = boot("overflow; ps; poweroff");
    run.expect_status(0);
    let depths = run.kernel_lines().into_iter().filter(|l| l.starts_with("overflow: depth")).count();
    assert!(depths >= 5, "expected visible recursion:\n{run}");
    let bug = line_starting(&run, "BUG: TASK stack guard page was hit at ");
    let hit = u64::from_str_radix(&bug[38..54], 16).unwrap();
    let bottom = u64::from_str_radix(bug.split("(stack is ").nth(1).unwrap().split("..").next().unwrap(), 16).unwrap();
    assert!(hit < bottom && hit >= bottom - 4096, "{bug}");
    let oops = run.line_index("Oops: stack guard page: 0000 [#1] SMP");
    let who = run.kernel_lines()[oops + 1];
    assert!(who.starts_with("CPU: ") && who.ends_with(" Comm: overflow"), "{who}");
    line_starting(&run, "Exception stack: #DF ");
    // RSP is in the guard page (a `sub rsp` went first) or at the stack's
    // very bottom (a `push` faulted before RSP moved), as the build made it.
    let rsp = line_starting(&run, "Interrupted RSP: ");
    assert!(
        rsp.ends_with("on TASK guard page")
            || rsp.ends_with("on TASK (full: the next push lands in the guard page below)"),
        "{run}"
    );
    // The trace names the recursion, then the thread's entry, per nm.
    let lines = run.kernel_lines();
    let start = run.line_index("Call Trace:") + 1;
    let n = lines[start..].iter().take_while(|l| l.starts_with(' ')).count();
    let names = symbolized_frames(&lines[start..start + n]);
    assert!(names.iter().filter(|f| *f == "tristack::demos::threads::recurse").count() >= 5, "{names:?}");
    assert!(names.contains(&"tristack::sched::thread_main".to_string()), "{names:?}");
    let killed = run.line_index(line_starting(&run, "oops: killed overflow ("));
    // After the oops: the thread was reaped and ps ran in the living shell.
    assert!(run.line_index("tristack> ps") > killed, "{run}");
    assert!(ps_rows(&run).iter().all(|r| r.0 != "overflow"), "{run}");
    run.expect("poweroff: reporting success");
}

#[test]
fn oops_panic_turns_the_overflow_into_a_panic() {
    let run = boot("oops=panic; overflow; echo not-reached");
    run.expect_status(1).expect_no_line("not-reached");
    line_starting(&run, "BUG: TASK stack guard page was hit at ");
    run.expect("\nKernel panic - not syncing: Fatal exception\n");
    run.expect_not("oops: killed");
}

/// Killing a thread that holds a spin lock would leave the lock held for
/// ever: the oops panics instead, naming the count.
#[test]
fn an_overflow_with_a_spin_lock_held_panics_instead_of_killing_the_thread() {
    let run = boot("overflow --holding-lock; echo not-reached");
    run.expect_status(1).expect_no_line("not-reached");
    line_starting(&run, "BUG: TASK stack guard page was hit at ");
    run.expect("\nKernel panic - not syncing: Fatal exception (oops with 1 spin lock(s) held)\n");
    run.expect_not("oops: killed");
}

#[test]
fn a_corrupted_end_magic_is_caught_at_the_next_switch() {
    let run = boot("overrun; echo still-here; poweroff");
    run.expect_status(0);
    let bug = line_starting(&run, "Thread overran stack, or stack corrupted: overrun (");
    assert!(bug.ends_with("holds 0xdeadbeef"), "{bug}");
    assert_eq!(run.kernel_lines()[run.line_index(bug) + 1], "Oops: invalid opcode: 0000 [#1] SMP", "{run}");
    line_starting(&run, "oops: killed overrun (");
    assert!(run.line_index("still-here") > run.line_index(bug), "{run}");
}

#[test]
fn threads_stress_keeps_checksums_and_leaks_nothing() {
    let run = boot("threads-stress 64 10000; poweroff");
    run.expect_status(0);
    run.expect("threads-stress: 64 threads x 10000 switches: 640000 yields in ");
    run.expect(", 0 checksums bad\n").expect("threads-stress: ok, nothing leaked");
    let line = line_starting(&run, "threads-stress: free frames ");
    let nums: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    assert!(nums[0] == nums[1] && nums[2] == nums[3] && nums[4] == nums[5], "{line}");
}

#[test]
fn sleep_blocks_for_the_asked_time() {
    let run = boot("sleep 300; poweroff");
    run.expect_status(0);
    let line = line_starting(&run, "sleep: 300 ms asked, ");
    let nums: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    // 300 ms at HZ=250 is 75 jiffies; the TSC agrees within scheduling slack.
    assert!(nums[1] >= 75 && nums[2] >= 290, "{line}");
}
