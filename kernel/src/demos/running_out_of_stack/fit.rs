//! threads-fit: the memory case for small stacks.

use super::*;

/// Stacks allocated per size to measure what one costs.
const FIT_SAMPLE: u64 = 32;

/// `threads-fit`: per stack size, the physical memory one thread costs
/// (its stack's frames measured over FIT_SAMPLE allocations, page tables
/// included; the guard pages cost none) plus its task structure, and how
/// many such threads the usable memory holds. Then the same for dynamic
/// 16 KiB stacks, from what the dynamic threads that ended so far had
/// backed at their end (their peak): run a mix first.
pub fn threads_fit(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    let (usable, _) = phys::counts();
    let usable_bytes = usable * PAGE_SIZE;
    let task = core::mem::size_of::<sched::Task>() as u64;
    println!(
        "threads-fit: {} KiB usable memory; a task structure is {task} bytes; guard pages are virtual only",
        usable_bytes / 1024
    );
    println!("stack    frames/stack  bytes/thread  threads that fit");
    for size in THREAD_STACK_SIZES {
        thread::drain_cache();
        let before = phys::counts().1;
        let stacks: Vec<_> =
            (0..FIT_SAMPLE).map(|_| thread::alloc_sized(size, None)).collect::<Result<_, _>>().map_err(failed)?;
        // Other CPUs may free frames meanwhile (the soak runs this with
        // load around it): never below zero.
        let frames = before.saturating_sub(phys::counts().1);
        stacks.into_iter().for_each(thread::free);
        thread::drain_cache();
        // Per stack, in hundredths of a frame (page-table pages are shared).
        let per_thread = frames * PAGE_SIZE / FIT_SAMPLE + task;
        println!(
            "{:>3} KiB  {:>5}.{:02}        {:>8}      {:>8}",
            size / 1024,
            frames / FIT_SAMPLE,
            frames * 100 / FIT_SAMPLE % 100,
            per_thread,
            usable_bytes / per_thread
        );
    }
    let freed = crate::stacks::dynamic::freed();
    let n: u64 = freed.iter().sum();
    let pages: u64 = freed.iter().enumerate().map(|(i, k)| (i as u64 + 1) * k).sum();
    if n == 0 {
        println!("16 KiB dynamic: no dynamic stack has ended yet (run threads on them first: dynamic-stacks on)");
        return Ok(());
    }
    // Per thread, in hundredths of a frame: its peak backed pages, averaged.
    let per_thread = pages * PAGE_SIZE / n + task;
    let fixed = THREAD_SIZE + task;
    println!(
        "{:>3} KiB  {:>5}.{:02}        {:>8}      {:>8}   dynamic: the peak of {n} stacks that ended, {}.{:02}x the threads of fixed {} KiB",
        THREAD_SIZE / 1024,
        pages / n,
        pages * 100 / n % 100,
        per_thread,
        usable_bytes / per_thread,
        fixed / per_thread,
        fixed * 100 / per_thread % 100,
        THREAD_SIZE / 1024
    );
    let spread: Vec<_> = freed.iter().enumerate().map(|(i, k)| alloc::format!("{k} with {}", i + 1)).collect();
    println!("16 KiB dynamic: pages backed at the end: {}", spread.join(", "));
    Ok(())
}
