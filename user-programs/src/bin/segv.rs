//! `run segv`: a write to address 0 — a user #PF the kernel answers by
//! ending the process with Linux's `segfault at` line.
#![no_std]
#![no_main]

use ulib::{println, Args};

fn main(_: Args) -> i64 {
    println!("segv: writing to address 0");
    // SAFETY: deliberately faults; the kernel ends this process.
    unsafe { core::arch::asm!("mov qword ptr [{}], 1", in(reg) 0u64) };
    println!("segv: still alive?");
    1
}

ulib::entry!(main);
