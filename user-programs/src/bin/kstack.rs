//! `run kstack BYTES`: ask the kernel to use BYTES of this thread's kernel
//! stack inside a syscall. Past THREAD_SIZE that is a kernel stack
//! overflow: an oops that ends this process only.
#![no_std]
#![no_main]

use ulib::{println, Args};

fn main(args: Args) -> i64 {
    let bytes = args.number(0, 4096);
    println!("kstack: asking the kernel for {bytes} bytes of kernel stack");
    let depth = ulib::kstack_use(bytes);
    println!("kstack: the syscall reached {depth} bytes below the top of my kernel stack");
    0
}

ulib::entry!(main);
