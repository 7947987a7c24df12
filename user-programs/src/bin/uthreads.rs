//! `run uthreads`: a process with two threads on two CPUs (each with its
//! own 16 KiB kernel stack, one address space). The second thread reads a
//! page in a loop; the first unmaps it. The kernel must shoot the page out
//! of the other CPU's TLB before freeing it: the reader's next read then
//! faults, and the segfault ends the whole process. Without the shoot-down
//! the reader would go on reading a freed frame.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
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

fn main(_: Args) -> i64 {
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
