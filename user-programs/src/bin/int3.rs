//! `run int3`: a breakpoint instruction in ring 3. The CPU enters #BP's
//! IST stack; the entry moves the frame to this thread's kernel stack
//! (Linux `sync_regs`) and the handler runs there, then returns here.
#![no_std]
#![no_main]

use ulib::{println, Args};

fn main(_: Args) -> i64 {
    println!("int3: executing int3 in user mode");
    // SAFETY: #BP from user mode is reported and resumed by the kernel.
    unsafe { core::arch::asm!("int3") };
    println!("int3: back in user mode after the breakpoint");
    0
}

ulib::entry!(main);
