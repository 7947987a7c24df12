//! `run yield-bench [N]` (`bench yield-user`): N `sched_yield` round trips
//! between two threads of one process on one CPU — two syscalls and two
//! context switches each, the operation Linux 6.1 does in 884 instructions
//! in the same QEMU (docs/performance.md) — min and median, printed as a
//! row of the kernel's `bench` table (kernel/src/demos/performance.rs: same
//! columns). The kernel starts it pinned to one CPU; the partner thread
//! inherits the pinning.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, Ordering};
use ulib::{println, Args};

const MAX: usize = 2000;
/// Two bare switches (see `bench switch`) and two syscall round trips
/// (see `syscall-bench`).
const MINIMUM: u64 = 2 * 16 + 2 * 10;

#[repr(C, align(16))]
struct Stack([u8; 16384]);
static mut PARTNER_STACK: Stack = Stack([0; 16384]);

static RUN: AtomicBool = AtomicBool::new(true);

extern "C" fn partner(_: u64) -> ! {
    while RUN.load(Ordering::Relaxed) {
        ulib::sched_yield();
    }
    ulib::exit_thread(0)
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC is allowed in user mode (CR4.TSD is clear).
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn main(args: Args) -> i64 {
    let n = (args.number(0, MAX as u64) as usize).clamp(1, MAX);
    let stack_top = &raw const PARTNER_STACK as u64 + 16384;
    let tid = ulib::clone_thread(partner, stack_top, 0);
    if tid < 0 {
        println!("yield-bench: clone_thread failed: {tid}");
        return 1;
    }
    ulib::sched_yield(); // let the partner reach its loop
    let mut samples = [0u64; MAX];
    for s in samples.iter_mut().take(n) {
        let t0 = rdtsc();
        ulib::sched_yield();
        *s = rdtsc() - t0;
    }
    RUN.store(false, Ordering::Relaxed);
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
    let what = "user yield round trip (2 threads, sched_yield)";
    let (sep, note) = args.word(1).map_or(("", ""), |n| (", ", n));
    let pad = 58usize.saturating_sub(what.len() + sep.len() + note.len());
    println!("bench: {what}{sep}{note}{:pad$} {min:>8} {median:>8} {MINIMUM:>8} {:>5}.{}", "", ratio / 10, ratio % 10);
    0
}

ulib::entry!(main);
