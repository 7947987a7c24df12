//! `run sysret canonical|noncanonical|badss`: a syscall that rewrites the
//! frame it returns through (as Linux's `rt_sigreturn` does). RCX then no
//! longer matches RIP, so the kernel returns by IRET instead of SYSRET.
//! - `canonical`: IRET lands in `landed`;
//! - `noncanonical`: where `sysretq` would fault in ring 0 on Intel
//!   (CVE-2012-0217); the IRET then faults (AMD, QEMU: at the first user
//!   fetch) and this process gets a #GP;
//! - `badss`: SS = the kernel's data selector with RPL 3: the IRET itself
//!   faults in the kernel, which turns it into this process's #GP.
#![no_std]
#![no_main]

use ulib::{println, Args};

extern "C" fn landed() -> ! {
    println!("sysret: landed at {:#x}: the kernel returned by IRET", landed as *const () as usize);
    ulib::exit(0)
}

fn main(args: Args) -> i64 {
    let (target, ss) = match args.word(0) {
        Some("canonical") => (landed as *const () as u64, 0),
        Some("noncanonical") => (0x8000_0000_0000_0000, 0),
        Some("badss") => (landed as *const () as u64, 0x18 | 3),
        _ => {
            println!("sysret: usage: sysret canonical|noncanonical|badss");
            return 2;
        }
    };
    println!("sysret: asking the kernel to return to {target:#x} (SS {ss:#x}, 0 = unchanged)");
    ulib::set_return(target, ss);
    println!("sysret: returned to the caller?");
    1
}

ulib::entry!(main);
