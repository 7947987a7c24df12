//! `run uthreads`: a process with two threads on two CPUs (each with its
//! own 16 KiB kernel stack, one address space). The second thread reads a
//! page in a loop; the first unmaps it. The kernel must shoot the page out
//! of the other CPU's TLB before freeing it: the reader's next read then
//! faults, and the segfault ends the whole process. Without the shoot-down
//! the reader would go on reading a freed frame.
//!
//! `run uthreads wake --cpu C` (pinned, so both threads share a CPU): 20
//! times, a new thread is created and the creator spins until it has run.
//! Creating it asks this CPU to reschedule; the return to user mode must
//! honour that (Linux `exit_to_user_mode_loop`), so the new thread runs
//! before the creator's next user instruction, not a timer tick later.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use ulib::{println, Args};

#[repr(C, align(4096))]
struct Page([u64; 512]);
static mut PAGE: Page = Page([7; 512]);

#[repr(C, align(16))]
struct Stack([u8; 16384]);
static mut READER_STACK: Stack = Stack([0; 16384]);

static READS: AtomicU64 = AtomicU64::new(0);

extern "C" fn reader(page: u64) -> ! {
    println!("uthreads: reader thread {} started", ulib::gettid());
    loop {
        // SAFETY: the page is mapped until the other thread unmaps it; then
        // this read faults, which is the point.
        let v = unsafe { core::ptr::read_volatile(page as *const u64) };
        READS.fetch_add(v, Ordering::Relaxed);
    }
}

const WAKE_ROUNDS: usize = 20;
#[repr(C, align(16))]
struct SmallStacks([[u8; 2048]; WAKE_ROUNDS]);
static mut WAKE_STACKS: SmallStacks = SmallStacks([[0; 2048]; WAKE_ROUNDS]);
static RAN: AtomicBool = AtomicBool::new(false);

extern "C" fn new_thread(_: u64) -> ! {
    RAN.store(true, Ordering::SeqCst);
    ulib::exit_thread(0)
}

fn wake() -> i64 {
    let mut late = 0;
    for round in 0..WAKE_ROUNDS {
        RAN.store(false, Ordering::SeqCst);
        let top = &raw const WAKE_STACKS as u64 + ((round + 1) * 2048) as u64;
        let tid = ulib::clone_thread(new_thread, top, 0);
        if tid < 0 {
            println!("uthreads: clone_thread failed: {tid}");
            return 1;
        }
        let mut spins = 0u64;
        while !RAN.load(Ordering::SeqCst) {
            spins += 1;
            core::hint::spin_loop();
        }
        late += usize::from(spins > 0);
    }
    println!("uthreads: {late} of {WAKE_ROUNDS} new threads ran only after their creator was back in user mode");
    0
}

fn main(args: Args) -> i64 {
    if args.word(0) == Some("wake") {
        return wake();
    }
    let page = &raw const PAGE as u64;
    let stack_top = &raw const READER_STACK as u64 + 16384;
    let tid = ulib::clone_thread(reader, stack_top, page);
    if tid < 0 {
        println!("uthreads: clone_thread failed: {tid}");
        return 1;
    }
    while READS.load(Ordering::Relaxed) < 7 * 100_000 {
        core::hint::spin_loop();
    }
    println!("uthreads: thread {tid} reads {page:#x}; thread {} unmaps it", ulib::gettid());
    let r = ulib::munmap(page, 4096);
    println!("uthreads: munmap returned {r}");
    // The reader faults on its next read; its segfault ends this thread too,
    // at its next return to user mode. Wait for that, boundedly.
    let start = ulib::uptime_ms();
    while ulib::uptime_ms() - start < 3000 {
        ulib::sched_yield();
    }
    println!("uthreads: the reader never faulted: a stale TLB entry kept the freed page readable");
    1
}

ulib::entry!(main);
