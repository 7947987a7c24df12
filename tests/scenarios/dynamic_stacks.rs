//! Thread stacks that grow on demand: growth on the #PF stack, the guard
//! page still an overflow, a growth fault never resolved in #DF, an
//! interrupt whose frame is the first touch of a page, a lock held, and
//! every frame back after many threads.

use crate::common::*;

/// The figures of `grow`'s closing line: (bytes reached, pages backed, pages added).
fn reached(run: &Run) -> (u64, u64, u64) {
    let l = line_starting(run, "grow: reached ");
    let w: Vec<&str> = l.split_whitespace().collect();
    let n = |i: usize| w[i].parse::<u64>().unwrap_or_else(|_| panic!("{l}"));
    // grow: reached B bytes with P of 4 pages backed, A of them added by faults; ...
    (n(2), n(5), n(10))
}

#[test]
fn a_thread_recursing_to_15k_on_a_dynamic_stack_completes_with_4_pages_backed() {
    let run = boot("grow 15360; dynamic-stacks; poweroff");
    run.expect_status(0);
    run.expect("dynamic-stacks: armed: #PF runs on its own stack (IST5)");
    // A fresh stack: only its top page backed when the thread starts.
    run.expect("grow: thread 4 starts with 1 of 4 pages of its stack backed; to use 15360 bytes\n");
    let (bytes, backed, added) = reached(&run);
    assert!(bytes >= 15360 && backed == 4 && added == 3, "{run}");
    // The usage line reads the (now whole) stack: under 1 KiB left.
    let left = line_starting(&run, "grow (4) used greatest stack depth: ");
    let left: u64 = left.split(": ").nth(1).unwrap().trim_end_matches(" bytes left").parse().unwrap();
    assert!(left < 16384 - 15360, "{left}");
    let state = line_starting(&run, "dynamic-stacks: new 16K threads get fixed stacks; armed: yes;");
    assert!(state.contains("pages added by faults: 3;"), "{state}");
    run.expect_not("Oops");
}

#[test]
fn a_shallow_dynamic_thread_keeps_one_page_and_ps_and_stacks_say_so() {
    let run = boot("spawn --dynamic 1; ps; stacks; sleep 400; poweroff");
    run.expect_status(0);
    let row = line_starting(&run, "worker-0 ");
    // size column: backed / size; the worker's frames fit in the top page or two.
    assert!(row.contains(" 4K/16K ") || row.contains(" 8K/16K "), "{row}");
    let stacks = lines_starting(&run, "  ");
    assert!(stacks.iter().any(|l| l.contains(" worker-0, dynamic: ") && l.ends_with(" of 4 pages backed")), "{run}");
    // Armed: the #PF stacks and the entry stack are listed, on IST5 and IST6.
    for (kind, via) in [("#PF2 ", "IST5-2"), ("#PF1 ", "IST5-1"), ("#PF  ", "IST5"), ("ENTRY", "IST6")] {
        assert!(
            run.kernel_lines().iter().any(|l| l.starts_with(&format!("  0 {kind}")) && l.ends_with(via)),
            "{kind} {via}:\n{run}"
        );
    }
}

#[test]
fn without_dynamic_stacks_the_pf_stacks_are_not_listed_and_pf_has_no_ist() {
    let run = boot("stacks; ps; poweroff");
    run.expect_status(0);
    run.expect_not("#PF").expect_not("ENTRY");
}

#[test]
fn past_the_guard_page_a_dynamic_stack_still_oopses_and_only_its_thread_dies() {
    let run = boot("grow 20000; ps; poweroff");
    run.expect_status(0);
    let bug = line_starting(&run, "BUG: TASK stack guard page was hit at ");
    let hit = u64::from_str_radix(&bug[38..54], 16).unwrap();
    let bottom = u64::from_str_radix(bug.split("(stack is ").nth(1).unwrap().split("..").next().unwrap(), 16).unwrap();
    assert!(hit < bottom && hit >= bottom - 4096, "{bug}");
    run.line_index("Oops: stack guard page: 0002 [#1] SMP");
    // Reported from the #PF stack: the CPU could deliver the fault.
    line_starting(&run, "Exception stack: #PF ");
    run.expect_not("double fault");
    let trace = trace_from(&run, run.line_index("Call Trace:"));
    assert!(trace.iter().filter(|l| l.contains("dynamic_stacks::deepen+")).count() >= 10, "{run}");
    run.expect("grow: thread grow (4) was killed by the oops and reaped; the system carries on\n");
    assert!(run.kernel_lines().iter().any(|l| l.starts_with("init ")), "the shell lives on:\n{run}");
}

#[test]
fn a_growth_fault_without_its_own_stack_is_a_double_fault_the_handler_does_not_return_from() {
    let run = boot("grow 12000 --pf-on-stack; grow 12000; poweroff");
    run.expect_status(0);
    let bug = line_starting(&run, "BUG: stack growth fault at ");
    assert!(
        bug.ends_with(" became a double fault; #DF is an abort, not returning (#PF has no stack of its own)"),
        "{bug}"
    );
    run.line_index("Oops: double fault: 0000 [#1] SMP");
    line_starting(&run, "Exception stack: #DF ");
    run.expect("grow: thread grow (4) was killed by the oops and reaped; the system carries on\n");
    // The gate is back on its stack: the next thread grows.
    let (_, backed, _) = reached(&run);
    assert!(backed >= 3, "{run}");
}

