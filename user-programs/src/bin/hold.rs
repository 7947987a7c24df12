//! `run --bg hold`: a process that only holds its memory (its pages, page
//! tables and kernel stack), sleeping until it is killed (`oom` starts
//! them until memory runs out).
#![no_std]
#![no_main]

fn main(_: ulib::Args) -> i64 {
    let second = ulib::Timespec { tv_sec: 1, tv_nsec: 0 };
    loop {
        ulib::nanosleep(&second);
    }
}

ulib::entry!(main);
