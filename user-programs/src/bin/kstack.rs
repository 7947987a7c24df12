//! `run kstack BYTES [ROUNDS]`: ask the kernel to use BYTES of this
//! thread's kernel stack inside a syscall. Past THREAD_SIZE that is a
//! kernel stack overflow: an oops that ends this process only. With
//! ROUNDS, the syscall is made ROUNDS times, each asking a dynamic kernel
//! stack to give its lower pages back first, so each grows it again (the
//! entry sweep's trigger; it runs until killed).
#![no_std]
#![no_main]

use ulib::{abi, println, Args};

fn main(args: Args) -> i64 {
    let bytes = args.number(0, 4096);
    let rounds = args.number(1, 0);
    if rounds > 0 {
        println!("kstack: {rounds} syscalls, each growing my kernel stack to {bytes} bytes again");
        for _ in 0..rounds {
            ulib::kstack_use(bytes | abi::KSTACK_GIVE_BACK);
        }
        return 0;
    }
    println!("kstack: asking the kernel for {bytes} bytes of kernel stack");
    let depth = ulib::kstack_use(bytes);
    println!("kstack: the syscall reached {depth} bytes below the top of my kernel stack");
    0
}

ulib::entry!(main);
