//! `stack_info`: which stack an address is on (Linux `get_stack_info`).
//!
//! Used by the #DF/#PF handlers (whose guard page was hit?), by handlers that
//! report where they ran, by the oops and by the backtrace. It knows every
//! stack: each CPU's exception and IRQ stacks, every thread stack, the
//! extra stacks of the pool, and the
//! bootloader's stack the boot code starts on.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::layout::{classify_cea, estack_range, CeaPart, EStack, PAGE_SIZE};

/// The bootloader's stack, [bottom, top), which boot runs on until the
/// scheduler starts (0, 0: not recorded yet).
static BOOT_STACK: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Record the stack the bootloader started the kernel on (boot does, first thing).
pub fn set_boot_stack(bottom: u64, top: u64) {
    BOOT_STACK[0].store(bottom, Ordering::Relaxed);
    BOOT_STACK[1].store(top, Ordering::Release);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackKind {
    /// A thread's stack (or the bootloader's stack the boot code starts on).
    Task,
    /// A CPU's IRQ stack.
    Irq,
    /// A stack of the extra-stack pool, borrowed by a task (Owens' RFC).
    Extra,
    Exception(EStack),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackInfo {
    pub kind: StackKind,
    pub cpu: usize,
    /// Lowest byte.
    pub bottom: u64,
    /// One past the highest byte (the initial RSP).
    pub top: u64,
}

impl StackInfo {
    /// The stack-type name of markers and messages (`TASK`, `#DF`, `NMI`, ...).
    pub fn name(&self) -> &'static str {
        match self.kind {
            StackKind::Task => "TASK",
            StackKind::Irq => "IRQ",
            StackKind::Extra => "EXTRA",
            StackKind::Exception(e) => e.name(),
        }
    }

    pub fn contains(&self, addr: u64) -> bool {
        (self.bottom..self.top).contains(&addr)
    }
}

fn boot_task_stack() -> Option<StackInfo> {
    let top = BOOT_STACK[1].load(Ordering::Acquire);
    let bottom = BOOT_STACK[0].load(Ordering::Relaxed);
    (top != 0).then_some(())?;
    Some(StackInfo { kind: StackKind::Task, cpu: 0, bottom, top })
}

fn exception_stack(cpu: usize, kind: EStack) -> StackInfo {
    let (bottom, top) = estack_range(cpu, kind);
    StackInfo { kind: StackKind::Exception(kind), cpu, bottom, top }
}

fn thread_stack(s: crate::stacks::thread::ThreadStack) -> StackInfo {
    StackInfo { kind: StackKind::Task, cpu: crate::arch::percpu::current_cpu_id(), bottom: s.bottom, top: s.top() }
}

fn extra_stack(bottom: u64, top: u64) -> StackInfo {
    StackInfo { kind: StackKind::Extra, cpu: crate::arch::percpu::current_cpu_id(), bottom, top }
}

fn irq_stacks() -> impl Iterator<Item = StackInfo> {
    crate::arch::percpu::online_cpus().filter_map(|cpu| {
        let (bottom, top) = crate::stacks::irq::range(cpu)?;
        Some(StackInfo { kind: StackKind::Irq, cpu, bottom, top })
    })
}

/// The stack that holds `addr`.
pub fn stack_of(addr: u64) -> Option<StackInfo> {
    if let Some((cpu, kind, CeaPart::Stack)) = classify_cea(addr) {
        return crate::stacks::exception::mapped(cpu).then(|| exception_stack(cpu, kind));
    }
    if let Some(s) = irq_stacks().find(|s| s.contains(addr)) {
        return Some(s);
    }
    if let Some((s, false)) = crate::stacks::thread::find(addr) {
        return Some(thread_stack(s));
    }
    if let Some((bottom, top, false)) = crate::stacks::extra::find(addr) {
        return Some(extra_stack(bottom, top));
    }
    boot_task_stack().filter(|s| s.contains(addr))
}

/// The stack whose guard page (the unmapped page just below it) holds `addr`:
/// an overflow of that stack. For the DB2 hole the stack has size 0.
pub fn guard_hit(addr: u64) -> Option<StackInfo> {
    if let Some((cpu, kind, CeaPart::GuardBelow)) = classify_cea(addr) {
        return crate::stacks::exception::mapped(cpu).then(|| exception_stack(cpu, kind));
    }
    if let Some(s) = irq_stacks().find(|s| (s.bottom - PAGE_SIZE..s.bottom).contains(&addr)) {
        return Some(s);
    }
    if let Some((s, true)) = crate::stacks::thread::find(addr) {
        return Some(thread_stack(s));
    }
    if let Some((bottom, top, true)) = crate::stacks::extra::find(addr) {
        return Some(extra_stack(bottom, top));
    }
    boot_task_stack().filter(|s| (s.bottom - PAGE_SIZE..s.bottom).contains(&addr))
}

/// "TASK", "#DB1", ..., "TASK guard page" for an address in the guard page
/// below a stack, or "?" for an address on no known stack.
pub fn name_of(addr: u64) -> &'static str {
    if let Some(s) = stack_of(addr) {
        return s.name();
    }
    match guard_hit(addr).map(|s| s.kind) {
        Some(StackKind::Task) => "TASK guard page",
        Some(StackKind::Irq) => "IRQ guard page",
        Some(StackKind::Extra) => "EXTRA guard page",
        Some(StackKind::Exception(e)) => match e {
            EStack::DF => "#DF guard page",
            EStack::NMI => "NMI guard page",
            EStack::DB2 => "#DB2 guard page",
            EStack::DB1 => "#DB1 guard page",
            EStack::DB => "#DB guard page",
            EStack::MCE => "#MC guard page",
            EStack::PF2 => "#PF2 guard page",
            EStack::PF1 => "#PF1 guard page",
            EStack::PF => "#PF guard page",
            EStack::ENTRY => "ENTRY guard page",
        },
        None => "?",
    }
}
