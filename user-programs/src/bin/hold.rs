//! `run --bg hold [THREADS]`: a process that only holds its memory (its
//! pages, page tables and kernel stacks), sleeping until it is killed
//! (`oom` starts them until memory runs out); with THREADS, that many
//! threads sleep (a `kill` of any one must end them all).
#![no_std]
#![no_main]

const MAX_THREADS: usize = 16;
const STACK: usize = 1024;

#[repr(C, align(16))]
struct Stacks([[u8; STACK]; MAX_THREADS]);
static mut STACKS: Stacks = Stacks([[0; STACK]; MAX_THREADS]);

extern "C" fn sleeper(_: u64) -> ! {
    let second = ulib::Timespec { tv_sec: 1, tv_nsec: 0 };
    loop {
        ulib::nanosleep(&second);
    }
}

fn main(args: ulib::Args) -> i64 {
    let threads = args.number(0, 1).clamp(1, MAX_THREADS as u64) as usize;
    let base = &raw const STACKS as u64;
    for n in 1..threads {
        let tid = ulib::clone_thread(sleeper, base + ((n + 1) * STACK) as u64, 0);
        if tid < 0 {
            ulib::println!("hold: clone_thread returned {tid}");
            return 1;
        }
    }
    sleeper(0)
}

ulib::entry!(main);