#[test]
fn an_interrupt_whose_frame_is_the_first_touch_of_a_page_is_not_lost() {
    let run = boot_smp(1, "grow 8000 --irq-at-edge; sleep 20; poweroff");
    run.expect_status(0);
    let l = line_starting(&run, "grow: an interrupt arrived with RSP at ");
    assert!(l.ends_with(" pages backed now; the interrupt was handled"), "{l}");
    assert!(l.contains(": 2 of 4 pages backed now;"), "the push grew the stack:\n{l}");
    run.expect("sleep: 20 ms asked");
}

#[test]
fn a_growth_fault_with_the_frame_allocators_lock_held_completes() {
    let run = boot("grow 15360 --holding-lock; poweroff");
    run.expect_status(0);
    run.expect(", holding the frame allocator's lock\n");
    let (bytes, backed, added) = reached(&run);
    assert!(bytes >= 15360 && backed == 4 && added == 3, "{run}");
}

#[test]
fn a_thousand_threads_on_dynamic_stacks_give_every_frame_back() {
    let run = boot_smp(2, "meminfo; grow 10000 --threads 1000; meminfo; poweroff");
    run.expect_status(0);
    let l = line_starting(&run, "grow: 1000 threads on dynamic stacks, each to 10000 bytes: ");
    let added: u64 = l.split(": ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(added >= 1000, "every thread grew at least once:\n{l}");
    assert!(l.ends_with(" -> 0"), "{l}");
    run.expect("grow: every frame back\n");
    // meminfo before and after: free frames, plus those the growth
    // reserves hold after (they were empty before), are the same.
    let free: Vec<u64> = lines_starting(&run, "frames:  ").iter().map(|l| count_before(l, " free")).collect();
    let stacks = lines_starting(&run, "stacks:  ");
    assert_eq!(stacks[0], "stacks:  0 frames in the per-CPU stack caches", "{run}");
    let reserved = count_before(stacks[1], " in the growth reserves");
    assert!(stacks[1].ends_with("; 0 dynamic stacks alive"), "{}", stacks[1]);
    assert_eq!(free[0], free[1] + reserved, "{run}");
}

/// The number just before `key` in `line`.
fn count_before(line: &str, key: &str) -> u64 {
    let at = line.find(key).unwrap_or_else(|| panic!("no {key:?} in {line}"));
    line[..at].rsplit(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("{line}"))
}

#[test]
fn with_dynamic_stacks_on_every_ktest_passes_on_them() {
    let run = boot("dynamic-stacks on; ktest -q; dynamic-stacks; poweroff");
    run.expect_status(0);
    run.expect("dynamic-stacks: new 16K threads get dynamic stacks; armed: yes;");
    let done = run.kernel_lines().into_iter().find(|l| l.ends_with(" passed, 0 failed")).expect("a ktest summary");
    let passed: u32 = done.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 38, "{done}");
}

#[test]
fn with_dynamic_stacks_irq_and_extra_stacks_stay_whole_and_their_overflows_are_guard_page_oopses() {
    // The IRQ and extra stacks are never dynamic: their guard pages still
    // end an overflow, now reported from the #PF stack.
    let run = boot("dynamic-stacks on; extra-overflow; irq-overflow; echo not-reached");
    run.expect_status(1).expect_no_line("not-reached");
    line_starting(&run, "BUG: EXTRA stack guard page was hit at ");
    line_starting(&run, "BUG: IRQ stack guard page was hit at ");
    assert_eq!(lines_starting(&run, "Exception stack: #PF ").len(), 2, "{run}");
}

#[test]
fn with_dynamic_stacks_the_stack_tracer_and_stack_limit_search_keep_working() {
    let run = boot("stacktrace; dynamic-stacks on; grow 12000; stack-trace TASK; stack-limit-search deep 20; poweroff");
    // (stack-limit-search oopses on purpose: it bisects by overflowing.)
    run.expect_status(0).expect_not("double fault").expect_not("BUG: no frame");
    // The tracer walked the grown stack: the recursion, deepest first.
    let deepest = run.line_index("        -----    ----   --------") + 1;
    let rows = &run.kernel_lines()[deepest..deepest + 8];
    assert!(rows.iter().filter(|r| r.contains("dynamic_stacks::deepen+")).count() >= 6, "{rows:#?}");
    let depth: u64 = rows[0].split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(depth >= 12000, "{rows:#?}");
    // Stack limits are fixed stacks, dynamic ones on or not.
    let found = line_starting(&run, "stack-limit-search: smallest limit that completes: ");
    assert!(found.ends_with(" bytes used"), "{found}");
}

#[test]
fn dynamic_stacks_on_2_starts_new_stacks_with_two_pages_backed() {
    let run = boot("dynamic-stacks on 2; grow 6000; poweroff");
    run.expect_status(0);
    let state = line_starting(&run, "dynamic-stacks: new 16K threads get dynamic stacks; armed: yes;");
    assert!(state.ends_with("; a new one starts with 2 of 4 pages backed"), "{state}");
    // 6000 bytes fit in the two pages: no fault needed.
    run.expect("grow: thread 4 starts with 2 of 4 pages of its stack backed; to use 6000 bytes\n");
    let (bytes, backed, added) = reached(&run);
    assert!(bytes >= 6000 && backed == 2 && added == 0, "{run}");
}
