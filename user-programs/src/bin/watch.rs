//! `run watch`: a hardware data breakpoint (DR0, write, 8 bytes) on a
//! user variable, hit by a user store: #DB from ring 3, handled on this
//! thread's kernel stack, not on #DB's IST stack.
#![no_std]
#![no_main]

use ulib::{println, Args};

static mut WATCHED: u64 = 0;

fn main(_: Args) -> i64 {
    let addr = &raw mut WATCHED as u64;
    let r = ulib::watch(addr);
    if r < 0 {
        println!("watch: the kernel refused the breakpoint: {r}");
        return 1;
    }
    println!("watch: breakpoint armed on {addr:#x}, writing to it");
    // A plain store (`mov`), the most ordinary write there is.
    // SAFETY: this program's own variable; single-threaded.
    unsafe { core::ptr::write_volatile(&raw mut WATCHED, 42) };
    // SAFETY: as above.
    let value = unsafe { core::ptr::read_volatile(&raw const WATCHED) };
    println!("watch: the write completed (value {value}), back in user mode");
    0
}

ulib::entry!(main);
