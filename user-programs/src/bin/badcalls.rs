//! `run badcalls`: hostile syscalls, each answered with an error, never a
//! crash: an unknown number, kernel and unmapped pointers, a bad fd.
#![no_std]
#![no_main]

use ulib::abi::*;
use ulib::{println, syscall3, Args};

fn main(_: Args) -> i64 {
    let kernel = 0xffff_ffff_8000_0000u64;
    let cases: [(&str, u64, u64, u64, u64, i64); 7] = [
        ("syscall 9999", 9999, 0, 0, 0, -ENOSYS),
        ("write(1, NULL, 8)", SYS_WRITE, 1, 0, 8, -EFAULT),
        ("write(1, kernel address, 8)", SYS_WRITE, 1, kernel, 8, -EFAULT),
        ("write(1, unmapped 0x7000_0000, 8)", SYS_WRITE, 1, 0x7000_0000, 8, -EFAULT),
        ("write(1, buffer wrapping the address space)", SYS_WRITE, 1, 0x40_0000, u64::MAX, -EFAULT),
        ("write(7, buf, 1)", SYS_WRITE, 7, 0x40_0000, 1, -EBADF),
        ("nanosleep(kernel address)", SYS_NANOSLEEP, kernel, 0, 0, -EFAULT),
    ];
    let mut bad = 0;
    for (what, nr, a, b, c, want) in cases {
        let got = syscall3(nr, a, b, c);
        let ok = got == want;
        bad += usize::from(!ok);
        println!("badcalls: {what} = {got} ({})", if ok { "ok" } else { "WRONG" });
    }
    println!("badcalls: {} of {} answered as expected", cases.len() - bad, cases.len());
    bad as i64
}

ulib::entry!(main);
