//! `run hello [WORDS]`: the smallest user program: write, getpid, the
//! kernel stack depth its syscalls run at, exit.
#![no_std]
#![no_main]

use ulib::{println, Args};

fn main(args: Args) -> i64 {
    println!("hello from user space: pid {}, args '{}'", ulib::getpid(), args.as_str());
    println!("hello: syscalls run {} bytes below the top of my kernel stack", ulib::stack_info());
    0
}

ulib::entry!(main);
