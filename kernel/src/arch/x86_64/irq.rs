//! External interrupts: which handler each vector runs (registered by the
//! code that owns the vector) and the names `irqs` shows. The dispatch on
//! the IRQ stack is the entry layer's (`entry::irq`).

use core::sync::atomic::{AtomicUsize, Ordering};

use ::x86_64::instructions::interrupts::without_interrupts;

use super::regs::Regs;
use super::vectors::{FIRST_DEMO_VECTOR, FIXED_DEMO_VECTORS, LAST_DEMO_VECTOR};

/// A handler for a vector, registered by the code that owns the vector.
pub type Handler = fn(&mut Regs);

/// Per vector: its handler as a function address (0 = none). Atomics, so
/// the interrupt path reads them without taking a lock.
static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];
/// Per vector: the name `irqs` shows (never read on the interrupt path).
/// (A plain spin lock, taken with interrupts off: locks with holder tracking
/// are a layer above the CPU.)
static NAMES: spin::Mutex<[Option<&'static str>; 256]> = spin::Mutex::new([None; 256]);

/// Route `vector` to `handler` (demos, devices); `name` is what `irqs` shows.
/// Panics if another owner registered `vector` already (same name again is
/// fine): two demos sharing a vector would silently steal each other's
/// interrupts.
pub fn register(vector: u8, handler: Handler, name: &'static str) {
    without_interrupts(|| register_name(vector, name));
    HANDLERS[vector as usize].store(handler as usize, Ordering::Release);
}

fn register_name(vector: u8, name: &'static str) {
    let mut names = NAMES.lock();
    if let Some(old) = names[vector as usize].filter(|&old| old != name) {
        panic!("vector {vector:#x} registered twice: '{old}' and '{name}'");
    }
    names[vector as usize] = Some(name);
}

/// Claim a free vector of the demo block for `handler` and return it (Linux
/// `assign_irq_vector`). Panics when the block is full.
pub fn claim(handler: Handler, name: &'static str) -> u8 {
    claim_in(FIRST_DEMO_VECTOR..=LAST_DEMO_VECTOR, handler, name)
}

/// `claim`, in priority class `class` (vectors `class * 16 ..`): the local
/// APIC delivers a higher class inside a lower one's handler, so nested
/// interrupts need one class each (`irqnest`).
pub fn claim_in_class(class: u8, handler: Handler, name: &'static str) -> u8 {
    let first = (class * 16).max(FIRST_DEMO_VECTOR);
    claim_in(first..=(class * 16 + 15).min(LAST_DEMO_VECTOR), handler, name)
}

fn claim_in(range: core::ops::RangeInclusive<u8>, handler: Handler, name: &'static str) -> u8 {
    let vector = without_interrupts(|| {
        let mut names = NAMES.lock();
        let free = range
            .clone()
            .find(|&v| names[v as usize].is_none() && !FIXED_DEMO_VECTORS.contains(&v))
            .unwrap_or_else(|| panic!("no free vector in {range:#x?} for '{name}'"));
        names[free as usize] = Some(name);
        free
    });
    HANDLERS[vector as usize].store(handler as usize, Ordering::Release);
    vector
}

/// The name `vector` was registered with.
pub fn name(vector: u8) -> Option<&'static str> {
    without_interrupts(|| NAMES.lock()[vector as usize])
}

/// The handler registered for `vector` (the dispatch reads it lock-free).
#[inline]
pub fn handler(vector: u8) -> Option<Handler> {
    let h = HANDLERS[vector as usize].load(Ordering::Acquire);
    // SAFETY: only `register` stores here, always a `Handler`.
    (h != 0).then(|| unsafe { core::mem::transmute::<usize, Handler>(h) })
}
