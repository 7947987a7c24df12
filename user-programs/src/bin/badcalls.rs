//! `run badcalls`: hostile syscalls, each answered with an error, never a
//! crash: unknown numbers, and for every call that takes a pointer or an
//! address: kernel, unmapped, non-canonical, straddling the top of user
//! space, unaligned, wrapping.
#![no_std]
#![no_main]

use ulib::abi::*;
use ulib::{println, syscall3, Args};

fn main(_: Args) -> i64 {
    let kernel = 0xffff_ffff_8000_0000u64;
    let noncanonical = 0x8000_0000_0000_0000u64;
    // USER_TOP: the last canonical page is never user space.
    let top = (1u64 << 47) - 4096;
    let text = 0x40_0000u64;
    // (Unmapping most of user space above 1.75 GiB: nothing of ours is there,
    // and the walk must skip the empty tables, not step through 2^34 pages.)
    let cases = [
        ("syscall 9999", 9999, 0, 0, 0, -ENOSYS),
        ("syscall -1", u64::MAX, 0, 0, 0, -ENOSYS),
        ("write(1, NULL, 8)", SYS_WRITE, 1, 0, 8, -EFAULT),
        ("write(1, kernel address, 8)", SYS_WRITE, 1, kernel, 8, -EFAULT),
        ("write(1, non-canonical, 8)", SYS_WRITE, 1, noncanonical, 8, -EFAULT),
        ("write(1, unmapped 0x7000_0000, 8)", SYS_WRITE, 1, 0x7000_0000, 8, -EFAULT),
        ("write(1, buffer wrapping the address space)", SYS_WRITE, 1, text, u64::MAX, -EFAULT),
        ("write(1, straddling the top of user space)", SYS_WRITE, 1, top - 4, 8, -EFAULT),
        ("write(7, buf, 1)", SYS_WRITE, 7, text, 1, -EBADF),
        ("nanosleep(kernel address)", SYS_NANOSLEEP, kernel, 0, 0, -EFAULT),
        ("nanosleep(unaligned, unmapped)", SYS_NANOSLEEP, 0x7000_0003, 0, 0, -EFAULT),
        ("clock_gettime(MONOTONIC, kernel address)", SYS_CLOCK_GETTIME, CLOCK_MONOTONIC, kernel, 0, -EFAULT),
        ("clock_gettime(MONOTONIC, read-only text)", SYS_CLOCK_GETTIME, CLOCK_MONOTONIC, text, 0, -EFAULT),
        ("clock_gettime(42, buf)", SYS_CLOCK_GETTIME, 42, text, 0, -EINVAL),
        ("watch(unaligned)", SYS_WATCH, text + 3, 0, 0, -EINVAL),
        ("watch(kernel address)", SYS_WATCH, kernel, 0, 0, -EFAULT),
        ("munmap(kernel address, 4096)", SYS_MUNMAP, kernel, 4096, 0, -EINVAL),
        ("munmap(unaligned, 4096)", SYS_MUNMAP, text + 1, 4096, 0, -EINVAL),
        ("munmap(straddling the top, 8192)", SYS_MUNMAP, top - 4096, 8192, 0, -EINVAL),
        ("munmap(0x7000_0000, most of user space)", SYS_MUNMAP, 0x7000_0000, 1 << 46, 0, 0),
        ("clone_thread(kernel entry)", SYS_CLONE_THREAD, kernel, 0x7fff_0000, 0, -EINVAL),
        ("clone_thread(kernel stack top)", SYS_CLONE_THREAD, text, kernel, 0, -EINVAL),
        ("kstack_use(0)", SYS_KSTACK_USE, 0, 0, 0, 0),
    ];
    let mut bad = 0;
    for (what, nr, a, b, c, want) in cases {
        let got = syscall3(nr, a, b, c);
        // kstack_use(0) returns the depth it reached: any positive value.
        let ok = got == want || (want == 0 && got > 0);
        bad += usize::from(!ok);
        println!("badcalls: {what} = {got} ({})", if ok { "ok" } else { "WRONG" });
    }
    println!("badcalls: {} of {} answered as expected", cases.len() - bad, cases.len());
    bad as i64
}

ulib::entry!(main);
