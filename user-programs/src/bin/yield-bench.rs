//! `run yield-bench [N [NOTE]]` (`bench yield-user`): N `sched_yield` round trips
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
    let what = "user yield round trip (2 threads, sched_yield)";
    ulib::bench_row(what, args.word(1), MINIMUM, &mut samples[..n], || {
        ulib::sched_yield();
    });
    RUN.store(false, Ordering::Relaxed);
    0
}

ulib::entry!(main);
