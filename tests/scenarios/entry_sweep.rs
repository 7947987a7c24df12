//! Events at every instruction boundary of the entry code
//! (docs/entry-sweep.md): under the runner's `--singlestep` an NMI can land
//! between any two instructions, and the entry sweep puts one on each.

use crate::common::*;

/// Boot under `--singlestep` (one instruction per translated block).
fn boot_singlestep(cmdline: &str) -> Run {
    runner(&["--singlestep", "--smp", "2", "--timeout", "180", "--", cmdline])
}

/// The review's panic: a user program points RSP at its CPU's NMI stack and
/// loops on `syscall`; NMIs landing before the entry switches stacks (or
/// after the SYSRET exit restored RSP) used to be taken for NMIs inside an
/// NMI, returned without IRET onto the user's RSP, wrote into the NMI stack
/// and hit its guard page. Some of the 10,000 NMIs must land on the user's
/// RSP (else the test proves nothing), and the program must run on with
/// its registers intact.
#[test]
fn ten_thousand_nmis_on_a_syscall_loop_with_rsp_on_the_nmi_stack_leave_the_kernel_intact() {
    let run = boot_singlestep("nmi-user-rsp 10000; poweroff");
    run.expect_status(0).expect_not("Oops").expect_not("BUG:").expect_not("segfault");
    let line = line_starting(&run, "nmi-user-rsp: ").to_string();
    let tally = lines_starting(&run, "nmi-user-rsp: ")[1];
    assert!(line.contains("calls getpid with RSP = fffffe"), "{line}");
    assert!(tally.contains(" NMIs sent, 10000 delivered, "), "{tally}");
    let on_user_rsp: u64 = tally.split(" delivered, ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(on_user_rsp > 0, "no NMI landed while RSP was the user's: {tally}");
    assert!(
        tally.ends_with(
            "NMI stack re-entered 0; return-to-user violations 0; oopses 0; the program ran until killed, registers intact"
        ),
        "{tally}"
    );
}
