//! External interrupts: which handler each vector runs (registered by the
//! code that owns the vector) and the names `irqs` shows. The dispatch on
//! the IRQ stack is the entry layer's (`entry::irq`).

use core::sync::atomic::{AtomicUsize, Ordering};

use ::x86_64::instructions::interrupts::without_interrupts;

use super::regs::Regs;

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
