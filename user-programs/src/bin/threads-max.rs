//! `run threads-max`: add threads to this process (each sleeping on a
//! small stack of its own) until `clone_thread` fails; that must be an
//! error (`-EAGAIN` at the thread-stack limit, `-ENOMEM` out of memory),
//! never a crash. Then `exit_group` ends them all.
#![no_std]
#![no_main]

use ulib::{println, Args};

const MAX: usize = 2048;
const STACK: usize = 512;

#[repr(C, align(16))]
struct Stacks([[u8; STACK]; MAX]);
static mut STACKS: Stacks = Stacks([[0; STACK]; MAX]);

extern "C" fn sleeper(_: u64) -> ! {
    let second = ulib::Timespec { tv_sec: 1, tv_nsec: 0 };
    loop {
        ulib::nanosleep(&second);
    }
}

fn main(_: Args) -> i64 {
    let base = &raw const STACKS as u64;
    for n in 0..MAX {
        let top = base + ((n + 1) * STACK) as u64;
        let tid = ulib::clone_thread(sleeper, top, 0);
        if tid < 0 {
            println!("threads-max: {n} threads, then clone_thread returned {tid}");
            return 0;
        }
    }
    println!("threads-max: {MAX} threads and no error");
    1
}

ulib::entry!(main);
