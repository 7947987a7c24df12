//! The foundation: boot, command line, shell, exit statuses, memory.

use crate::common::*;

#[test]
fn poweroff_after_commands_exits_0() {
    let t = token("hello");
    let run = boot(&format!("echo {t}; poweroff"));
    run.expect_status(0);
    // The echoed token comes after the echoed command, and poweroff after it.
    let echoed = run.line_index(&t);
    assert_eq!(run.kernel_lines()[echoed - 1], format!("tristack> echo {t}"), "{run}");
    assert!(run.line_index("tristack> poweroff") > echoed, "{run}");
}

#[test]
fn fail_exits_1() {
    let t = token("before");
    let run = boot(&format!("echo {t}; fail; echo after-{t}"));
    run.expect_status(1).expect(&format!("\n{t}\n")).expect_no_line(&format!("after-{t}"));
    assert!(run.stderr.contains("kernel reported failure"), "{run}");
}

#[test]
fn unknown_command_ends_the_boot_with_an_error_naming_valid_commands() {
    let t = token("after");
    let run = boot(&format!("frobnicate now; echo {t}; poweroff"));
    run.expect_status(1).expect_no_line(&t);
    let line = run
        .kernel_lines()
        .into_iter()
        .find(|l| l.starts_with("error: unknown command"))
        .unwrap_or_else(|| panic!("no error line:\n{run}"))
        .to_string();
    assert!(line.starts_with("error: unknown command 'frobnicate'; valid commands: "), "{line}");
    for valid in ["help", "echo", "meminfo", "ktest", "panic", "triple-fault", "fail", "poweroff"] {
        assert!(line.contains(valid), "{valid} missing from {line}");
    }
}

#[test]
fn malformed_arguments_are_usage_errors() {
    let run = boot("meminfo please; poweroff");
    run.expect_status(1)
        .expect("error: meminfo: unexpected argument 'please'; usage: meminfo")
        .expect_not("poweroff: reporting success");
}

