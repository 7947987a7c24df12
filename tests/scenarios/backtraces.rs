//! Backtraces across stacks: markers, the '?' rule, sleeping threads.

use crate::common::*;

/// The trace lines after the first `Call Trace:` that follows `after`.
fn trace_after<'a>(run: &'a Run, after: &str) -> Vec<&'a str> {
    trace_from(run, run.line_index(after))
}

fn at(trace: &[&str], line: &str) -> usize {
    trace.iter().position(|l| *l == line).unwrap_or_else(|| panic!("no {line:?} in {trace:#?}"))
}

#[test]
fn bt_irq_brackets_the_irq_stack_and_ends_in_the_task() {
    let run = boot("bt-irq; poweroff");
    run.expect_status(0);
    let trace = trace_after(&run, "bt-irq: in a hard IRQ nested in a softirq of a hard IRQ:");
    assert_eq!(trace[0], " <IRQ>", "{trace:#?}");
    let names = symbolized_frames(&trace);
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap_or_else(|| panic!("{n} not in {names:?}"));
    // Inner hard IRQ, the softirq it nested in, the outer IRQ's exit, then the thread.
    assert!(
        pos("tristack::demos::backtraces::bt_irq_inner") < pos("tristack::demos::backtraces::bt_softirq"),
        "{names:?}"
    );
    assert!(pos("tristack::demos::backtraces::bt_softirq") < pos("tristack::softirq::run_rounds"), "{names:?}");
    assert!(
        at(&trace, " </IRQ>")
            < trace.iter().position(|l| l.starts_with(" tristack::demos::backtraces::bt_irq+")).unwrap(),
        "{trace:#?}"
    );
    assert_eq!(names.last().map(String::as_str), Some("tristack_thread_start"), "{names:?}");
}

#[test]
fn bt_nmi_shows_nmi_then_irq_then_the_task() {
    let run = boot("bt-nmi; poweroff");
    run.expect_status(0);
    let trace = trace_after(&run, "bt-nmi: NMI backtrace for cpu 0");
    let (nmi, end_nmi, irq, end_irq) =
        (at(&trace, " <NMI>"), at(&trace, " </NMI>"), at(&trace, " <IRQ>"), at(&trace, " </IRQ>"));
    assert!(nmi == 0 && nmi < end_nmi && end_nmi < irq && irq < end_irq, "{trace:#?}");
    let handler = trace.iter().position(|l| l.starts_with(" tristack::demos::backtraces::bt_nmi_irq+")).unwrap();
    assert!(irq < handler && handler < end_irq, "the IRQ handler is inside <IRQ>: {trace:#?}");
    let names = symbolized_frames(&trace);
    assert!(names.contains(&"tristack::demos::backtraces::bt_nmi".to_string()), "{names:?}");
}

#[test]
fn stale_return_addresses_get_a_question_mark() {
    let run = boot("stale; poweroff");
    run.expect_status(0);
    let trace = trace_after(&run, "tristack> stale");
    let stale: Vec<&&str> = trace.iter().filter(|l| l.contains("stale_marker")).collect();
    assert!(
        !stale.is_empty() && stale.iter().all(|l| l.starts_with(" ? tristack::demos::backtraces::stale_marker+0x1/")),
        "{trace:#?}"
    );
    // The proven chain still runs through the command to the thread's start.
    let names = symbolized_frames(&trace);
    assert!(names.starts_with(&["tristack::demos::backtraces::deep_trace".to_string()]), "{names:?}");
    assert!(names.contains(&"tristack::demos::backtraces::stale".to_string()), "{names:?}");
}

#[test]
fn bt_pid_walks_a_sleeping_thread_from_its_saved_frame() {
    // ksoftirqd/0 (pid 2) sleeps in wait_until, waiting for softirqs.
    let run = boot("sleep 100; bt 2; bt 99; poweroff");
    run.expect_status(1);
    let trace = trace_after(&run, "bt: ksoftirqd/0 (2), sleeping:");
    let names = symbolized_frames(&trace);
    let pos = |n: &str| names.iter().position(|x| x.starts_with(n)).unwrap_or_else(|| panic!("{n} not in {names:?}"));
    // (wait_until is generic and inlined: it shows in schedule_with's name.)
    assert!(pos("tristack::sched::runqueue::schedule_with") < pos("tristack::softirq::ksoftirqd"), "{names:?}");
    assert!(pos("tristack::softirq::ksoftirqd") < pos("tristack::sched::thread_main"), "{names:?}");
    run.expect("error: bt: no sleeping or runnable task with pid 99");
}
