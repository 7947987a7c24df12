//! Events at every instruction boundary of the entry code
//! (docs/entry-sweep.md): under the runner's `--singlestep` an NMI can land
//! between any two instructions, and the entry sweep puts one on each.

use crate::common::*;

/// The review's panic: a user program points RSP at its CPU's NMI stack and
/// loops on `syscall`; NMIs landing before the entry switches stacks (or
/// after the SYSRET exit restored RSP) used to be taken for NMIs inside an
/// NMI, returned without IRET onto the user's RSP, wrote into the NMI stack
/// and hit its guard page. Some of the NMIs must land on the user's
/// RSP (else the test proves nothing), and the program must run on with
/// its registers intact. STACKLEAK off: the loop is shorter, so more NMIs
/// land on the user's RSP (about one in a hundred; the docs show a run of
/// 10,000 with it on).
#[test]
fn nmis_on_a_syscall_loop_with_rsp_on_the_nmi_stack_leave_the_kernel_intact() {
    let run = boot_smp_singlestep(2, "hardening stackleak off; nmi-user-rsp 1500; poweroff");
    run.expect_status(0).expect_not("Oops").expect_not("BUG:").expect_not("segfault");
    let line = line_starting(&run, "nmi-user-rsp: ").to_string();
    let tally = lines_starting(&run, "nmi-user-rsp: ")[1];
    assert!(line.contains("calls getpid with RSP = fffffe"), "{line}");
    assert!(tally.contains(" NMIs sent, 1500 delivered, "), "{tally}");
    let on_user_rsp: u64 = tally.split(" delivered, ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(on_user_rsp > 2, "too few NMIs landed while RSP was the user's: {tally}");
    assert!(
        tally.ends_with(
            "NMI stack re-entered 0; return-to-user violations 0; oopses 0; the program ran until killed, registers intact"
        ),
        "{tally}"
    );
}

/// The numbers after `key` and before the next space in `line`.
fn count(line: &str, key: &str) -> u64 {
    let at = line.find(key).unwrap_or_else(|| panic!("no {key:?} in {line}"));
    let before = line[..at].rsplit(' ').next().unwrap();
    before.parse().unwrap_or_else(|_| panic!("no number before {key:?} in {line}"))
}

/// Every entry and exit path, from kernel and user mode, with an NMI, an
/// IRQ and an #MC delivered at each of its instructions in turn (where a
/// real CPU could take one). The kernel survives all of them, every
/// delivered event interrupted exactly its instruction, no invariant moved,
/// and the interrupted code got its registers back.
#[test]
fn an_nmi_irq_and_mce_at_every_instruction_of_every_entry_path_leave_the_kernel_intact() {
    let run = boot("entry-sweep; poweroff");
    run.expect_status(0).expect_not("Oops").expect_not("BUG:").expect_not("registers changed across");
    let lines = lines_starting(&run, "entry-sweep: ");
    let (summary, paths) = lines.split_last().unwrap();
    let paths = &paths[1..];
    assert_eq!(paths.len(), 16, "{paths:#?}");
    assert!(paths.iter().all(|l| l.ends_with("; survived") && !l.contains("LOST")), "{paths:#?}");
    let path = |name: &str| *paths.iter().find(|l| l.starts_with(&format!("entry-sweep: {name} "))).unwrap();
    // The SYSCALL entry and SYSRET exit run on every loop of the program:
    // every instruction reached, an NMI and an #MC delivered at each, also
    // at the five that run on the user's RSP (which points at the NMI stack).
    let syscall = path("SYSCALL entry and SYSRET exit");
    let n = count(syscall, " instructions");
    assert!(n > 40 && count(syscall, " reached") == n, "{syscall}");
    assert!(syscall.contains(&format!("; nmi {n} delivered, 0 masked; ")), "{syscall}");
    assert!(syscall.contains(&format!("; mce {n} delivered, 0 masked")), "{syscall}");
    // Interrupts are off in every stub: the IRQ is masked there, and lands
    // only where call_on_stack runs with them on.
    assert!(path("IRQ entry, switching to the IRQ stack").contains("; irq 0 delivered, "), "{paths:#?}");
    assert!(count(path("call_on_stack"), " delivered, ") > 0);
    // NMIs are blocked on the NMI paths (no NMI of the sweep's own there);
    // the #MC on the #MC stack would shut the CPU down (masked, not sent).
    assert!(path("NMI entry and exit").contains("; nmi: the path itself; "), "{paths:#?}");
    let mce = path("#MC entry and exit");
    assert!(mce.contains("; mce 0 delivered, ") && count(mce, " delivered, 0 masked; irq") > 40, "{mce}");
    // An #MC inside the NMI's exit stub returns without IRET: that path
    // runs only then, and is reached in full.
    let no_iret = path("return into NMI context without IRET");
    assert_eq!(count(no_iret, " instructions"), count(no_iret, " reached"), "{no_iret}");
    for from in ["kernel", "user"] {
        assert!(paths.iter().any(|l| l.contains(&format!(" (from {from}: "))), "{paths:#?}");
    }
    // Dynamic thread stacks (armed by the sweep for its last four paths):
    // the growth fault on the #PF stack, from a kernel thread and inside a
    // syscall, an NMI and an #MC at each instruction reached (interrupts
    // are off there); interrupts replayed from the entry stack.
    run.expect("dynamic-stacks: armed: #PF runs on its own stack (IST5)");
    for name in ["#PF growing a kernel thread's dynamic stack", "#PF growing a kernel stack inside a syscall"] {
        let grow = path(name);
        let reached = count(grow, " reached");
        assert!(
            reached > 150 && grow.contains(&format!("; nmi {reached} delivered, 0 masked; irq 0 delivered, ")),
            "{grow}"
        );
        assert!(grow.contains(&format!("; mce {reached} delivered, 0 masked")), "{grow}");
    }
    for name in ["IRQ entry through the entry stack", "IRQ from user mode through the entry stack"] {
        assert!(count(path(name), " reached") > 70, "{paths:#?}");
    }
    assert!(count(summary, " events delivered at their instruction") > 800, "{summary}");
    assert!(
        summary.ends_with(
            " 0 lost; oopses 0, NMI stack re-entered 0, return-to-user violations 0, IRQs off their instruction 0, \
             passes with registers changed 0"
        ),
        "{summary}"
    );
}
