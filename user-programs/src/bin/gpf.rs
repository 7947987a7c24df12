//! `run gpf`: a load from a non-canonical address in user mode: #GP
//! (`traps: ... general protection fault`).
#![no_std]
#![no_main]

use ulib::{println, Args};

fn main(_: Args) -> i64 {
    println!("gpf: reading a non-canonical address");
    // SAFETY: deliberately faults; the kernel ends this process.
    unsafe { core::arch::asm!("mov rax, [{}]", in(reg) 0x8000_0000_0000_0000u64, out("rax") _) };
    1
}

ulib::entry!(main);
