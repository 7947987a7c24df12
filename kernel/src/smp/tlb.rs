//! TLB shoot-down (Linux `arch/x86/mm/tlb.c`): when a kernel range is
//! unmapped (a thread stack freed by `vfree`), every other CPU may still
//! hold its translations, and must drop them before the frames are reused;
//! when user memory is unmapped (`munmap`), every CPU that has the process's
//! address space loaded must.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::percpu::{self, this_cpu};
use crate::layout::MAX_CPUS;

/// Per CPU: TLB shoot-downs it has carried out for other CPUs.
static TLB_SHOOTDOWNS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Leave the shoot-down out, to show the bug it prevents (`tlb-shootdown
/// CPU skip`). A debugging knob, as Linux's `nopti`-style switches are.
pub static SKIP_SHOOTDOWN: AtomicBool = AtomicBool::new(false);

/// Flush `[start, end)` from every other CPU's TLB and wait until they have
/// (Linux `flush_tlb_kernel_range`); the caller has flushed its own.
pub fn flush_tlb_kernel_range(start: u64, end: u64) {
    if SKIP_SHOOTDOWN.load(Ordering::SeqCst) {
        return;
    }
    let range = (start, end);
    super::call_on(percpu::online_cpus(), flush_tlb_call, &range as *const (u64, u64) as u64);
}

/// Flush user range `[start, end)` from the TLBs of the other CPUs in
/// `cpus` (those with the address space loaded) and wait (Linux
/// `flush_tlb_mm_range`); the caller has flushed its own.
pub fn flush_tlb_mm_range(cpus: u64, start: u64, end: u64) {
    if SKIP_SHOOTDOWN.load(Ordering::SeqCst) {
        return;
    }
    let range = (start, end);
    let targets = percpu::online_cpus().filter(|&c| cpus & (1 << c) != 0);
    super::call_on(targets, flush_tlb_call, &range as *const (u64, u64) as u64);
}

fn flush_tlb_call(arg: u64) {
    // SAFETY: the sender's `(start, end)`, alive while it waits.
    let (start, end) = unsafe { *(arg as *const (u64, u64)) };
    crate::arch::cpu::flush_tlb_range(start, end);
    TLB_SHOOTDOWNS[this_cpu().id()].fetch_add(1, Ordering::Relaxed);
}

/// TLB shoot-downs `cpu` has carried out.
pub fn tlb_shootdowns(cpu: usize) -> u64 {
    TLB_SHOOTDOWNS[cpu].load(Ordering::Relaxed)
}
