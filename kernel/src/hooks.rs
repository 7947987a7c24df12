//! Hooks: how a lower layer calls up. The upper layer registers a function
//! (an NMI handler, a #DB or #MC hook) and the lower one calls whatever is
//! registered, in any context. The bottom of the layer order: pure atomics,
//! no locks, nothing below it.

use core::sync::atomic::{AtomicUsize, Ordering};

/// A fixed set of registered functions that any context may call without a
/// lock — NMI and #DB handlers included — as Linux's handler lists are read
/// under RCU. Registration takes the first free slot; nothing unregisters.
pub struct FnSlots<F: Copy, const N: usize> {
    slots: [AtomicUsize; N],
    _f: core::marker::PhantomData<F>,
}

impl<F: Copy, const N: usize> FnSlots<F, N> {
    /// # Safety
    /// `F` must be a function pointer type (stored as its address).
    pub const unsafe fn new() -> Self {
        assert!(core::mem::size_of::<F>() == core::mem::size_of::<usize>());
        FnSlots { slots: [const { AtomicUsize::new(0) }; N], _f: core::marker::PhantomData }
    }

    /// Add `f`; registering the same function twice is a no-op. Panics when
    /// all `N` slots are taken.
    pub fn register(&self, f: F) {
        // SAFETY: F is a function pointer (`new`'s contract), the size of a usize.
        let addr = unsafe { core::mem::transmute_copy::<F, usize>(&f) };
        for slot in &self.slots {
            match slot.compare_exchange(0, addr, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(existing) if existing == addr => return,
                Err(_) => continue,
            }
        }
        panic!("more than {N} functions registered in one slot set");
    }

    /// The registered functions, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = F> + '_ {
        self.slots.iter().map(|s| s.load(Ordering::Acquire)).filter(|&a| a != 0).map(|a| {
            // SAFETY: only `register` stores non-zero values, each an F.
            unsafe { core::mem::transmute_copy::<usize, F>(&a) }
        })
    }
}
