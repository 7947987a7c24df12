//! The per-CPU IRQ stack: nest counter, softirqs, storms, overflow.

use crate::common::*;

#[test]
fn irqnest_3_switches_once_then_stays_on_the_irq_stack() {
    let run = boot("irqnest 3; poweroff");
    run.expect_status(0);
    run.expect("\nirqnest: in thread context irq_count is -1\n");
    let levels = lines_starting(&run, "irqnest: level ");
    assert_eq!(levels.len(), 3, "{run}");
    assert!(levels[0].contains("irq_count 0, on the IRQ stack (switched at entry), frame saved on TASK"), "{run}");
    for (i, l) in levels.iter().enumerate().skip(1) {
        assert!(l.contains(&format!("irq_count {i}, on the IRQ stack (nested: no switch), frame saved on IRQ")), "{l}");
    }
    run.expect("\nirqnest: back in the thread, irq_count -1\n");
}

#[test]
fn softirq_runs_on_the_irq_stack_and_a_nested_hard_irq_does_not_switch() {
    let run = boot("softirq; poweroff");
    run.expect_status(0);
    let steps = lines_starting(&run, "softirq: ");
    assert!(
        steps[0].starts_with("softirq: 1. hard IRQ 0x41: irq_count 0, on the IRQ stack, frame saved on TASK"),
        "{run}"
    );
    assert_eq!(
        steps[1], "softirq: 2. softirq at the outermost IRQ exit: irq_count 0, on the IRQ stack, interrupts on",
        "{run}"
    );
    assert!(steps[2].starts_with("softirq: 3. hard IRQ 0x42 inside the softirq: irq_count 1, on the IRQ stack (no switch), frame saved on IRQ"), "{run}");
    assert_eq!(steps[3], "softirq: back in the thread, irq_count -1", "{run}");
}

#[test]
fn irq_storm_loses_nothing_while_threads_switch() {
    let run = boot("irq-storm 100000; irqs; poweroff");
    run.expect_status(0);
    run.expect("\nirq-storm: sent 100000, handled 100000 on the IRQ stack (0 elsewhere), softirq ran ");
    run.expect("switcher checksums bad: 0\n").expect("irq-storm: ok, none lost");
    // /proc/interrupts agrees with the storm's own count, summed over the
    // CPUs (the storm's sender runs wherever the scheduler placed it).
    let row = lines_starting(&run, "0x44:")[0];
    let per_cpu: Vec<u64> = row.split_whitespace().skip(1).map_while(|w| w.parse().ok()).collect();
    assert_eq!(per_cpu.len(), 2, "one column per CPU: {row}");
    assert_eq!(per_cpu.iter().sum::<u64>(), 100000, "{row}");
    let loc = lines_starting(&run, " LOC:")[0];
    assert!(loc.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() > 0, "{loc}");
}

#[test]
fn irq_overflow_hits_the_irq_stack_guard_and_oopses() {
    let run = boot("irq-overflow; echo not-reached");
    run.expect_status(1).expect_no_line("not-reached");
    let bug = lines_starting(&run, "BUG: IRQ stack guard page was hit at ");
    assert_eq!(bug.len(), 1, "{run}");
    let hit = u64::from_str_radix(&bug[0][37..53], 16).unwrap();
    let bottom =
        u64::from_str_radix(bug[0].split("(stack is ").nth(1).unwrap().split("..").next().unwrap(), 16).unwrap();
    assert!(hit < bottom && hit >= bottom - 4096, "{}", bug[0]);
    run.expect("\nOops: stack guard page: 0000 [#1] SMP\n");
    assert!(lines_starting(&run, "Interrupted RSP: ")[0].ends_with("on IRQ guard page"), "{run}");
    // The proven trace: the recursion on the IRQ stack, then its handler.
    let lines = run.kernel_lines();
    let start = run.line_index("Call Trace:") + 1;
    let n = lines[start..].iter().take_while(|l| l.starts_with(' ')).count();
    let names = symbolized_frames(&lines[start..start + n]);
    assert!(names.iter().filter(|f| *f == "tristack::demos::irq::irq_recurse").count() >= 5, "{names:?}");
    // An oops in an interrupt cannot be survived by killing a thread.
    run.expect("\nKernel panic - not syncing: Fatal exception in interrupt\n");
}

#[test]
fn stacks_and_ps_show_the_irq_stack() {
    let run = boot("stacks; ps; poweroff");
    run.expect_status(0);
    let row = lines_starting(&run, "  0 IRQ ")[0];
    let w: Vec<&str> = row.split_whitespace().collect();
    let (bottom, top) = (u64::from_str_radix(w[2], 16).unwrap(), u64::from_str_radix(w[3], 16).unwrap());
    assert_eq!((w[4], top - bottom), ("16384", 16384), "{row}");
    assert_eq!(w[5], format!("{:016x}-{:016x}", bottom - 4096, bottom - 1), "{row}");
    let usage = lines_starting(&run, "cpu 0 stacks, bytes never touched: IRQ ")[0];
    let untouched: u64 = usage.split("IRQ ").nth(1).unwrap().split('/').next().unwrap().parse().unwrap();
    // The timer has run on it by now, so some of it was used.
    assert!(untouched < 16384, "{usage}");
}

#[test]
fn typed_input_arrives_by_the_com1_interrupt() {
    let t = token("irq-typed");
    let typed = format!("echo {t}\rirqs\rpoweroff\r");
    let timeout = TIMEOUT_SECS.to_string();
    let run = runner_steps(&["--timeout", &timeout], None, vec![("tristack> ", Action::Type(typed.into_bytes()))]);
    run.expect_status(0);
    run.expect("\nIO-APIC: ISA IRQ 4 -> GSI 4 -> vector 0x34 (ttyS0)\n");
    run.expect(&format!("tristack> echo {t}\n{t}\n"));
    // The bytes came in through vector 0x34: its count is not zero.
    let row = lines_starting(&run, "0x34:")[0];
    let count: u64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(count >= 1 && row.ends_with("ttyS0"), "{row}");
}

#[test]
fn softirqs_beyond_ten_rounds_are_left_to_ksoftirqd() {
    let run = boot("softirq-flood 50; softirq-flood 5; poweroff");
    run.expect_status(0);
    // Any IRQ exit (a timer tick too) runs up to 10 rounds, so how the 50
    // split is timing; that some went to ksoftirqd, and none got lost, is not.
    let line = lines_starting(&run, "softirq-flood: 50 runs: ")[0];
    let nums: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    let (at_exit, in_thread) = (nums[1], nums[3]);
    assert!(at_exit >= 10 && in_thread >= 1 && at_exit + in_thread == 50, "{line}");
    run.expect("\nsoftirq-flood: 5 runs: 5 at the IRQ exit (at most 10 rounds there), 0 in ksoftirqd/0\n");
}
