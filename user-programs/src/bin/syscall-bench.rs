//! `run syscall-bench [N [NOTE]]` (`bench syscall`): N `getpid` round trips
//! from user mode — SYSCALL, the frame, the random offset, the dispatcher,
//! the exit checks, STACKLEAK, SYSRET — printed as a row of the kernel's
//! `bench` table; NOTE (e.g. `stackleak-off`) is added to its label.
#![no_std]
#![no_main]

use ulib::Args;

const MAX: usize = 2000;
/// The shortest syscall round trip: `syscall`, `swapgs`, save the user RSP,
/// load the kernel's, call the handler, read the pid, `ret`, restore the
/// user RSP, `swapgs`, `sysretq`.
const MINIMUM: u64 = 10;

fn main(args: Args) -> i64 {
    let n = (args.number(0, MAX as u64) as usize).clamp(1, MAX);
    let mut samples = [0u64; MAX];
    ulib::bench_row("syscall round trip (getpid, from user mode)", args.word(1), MINIMUM, &mut samples[..n], || {
        ulib::getpid();
    });
    0
}

ulib::entry!(main);
