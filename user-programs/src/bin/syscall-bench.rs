//! `run syscall-bench [N]` (`bench syscall`): TSC cycles of N `getpid`
//! round trips from user mode — SYSCALL, the frame, the random offset, the
//! dispatcher, the exit checks, STACKLEAK, SYSRET — min and median.
#![no_std]
#![no_main]

use ulib::{println, Args};

const MAX: usize = 2000;

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
    let samples = &mut samples[..n];
    samples.sort_unstable();
    println!("bench syscall: min {} cycles, median {} cycles ({n} samples)", samples[0], samples[n / 2]);
    0
}

ulib::entry!(main);
