//! `run watch`: a hardware data breakpoint (DR0, write, 8 bytes) on a
//! user variable, hit by a user store: #DB from ring 3, handled on this
//! thread's kernel stack, not on #DB's IST stack.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use ulib::{println, Args};

static WATCHED: AtomicU64 = AtomicU64::new(0);

fn main(_: Args) -> i64 {
    let addr = WATCHED.as_ptr() as u64;
    let r = ulib::watch(addr);
    if r < 0 {
        println!("watch: the kernel refused the breakpoint: {r}");
        return 1;
    }
    println!("watch: breakpoint armed on {addr:#x}, writing to it");
    WATCHED.store(42, Ordering::SeqCst);
    println!("watch: the write completed (value {}), back in user mode", WATCHED.load(Ordering::SeqCst));
    0
}

ulib::entry!(main);
