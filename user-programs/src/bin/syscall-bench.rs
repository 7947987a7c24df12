//! `run syscall-bench [N]` (`bench syscall`): N `getpid` round trips from
//! user mode — SYSCALL, the frame, the random offset, the dispatcher, the
//! exit checks, STACKLEAK, SYSRET — min and median, printed as a row of
//! the kernel's `bench` table (kernel/src/demos/bench.rs: same columns).
#![no_std]
#![no_main]

use ulib::{println, Args};

const MAX: usize = 2000;
/// The shortest syscall round trip: `syscall`, `swapgs`, save the user RSP,
/// load the kernel's, call the handler, read the pid, `ret`, restore the
/// user RSP, `swapgs`, `sysretq`.
const MINIMUM: u64 = 10;

fn rdtsc() -> u64 {
    // SAFETY: RDTSC is allowed in user mode (CR4.TSD is clear).
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn main(args: Args) -> i64 {
    let n = (args.number(0, MAX as u64) as usize).clamp(1, MAX);
    let mut samples = [0u64; MAX];
    for s in samples.iter_mut().take(n) {
        let t0 = rdtsc();
        ulib::getpid();
        *s = rdtsc() - t0;
    }
    // What RDTSC around nothing costs comes off every sample.
    let empty = (0..64)
        .map(|_| {
            let t0 = rdtsc();
            rdtsc() - t0
        })
        .min()
        .unwrap_or(0);
    let samples = &mut samples[..n];
    samples.iter_mut().for_each(|s| *s = s.saturating_sub(empty));
    samples.sort_unstable();
    let (min, median) = (samples[0], samples[n / 2]);
    let ratio = median * 10 / MINIMUM;
    // A second word labels the row (the kernel's `bench` says which
    // hardening was off).
    let what = "syscall round trip (getpid, from user mode)";
    let (sep, note) = args.word(1).map_or(("", ""), |n| (", ", n));
    let pad = 58usize.saturating_sub(what.len() + sep.len() + note.len());
    println!("bench: {what}{sep}{note}{:pad$} {min:>8} {median:>8} {MINIMUM:>8} {:>5}.{}", "", ratio / 10, ratio % 10);
    0
}

ulib::entry!(main);
