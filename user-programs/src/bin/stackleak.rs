//! `run stackleak`: one syscall leaves a secret on the dead part of the
//! kernel stack; the next looks for it. With stack erasing on (Linux
//! STACKLEAK) the return to user poisoned it away.
#![no_std]
#![no_main]

use ulib::abi::{SYS_STACKLEAK_FIND, SYS_STACKLEAK_PLANT};
use ulib::{println, syscall3, Args};

fn main(_: Args) -> i64 {
    let secret = 0x5EC2_E7C0_FFEE_0001u64 ^ (ulib::getpid() as u64) << 32;
    syscall3(SYS_STACKLEAK_PLANT, secret, 0, 0);
    let found = syscall3(SYS_STACKLEAK_FIND, secret, 0, 0);
    if found > 0 {
        println!("stackleak: the next syscall found the secret {secret:#x} {found} bytes below the stack top");
    } else {
        println!("stackleak: the next syscall did not find the secret {secret:#x} on the kernel stack");
    }
    0
}

ulib::entry!(main);
