//! `run watch [threads]`: a hardware data breakpoint (DR3, write, 8 bytes)
//! on a user variable, hit by a user store: #DB from ring 3, handled on
//! this thread's kernel stack, not on #DB's IST stack.
//!
//! `threads` (run it pinned, `--cpu C`, so both threads share one CPU's
//! debug registers): a second thread writes the variable 100 times,
//! yielding to the first in between, and must never trap — the breakpoint
//! is the first thread's, and the context switch arms and disarms it —
//! then the owner writes once and traps.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, Ordering};

use ulib::{println, Args};

static mut WATCHED: u64 = 0;
static OTHER_DONE: AtomicBool = AtomicBool::new(false);

#[repr(C, align(16))]
struct Stack([u8; 4096]);
static mut STACK: Stack = Stack([0; 4096]);

extern "C" fn other_thread(_: u64) -> ! {
    for i in 0..100 {
        // SAFETY: this program's own variable; the owner only writes it
        // after OTHER_DONE.
        unsafe { core::ptr::write_volatile(&raw mut WATCHED, i) };
        ulib::sched_yield();
    }
    println!("watch: thread {} wrote the watched variable 100 times", ulib::gettid());
    OTHER_DONE.store(true, Ordering::SeqCst);
    ulib::exit_thread(0)
}

fn main(args: Args) -> i64 {
    let addr = &raw mut WATCHED as u64;
    let r = ulib::watch(addr);
    if r < 0 {
        println!("watch: the kernel refused the breakpoint: {r}");
        return 1;
    }
    println!("watch: breakpoint armed on {addr:#x} by thread {}", ulib::gettid());
    match args.word(0) {
        None => {}
        Some("threads") => {
            let top = &raw const STACK as u64 + 4096;
            let tid = ulib::clone_thread(other_thread, top, 0);
            if tid < 0 {
                println!("watch: clone_thread returned {tid}");
                return 1;
            }
            while !OTHER_DONE.load(Ordering::SeqCst) {
                ulib::sched_yield();
            }
        }
        Some(other) => {
            println!("watch: usage: watch [threads], not '{other}'");
            return 2;
        }
    }
    println!("watch: writing to it");
    // A plain store (`mov`), the most ordinary write there is.
    // SAFETY: this program's own variable; the other thread is done.
    unsafe { core::ptr::write_volatile(&raw mut WATCHED, 42) };
    // SAFETY: as above.
    let value = unsafe { core::ptr::read_volatile(&raw const WATCHED) };
    println!("watch: the write completed (value {value}), back in user mode");
    0
}

ulib::entry!(main);
