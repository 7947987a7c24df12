//! `run spin [MS]`: spin in user mode — no syscalls while spinning — so
//! timer IRQs, NMIs and the monitor land in ring 3. Until `kill PID`, or
//! for MS milliseconds (looking at the clock every 2^20 iterations).
#![no_std]
#![no_main]

use ulib::{println, Args};

fn main(args: Args) -> i64 {
    let ms = args.number(0, 0);
    println!("spin: pid {} spinning in user mode{}", ulib::getpid(), if ms == 0 { " until killed" } else { "" });
    let start = ulib::uptime_ms();
    let mut i: u64 = 0;
    loop {
        i = core::hint::black_box(i.wrapping_add(1));
        if ms != 0 && i.is_multiple_of(1 << 20) && ulib::uptime_ms() - start >= ms {
            break;
        }
    }
    println!("spin: done after {ms} ms");
    0
}

ulib::entry!(main);
