//! `run ustack-overflow`: unbounded recursion on the *user* stack, into
//! the unmapped guard page below it: a user #PF, the process ends, the
//! kernel stack is untouched.
#![no_std]
#![no_main]

use ulib::{println, Args};

#[inline(never)]
#[allow(unconditional_recursion)] // the point: it only ends in the guard page
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 64]);
    recurse(depth + 1) + frame[3]
}

fn main(_: Args) -> i64 {
    println!("ustack-overflow: recursing on the user stack");
    recurse(0) as i64
}

ulib::entry!(main);
