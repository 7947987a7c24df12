//! `IrqMutex`: a spin lock that also disables interrupts on this CPU while
//! held (Linux `spin_lock_irqsave`).
//!
//! Once the timer preempts threads, a plain spin lock is a deadlock waiting
//! to happen on one CPU: a thread preempted while holding it, and the next
//! thread spinning for it forever. With interrupts off no preemption can
//! happen inside the critical section. Every lock a thread may take (frames,
//! page tables, vmap area, heap, scheduler) is one of these.

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicUsize, Ordering};

use x86_64::instructions::interrupts;

use crate::arch::percpu::current_cpu_id;

pub struct IrqMutex<T> {
    inner: spin::Mutex<T>,
    /// CPU id + 1 of the holder (0: free), so a path that must not wait for
    /// its own CPU (the oops path) can tell "held here" from "held elsewhere".
    owner: AtomicUsize,
}

/// Count a spin lock taken on this CPU (interrupts are off: no migration
/// until it is released). The oops path reads the count.
pub fn note_lock_taken() {
    if crate::arch::percpu::ready() {
        crate::arch::percpu::this_cpu().lock_taken();
    }
}

/// The lock counted by `note_lock_taken` is released.
pub fn note_lock_released() {
    if crate::arch::percpu::ready() {
        crate::arch::percpu::this_cpu().lock_released();
    }
}

/// Who holds a lock that `lock_bounded` could not take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// This CPU: it was interrupted inside the critical section, which will
    /// never finish if we wait for it.
    ByThisCpu,
    /// Another CPU held it for the whole wait.
    ByCpu(usize),
}

pub struct IrqMutexGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    owner: &'a AtomicUsize,
    /// Whether interrupts were on before `lock`, to restore on drop.
    were_enabled: bool,
    /// Counted in this CPU's `locks_held` (all but `lock_irqs_off`).
    counted: bool,
}

impl<T> IrqMutex<T> {
    pub const fn new(value: T) -> Self {
        IrqMutex { inner: spin::Mutex::new(value), owner: AtomicUsize::new(0) }
    }

    fn guard<'a>(&'a self, guard: spin::MutexGuard<'a, T>, were_enabled: bool) -> IrqMutexGuard<'a, T> {
        self.owner.store(current_cpu_id() + 1, Ordering::Relaxed);
        note_lock_taken();
        IrqMutexGuard { guard: Some(guard), owner: &self.owner, were_enabled, counted: true }
    }

    pub fn lock(&self) -> IrqMutexGuard<'_, T> {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        let guard = self.inner.lock();
        self.guard(guard, were_enabled)
    }

    /// The lock, for a caller that has interrupts off already (Linux
    /// `raw_spin_lock` under `local_irq_disable`): no flags saved, none
    /// restored, and not counted in `locks_held` — the context switch takes
    /// its run queue's lock this way, after its own "scheduling while
    /// atomic" check and never across the switch.
    /// Only once this CPU's per-CPU area is set up (the owner is its number).
    pub fn lock_irqs_off(&self) -> IrqMutexGuard<'_, T> {
        let guard = self.inner.lock();
        self.owner.store(crate::arch::percpu::this_cpu().id().wrapping_add(1), Ordering::Relaxed);
        IrqMutexGuard { guard: Some(guard), owner: &self.owner, were_enabled: false, counted: false }
    }

    /// The lock, waiting at most `ms` for another CPU to release it; never
    /// waits when this CPU holds it (for paths that cannot return to the
    /// holder: the oops path).
    pub fn lock_bounded(&self, ms: u64) -> Result<IrqMutexGuard<'_, T>, Held> {
        let me = current_cpu_id() + 1;
        let mut guard = None;
        crate::time::spin_until(ms, || {
            if let Some(g) = self.try_lock() {
                guard = Some(g);
                return true;
            }
            // Held by this CPU: waiting would never end.
            self.owner.load(Ordering::Relaxed) == me
        });
        guard.ok_or_else(|| match self.owner.load(Ordering::Relaxed) {
            o if o == me => Held::ByThisCpu,
            o => Held::ByCpu(o.saturating_sub(1)),
        })
    }

    /// The lock if free (for paths that must not wait: the oops printer).
    pub fn try_lock(&self) -> Option<IrqMutexGuard<'_, T>> {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        match self.inner.try_lock() {
            Some(g) => Some(self.guard(g, were_enabled)),
            None => {
                if were_enabled {
                    interrupts::enable();
                }
                None
            }
        }
    }
}

impl<T> Deref for IrqMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("guard lives until drop")
    }
}

impl<T> DerefMut for IrqMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("guard lives until drop")
    }
}

impl<T> Drop for IrqMutexGuard<'_, T> {
    fn drop(&mut self) {
        self.owner.store(0, Ordering::Relaxed);
        drop(self.guard.take()); // unlock first, then allow interrupts
        if self.counted {
            note_lock_released();
        }
        if self.were_enabled {
            interrupts::enable();
        }
    }
}
