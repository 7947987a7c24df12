//! `IrqMutex`: a spin lock that also disables interrupts on this CPU while
//! held (Linux `spin_lock_irqsave`).
//!
//! Once the timer preempts threads, a plain spin lock is a deadlock waiting
//! to happen on one CPU: a thread preempted while holding it, and the next
//! thread spinning for it forever. With interrupts off no preemption can
//! happen inside the critical section. Every lock a thread may take (frames,
//! page tables, vmap area, heap, scheduler) is one of these.

use core::ops::{Deref, DerefMut};

use x86_64::instructions::interrupts;

pub struct IrqMutex<T> {
    inner: spin::Mutex<T>,
}

pub struct IrqMutexGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    /// Whether interrupts were on before `lock`, to restore on drop.
    were_enabled: bool,
}

impl<T> IrqMutex<T> {
    pub const fn new(value: T) -> Self {
        IrqMutex { inner: spin::Mutex::new(value) }
    }

    pub fn lock(&self) -> IrqMutexGuard<'_, T> {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        IrqMutexGuard { guard: Some(self.inner.lock()), were_enabled }
    }

    /// The lock if free (for paths that must not wait: the oops printer).
    pub fn try_lock(&self) -> Option<IrqMutexGuard<'_, T>> {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        match self.inner.try_lock() {
            Some(g) => Some(IrqMutexGuard { guard: Some(g), were_enabled }),
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
        drop(self.guard.take()); // unlock first, then allow interrupts
        if self.were_enabled {
            interrupts::enable();
        }
    }
}
