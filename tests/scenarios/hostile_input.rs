//! Hostile input from user space: attack programs against real kernel
//! addresses; every attack fails safely and the kernel stays intact.

use crate::common::*;

/// Every attack ends the attacker (or is ignored), with Linux's lines, and
/// afterwards the kernel's text, free memory and return-to-user checks are
/// as before; the shell carries on.
#[test]
fn every_attack_from_user_space_fails_safely_and_the_kernel_stays_intact() {
    let word = token("after-attacks");
    let run = boot(&format!("attacks; echo {word}; poweroff"));
    run.expect_status(0).expect_not("UNEXPECTED").expect_not("OOPSED").expect_not("Oops").expect_not("BUG:");
    let verdicts = lines_starting(&run, "attacks: ");
    let (tally, each) = verdicts.split_last().expect("attack lines");
    assert_eq!(each.len(), 30, "{each:#?}");
    assert!(each.iter().all(|l| l.ends_with(" (failed safely)")), "{each:#?}");
    for (what, how) in [
        ("read kernel text", "killed by signal 11"),
        ("write CPU 0's IRQ stack", "killed by signal 11"),
        ("read CPU 0's #DF stack (cpu entry area)", "killed by signal 11"),
        ("privileged instruction swapgs", "killed by signal 11"),
        ("int $2 through a DPL-0 gate", "killed by signal 11"),
        ("syscall with RSP in kernel text", "exit status 0"),
        ("syscall with a non-canonical RSP", "exit status 0"),
        ("iretq into ring 0", "killed by signal 11"),
        ("bad pointers and numbers for every syscall", "exit status 0"),
        ("undefined instruction", "killed by signal 4"),
    ] {
        run.expect(&format!("attacks: {what}: {how} (failed safely)\n"));
    }
    // The kernel's own lines: user reads of kernel pages are protection
    // faults (error 5), writes 7, instruction fetches 15; the rest #GP.
    let segv = lines_starting(&run, "attack[");
    assert!(segv.iter().filter(|l| l.contains(" error 5 in attack[")).count() >= 4, "{segv:#?}");
    assert!(segv.iter().filter(|l| l.contains(" error 7 in attack[")).count() >= 2, "{segv:#?}");
    assert!(segv.iter().filter(|l| l.ends_with(" error 15")).count() == 2, "{segv:#?}");
    let gp = lines_starting(&run, "traps: attack[");
    assert!(gp.len() >= 16 && gp.iter().all(|l| l.contains("] general protection fault ip:")), "{gp:#?}");
    run.expect("badcalls: 22 of 22 answered as expected\n");
    assert!(tally.starts_with("attacks: 30 of 30 failed safely; kernel text checksum "), "{tally}");
    assert!(tally.contains(" unchanged; free frames (cached stacks counted free) "), "{tally}");
    let before = tally.split(") ").nth(1).unwrap().split(' ').next().unwrap();
    assert!(tally.contains(&format!("{before} before, {before} after; return-to-user violations 0")), "{tally}");
    run.expect(&format!("\n{word}\n"));
}