#[test]
fn panic_prints_message_location_trace_and_end_marker_then_exits_1() {
    let t = token("boom");
    let run = boot(&format!("panic {t}"));
    run.expect_status(1);
    let lines = run.kernel_lines();
    let head = lines
        .iter()
        .position(|l| l.starts_with(&format!("Kernel panic - not syncing: {t} (kernel/src/")))
        .unwrap_or_else(|| panic!("no panic line:\n{run}"));
    assert_eq!(lines[head + 1], "Call Trace:", "{run}");
    let frames = lines[head + 2..].iter().take_while(|l| l.starts_with(' ')).count();
    // The proven frames, each checked against nm on the kernel ELF, in call
    // order: the panic machinery first, then the command, the shell, the thread.
    let names = symbolized_frames(&lines[head + 2..head + 2 + frames]);
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap_or_else(|| panic!("{n} not in {names:?}"));
    assert!(pos("tristack::demos::foundation::panic_cmd") < pos("tristack::shell::repl::execute"), "{names:?}");
    assert!(pos("tristack::shell::repl::execute") < pos("tristack::boot::init_main"), "{names:?}");
    assert_eq!(names.first().map(String::as_str), Some("core::panicking::panic_fmt"), "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("tristack_thread_start"), "{names:?}");
    // Then the other CPU (the default is 2) is stopped by NMI, printing its
    // own trace, and only then the end marker.
    assert_eq!(lines[head + 2 + frames], "Sending NMI from CPU 0 to CPUs 1:", "{run}");
    let other = run.line_index("NMI backtrace for cpu 1");
    let end = run.line_index(&format!("---[ end Kernel panic - not syncing: {t} ]---"));
    assert!(head + 2 + frames < other && other < end, "{run}");
}

#[test]
fn triple_fault_exits_3() {
    let run = boot("triple-fault");
    run.expect_status(3).expect("triple-fault: loading an empty IDT");
    assert!(run.stderr.contains("guest reset without reporting"), "{run}");
}

#[test]
fn ktest_passes_and_counts_every_test() {
    let run = boot("ktest; poweroff");
    run.expect_status(0);
    let lines = run.kernel_lines();
    let ok = lines.iter().filter(|l| l.starts_with("ktest ") && l.contains(" ... ok")).count();
    let failed = lines.iter().filter(|l| l.starts_with("ktest ") && l.contains("FAILED")).count();
    assert_eq!(failed, 0, "{run}");
    assert!(ok >= 6, "{run}");
    run.expect(&format!("\n{ok} passed, 0 failed\n"));
    run.expect("ktest vmap_map_touch_free ... ok");
    // The tests that kill a thread on purpose say so before and after.
    run.expect("ktest oops_waits_for_a_sched_lock_held_elsewhere: (expected oops)");
    run.expect("ktest oops_waits_for_a_sched_lock_held_elsewhere ... ok (20 expected oopses)\n");
    // Two CPUs: the munmap-vs-copy race ran (it skips on one), and passed.
    run.expect("ktest munmap_waits_for_a_copy_in_flight ... ok\n");
    assert!(!run.serial.contains("munmap-vs-copy race needs two"), "{run}");
    // And the join-vs-exit race across two CPUs (a lost wake-up hangs it).
    run.expect("ktest join_races_the_end_on_another_cpu ... ok\n");
    assert!(!run.serial.contains("the join race needs two"), "{run}");
}

/// `ktest -q`: the verdicts only — none of the intended oopses' dumps.
#[test]
fn ktest_quiet_prints_verdicts_only() {
    let run = boot("ktest -q oops; poweroff");
    run.expect_status(0);
    run.expect("ktest oops_waits_for_a_sched_lock_held_elsewhere ... ok (20 expected oopses)\n");
    run.expect("ktest an_oops_keeps_the_next_threads_watchpoint ... ok (1 expected oops)\n");
    run.expect_not("Oops:").expect_not("Call Trace:");
}

#[test]
fn ktest_filter_that_matches_nothing_is_an_error() {
    let run = boot("ktest no_such_test; poweroff");
    run.expect_status(1).expect("error: ktest: no test name contains 'no_such_test'");
}

#[test]
fn meminfo_frames_add_up_and_vmap_is_in_the_map() {
    let run = boot("meminfo; poweroff");
    run.expect_status(0);
    let line = run
        .kernel_lines()
        .into_iter()
        .find(|l| l.starts_with("frames:"))
        .unwrap_or_else(|| panic!("{run}"))
        .to_string();
    let nums: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    // "frames:  U usable, F free, X used (4 KiB each)"
    assert!(nums.len() >= 3 && nums[0] == nums[1] + nums[2], "{line}");
    // 256 MiB guest: most of it is usable, little is used at the prompt.
    assert!(nums[0] * 4 > 200 * 1024 && nums[2] < nums[0] / 4, "{line}");
    run.expect("vmap:    0xffffc90000000000-");
}

#[test]
fn random_bytes_on_the_command_line_give_a_clear_error() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // argv cannot carry NUL; every other byte value may appear.
    let bytes: Vec<u8> = random_bytes(seed, 4096).into_iter().map(|b| b.max(1)).collect();
    let timeout = TIMEOUT_SECS.to_string();
    let run = runner_steps(&["--timeout", &timeout], Some(&bytes), Vec::new());
    assert_eq!(run.status, Some(1), "seed {seed}:\n{run}");
    assert!(
        run.serial.contains("error: command line is not valid UTF-8")
            || run.serial.contains("error: command line has control character")
            || run.serial.contains("error: unknown command"),
        "seed {seed}:\n{run}"
    );
    run.expect("tristack: the command line failed; ending the boot with failure");
}

#[test]
fn an_overlong_command_line_is_refused() {
    let long = format!("echo {}; poweroff", "x".repeat(5000));
    let run = boot(&long);
    run.expect_status(1).expect("error: command line is 5015 bytes; the limit is 4096");
}

