//! `run kstack-offset N`: N `stack_info` syscalls; with the per-syscall
//! random kernel stack offset (Linux RANDOMIZE_KSTACK_OFFSET) the depth
//! the dispatcher runs at changes from call to call.
#![no_std]
#![no_main]

use ulib::{println, Args};

fn main(args: Args) -> i64 {
    let n = args.number(0, 1000);
    // Depths are multiples of 16 within 1 KiB (+ the frame): 128 buckets.
    let mut seen = [false; 128];
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    let first = ulib::stack_info();
    for _ in 0..n {
        let d = ulib::stack_info();
        lo = lo.min(d);
        hi = hi.max(d);
        let bucket = ((d - first + 1024) / 16) as usize % seen.len();
        seen[bucket] = true;
    }
    let distinct = seen.iter().filter(|&&s| s).count();
    println!("kstack-offset: {n} syscalls, {distinct} distinct offsets, depth {lo}..{hi} bytes (spread {})", hi - lo);
    0
}

ulib::entry!(main);
