//! `run ustress N`: N rounds of every way into the kernel from user mode —
//! syscalls (SYSRET back), `sched_yield` (a switch inside a syscall),
//! `int3` (#BP moved off its IST stack) and a data breakpoint (#DB, ditto);
//! timer IRQs and any NMI land in between. The kernel checks every return.
#![no_std]
#![no_main]

use ulib::{println, Args};

static mut WATCHED: u64 = 0;

fn main(args: Args) -> i64 {
    let n = args.number(0, 1000);
    let mut sum = 0u64;
    for i in 0..n {
        // Some time in user mode, for interrupts and NMIs to land in.
        for j in 0..2000u64 {
            sum = core::hint::black_box(sum.wrapping_add(j));
        }
        sum = sum.wrapping_add(ulib::getpid() as u64);
        if i % 8 == 0 {
            ulib::sched_yield();
        }
        if i % 64 == 0 {
            // SAFETY: #BP from user mode is reported and resumed.
            unsafe { core::arch::asm!("int3") };
        }
        if i % 256 == 0 && ulib::watch(&raw mut WATCHED as u64) == 0 {
            // SAFETY: this program's own variable; single-threaded.
            unsafe { core::ptr::write_volatile(&raw mut WATCHED, i) };
        }
    }
    println!("ustress: pid {} done, {n} rounds", ulib::getpid());
    (sum == 0) as i64
}

ulib::entry!(main);