#[test]
fn typed_commands_reach_the_interactive_shell() {
    let t = token("typed");
    let typed = format!("ech\x7fho {t}\rnosuch\rpoweroff\r");
    let timeout = TIMEOUT_SECS.to_string();
    let run = runner_steps(&["--timeout", &timeout], None, vec![("tristack> ", Action::Type(typed.into_bytes()))]);
    run.expect_status(0);
    // The line editor echoed the erase sequence, applied the backspace and ran
    // the corrected line (a command that only exists as "echo").
    run.expect(&format!("tristack> ech\x08 \x08ho {t}\n{t}\n"));
    // An unknown command at the prompt is an error, not the end of the boot.
    run.expect("error: unknown command 'nosuch'").expect("poweroff: reporting success");
}

/// Every command's bad arguments, typed at the prompt of one boot: each gets
/// a clear error naming what is valid, and the shell carries on (at the
/// prompt an error does not end the boot).
#[test]
fn bad_arguments_at_the_prompt_are_clear_errors_and_the_shell_carries_on() {
    let cases = [
        ("db 4", "error: db: N must be a number from 1 to 3, not '4'"),
        ("db", "error: db: usage: db N [nmi] (N = 1, 2 or 3 nested #DB)"),
        ("db 1 nmi extra", "error: db: usage: db N [nmi]"),
        ("mce now", "error: mce: unexpected argument 'now'; usage: mce [wait]"),
        ("stacks all", "error: stacks: unexpected argument 'all'"),
        ("spawn 0", "error: spawn: N must be a number from 1 to 64, not '0'"),
        ("spawn", "error: spawn: usage: spawn [--stack-size 4K|8K|16K|32K] [--stack-limit BYTES] [--dynamic] N"),
        ("spawn --dynamic --stack-size 8K 1", "error: spawn: --dynamic is a 16K stack without a limit"),
        ("grow", "error: grow: usage: grow BYTES [--holding-lock] [--pf-on-stack] [--irq-at-edge] [--threads N]"),
        ("grow 100", "error: grow: BYTES must be a number from 256 to 32768, not '100'"),
        ("grow 8000 --threads", "error: grow: usage: grow BYTES"),
        ("grow 8000 --threads 5 --holding-lock", "error: grow: --threads goes alone, with BYTES below 16384"),
        ("dynamic-stacks maybe", "error: dynamic-stacks: maybe: want on [PAGES] or off, or nothing for the state"),
        ("dynamic-stacks on 4", "error: dynamic-stacks: PAGES must be a number from 1 to 3, not '4'"),
        ("sleep soon", "error: sleep: MS must be a number from 1 to 600000, not 'soon'"),
        ("threads-stress 2", "error: threads-stress: usage: threads-stress N M"),
        ("bench everything", "error: bench: unknown benchmark 'everything'"),
        (
            "bench switch spawn",
            "error: bench: usage: bench [all|switch|spawn|irq|exceptions|ipi|syscall|yield-user|tracer|dynamic]",
        ),
        ("oops=maybe", "error: unknown command 'oops=maybe'"),
        ("irqnest 9", "error: irqnest: N must be a number from 1 to 8, not '9'"),
        ("irqnest", "error: irqnest: usage: irqnest N"),
        ("irq-storm", "error: irq-storm: usage: irq-storm N"),
        ("irqs now", "error: irqs: unexpected argument 'now'"),
        ("bt x", "error: bt: PID must be a number from 0 to 4294967295, not 'x'"),
        ("bt 1 2", "error: bt: unexpected argument '2'; usage: bt [PID]"),
        ("help nothing", "error: help: no command 'nothing'; commands: "),
        ("db 1 --cpu 5", "error: db: CPU 5 is not online; online CPUs: 0 1"),
        ("ps --cpu", "error: ps: --cpu needs a CPU number"),
        ("ps --cpu x", "error: ps: --cpu must be a number from 0 to 65535, not 'x'"),
        ("ps --cpu 0 --cpu=1", "error: ps: --cpu given twice"),
        ("ps extra --cpu 1", "error: ps: unexpected argument 'extra'"),
        ("nmi-storm", "error: nmi-storm: usage: nmi-storm SECONDS"),
        ("nmi-storm 0", "error: nmi-storm: SECONDS must be a number from 1 to 600, not '0'"),
        ("tlb-shootdown", "error: tlb-shootdown: usage: tlb-shootdown CPU [skip]"),
        ("tlb-shootdown 0", "error: tlb-shootdown: CPU 0 must be online and not this CPU (0)"),
        ("cpus all", "error: cpus: unexpected argument 'all'"),
        ("bt-all now", "error: bt-all: unexpected argument 'now'"),
        ("bt-ipi 7", "error: bt-ipi: CPU 7 is not online"),
        ("bt-ipi 0", "error: bt-ipi: CPU 0 is this CPU; use bt"),
        ("run", "error: run: usage: run [--bg] PROG [ARGS...]; programs: attack, badcalls, fuzz, gpf, hello, "),
        ("run nosuch", "error: run: no program 'nosuch'; programs: attack, badcalls, fuzz, gpf, hello, "),
        ("run kstack abc", "expected a number, got 'abc'"),
        ("run-many 0 true", "error: run-many: N must be a number from 1 to 100000, not '0'"),
        ("run-many 2 nosuch", "error: run-many: no program 'nosuch'; programs: "),
        ("kill 1", "error: kill: 1 is a kernel thread; only user processes can be killed"),
        ("kill 999", "error: kill: no task 999"),
        ("wait 999", "error: wait: no task 999"),
        ("hardening stackleak maybe", "error: hardening: 'maybe': expected on or off"),
        ("hardening nothing", "error: hardening: usage: hardening [randomize_kstack_offset on|off | stackleak on|off]"),
        ("kstack-offset 0", "error: kstack-offset: N must be a number from 1 to 1000000, not '0'"),
        ("userstate now", "error: userstate: unexpected argument 'now'"),
        ("soak", "error: soak: usage: soak SECONDS [SEED] (SECONDS 1 to 86400)"),
        ("soak 0", "error: soak: SECONDS must be a number from 1 to 86400, not '0'"),
        ("soak 5 -1", "error: soak: SEED must be a number from 0 to 18446744073709551615, not '-1'"),
        ("soak 5", "error: soak: needs at least 4 CPUs (boot with --smp 4)"),
        ("overflow now", "error: overflow: unexpected argument 'now'; usage: overflow [--holding-lock]"),
        (
            "entry-sweep db",
            "error: entry-sweep: unknown event 'db'; entry-sweep: usage: entry-sweep [nmi|irq|mce|all] [--from user|kernel|both]",
        ),
        ("entry-sweep --from ring1", "error: entry-sweep: --from takes user, kernel or both, not 'ring1'"),
        ("entry-sweep --from", "error: entry-sweep: --from needs user, kernel or both"),
        ("nmi-user-rsp", "error: nmi-user-rsp: usage: nmi-user-rsp N"),
        ("nmi-user-rsp 0", "error: nmi-user-rsp: N must be a number from 1 to 10000000, not '0'"),
    ];
    let t = token("after-errors");
    let mut typed = String::new();
    for (cmd, _) in &cases {
        typed.push_str(cmd);
        typed.push('\r');
    }
    typed.push_str(&format!("echo {t}\rpoweroff\r"));
    let timeout = TIMEOUT_SECS.to_string();
    let run = runner_steps(&["--timeout", &timeout], None, vec![("tristack> ", Action::Type(typed.into_bytes()))]);
    run.expect_status(0);
    for (cmd, error) in cases {
        assert!(run.serial.contains(&format!("tristack> {cmd}\n{error}")), "{cmd:?} should answer {error:?}:\n{run}");
    }
    run.expect(&format!("\n{t}\n"));
}
