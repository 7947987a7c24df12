//! `run ud2`: an invalid opcode in user mode (`traps: ... trap invalid opcode`).
#![no_std]
#![no_main]

use ulib::{println, Args};

fn main(_: Args) -> i64 {
    println!("ud2: executing ud2");
    // SAFETY: deliberately faults; the kernel ends this process.
    unsafe { core::arch::asm!("ud2") };
    1
}

ulib::entry!(main);
