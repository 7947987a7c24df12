//! The IDT: which stub handles each vector and which IST stack it runs on.
//!
//! One table shared by every CPU (as in Linux); each CPU's TSS says where its
//! own IST stacks are, so the same gate lands on the right CPU's stack.
//! Gates are built by hand (16 bytes each) so the IST field is visible.

use core::cell::UnsafeCell;

use ::x86_64::instructions::tables::lidt;
use ::x86_64::structures::DescriptorTablePointer;
use ::x86_64::VirtAddr;

use super::gdt::KERNEL_CS;
use super::vectors::*;
use crate::layout::Ist;

/// Which IST each exception uses (hardware numbering; 0 = no switch).
/// #BP shares #DB's stack here. This differs from Linux 5.2–5.7, whose
/// `int3` gate has no IST (`idtentry int3 ... create_gap=1`; `ist_idts[]`
/// lists DB, NMI, DF and MC only): tristack's `int3` inside a #DB handler
/// nests onto #DB1 like a second #DB (docs/ist.md).
pub const fn ist_of(vector: u8) -> Option<Ist> {
    match vector {
        X86_TRAP_DB | X86_TRAP_BP => Some(Ist::DB),
        X86_TRAP_NMI => Some(Ist::NMI),
        X86_TRAP_DF => Some(Ist::DF),
        X86_TRAP_MC => Some(Ist::MCE),
        _ => None,
    }
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    /// Bits 0..2: IST index (1..7), 0 = stay on the current stack.
    ist: u8,
    /// P, DPL, type (0xE = 64-bit interrupt gate: clears IF on entry).
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const PRESENT: u8 = 0x80;
const INTERRUPT_GATE: u8 = 0x0e;
/// DPL 3: user code may raise the vector with `int N` (Linux `SYSG`: only
/// `int3` and `into`). Every other gate is DPL 0, so `int 0x20` from user
/// mode is a #GP, not a fake timer interrupt.
const DPL3: u8 = 3 << 5;

/// Vectors user code may raise itself.
const fn user_may_raise(vector: u8) -> bool {
    matches!(vector, X86_TRAP_BP | X86_TRAP_OF)
}

impl Gate {
    const MISSING: Gate =
        Gate { offset_low: 0, selector: 0, ist: 0, type_attr: 0, offset_mid: 0, offset_high: 0, reserved: 0 };

    fn new(handler: u64, ist: Option<Ist>) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist: ist.map_or(0, |i| i as u8),
            type_attr: PRESENT | INTERRUPT_GATE,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt(UnsafeCell<[Gate; 256]>);
// SAFETY: written during boot before any CPU loads it, and by the
// `doublefault` demo (one gate's P bit) with interrupts off.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([Gate::MISSING; 256]));

/// Point `vector`'s gate at `stub`, on the IST `ist_of` names, DPL 3 if
/// user code may raise it (the entry layer fills every gate at boot).
///
/// # Safety
/// No CPU has loaded the IDT yet (the boot CPU, before `load`).
pub unsafe fn set_gate(vector: u8, stub: u64) {
    // SAFETY: per the contract, nobody reads the table meanwhile.
    let gate = unsafe { &mut (*IDT.0.get())[vector as usize] };
    *gate = Gate::new(stub, ist_of(vector));
    if user_may_raise(vector) {
        gate.type_attr |= DPL3;
    }
}

/// Load the IDT on this CPU.
pub fn load() {
    let ptr = DescriptorTablePointer {
        limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
        base: VirtAddr::from_ptr(IDT.0.get()),
    };
    // SAFETY: the table is static and its exception gates point at our stubs.
    unsafe { lidt(&ptr) };
}

/// The IST a live gate names (read back from the table, for `stacks`).
pub fn gate_ist(vector: u8) -> u8 {
    // SAFETY: a read of one byte of the static table.
    unsafe { (*IDT.0.get())[vector as usize].ist & 7 }
}

/// Move `vector`'s gate to IST `ist` (None: the current stack) while the
/// kernel runs: `dynamic-stacks on` puts #PF on its own stack. One byte of
/// the shared table, so every CPU's next delivery sees the old or the new
/// value whole.
pub fn set_gate_ist(vector: u8, ist: Option<Ist>) {
    // SAFETY: a single byte store into the static table; the CPU reads the
    // gate at each delivery, and both values are valid gates.
    unsafe {
        let gate = &raw mut (*IDT.0.get())[vector as usize];
        core::ptr::addr_of_mut!((*gate).ist).write_volatile(ist.map_or(0, |i| i as u8));
    }
}

/// Point live gate `vector` at `stub` on IST `ist`, where `stub` differs
/// from the gate's present target only in its low 16 bits: the gate's
/// first 8 bytes (offset low, selector, IST, type) in one atomic store.
pub fn retarget_gate(vector: u8, stub: u64, ist: Ist) {
    // SAFETY: the static table, whose gates are 8-byte aligned (16-byte
    // entries in a table aligned to 16); every CPU reads a whole gate at
    // delivery, and both halves of the change are valid alone only
    // together, which the single store gives.
    unsafe {
        let gate = &raw mut (*IDT.0.get())[vector as usize];
        let old = *gate;
        let high = u64::from(old.offset_mid) << 16 | u64::from(old.offset_high) << 32;
        assert_eq!(stub & !0xffff, high, "vector {vector}: {stub:#x} is not in its stub's 64 KiB");
        let mut new = old;
        new.offset_low = stub as u16;
        new.ist = ist as u8;
        // The first 8 bytes of `new`, as the CPU reads them.
        let bytes: [u8; 16] = core::mem::transmute(new);
        let low = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        core::sync::atomic::AtomicU64::from_ptr(gate as *mut u64).store(low, core::sync::atomic::Ordering::SeqCst);
    }
}

/// Whether `vector`'s gate is present (ktests).
pub fn gate_present(vector: u8) -> bool {
    // SAFETY: a read of one byte of the static table.
    unsafe { (*IDT.0.get())[vector as usize].type_attr & PRESENT != 0 }
}

/// Gates `remove_gate` marked not present, one bit per vector.
static REMOVED: [core::sync::atomic::AtomicU64; 4] = [const { core::sync::atomic::AtomicU64::new(0) }; 4];

/// Mark a gate not present (the `doublefault` demo removes #DE's gate so
/// that a divide error raises #NP while delivering it: a double fault).
/// The table is shared by every CPU, so the oops that follows puts it back
/// (`restore_removed_gates`).
///
/// # Safety
/// Interrupts must be off on this CPU and no other CPU may take `vector`
/// while it is missing.
pub unsafe fn remove_gate(vector: u8) {
    REMOVED[usize::from(vector / 64)].fetch_or(1 << (vector % 64), core::sync::atomic::Ordering::SeqCst);
    // SAFETY: per the contract.
    unsafe { set_present(vector, false) };
}

/// A gate `take_gate_ist` took off its IST: `1 << 16 | vector << 8 | ist`.
static TAKEN_IST: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Take `vector`'s gate off its IST stack (the `grow --pf-on-stack` demo:
/// a growth fault the CPU cannot deliver); the oops that follows puts it
/// back (`restore_removed_gates`).
pub fn take_gate_ist(vector: u8) {
    let ist = gate_ist(vector);
    TAKEN_IST.store(1 << 16 | u32::from(vector) << 8 | u32::from(ist), core::sync::atomic::Ordering::SeqCst);
    // SAFETY: a single byte store into the static table (as `set_gate_ist`).
    unsafe {
        let gate = &raw mut (*IDT.0.get())[vector as usize];
        core::ptr::addr_of_mut!((*gate).ist).write_volatile(0);
    }
}

/// After an oops that killed a thread: make every removed gate present again.
pub fn restore_removed_gates() {
    let taken = TAKEN_IST.swap(0, core::sync::atomic::Ordering::SeqCst);
    if taken != 0 {
        // SAFETY: the byte `take_gate_ist` changed, put back as it was.
        unsafe {
            let gate = &raw mut (*IDT.0.get())[((taken >> 8) & 0xff) as usize];
            core::ptr::addr_of_mut!((*gate).ist).write_volatile(taken as u8);
        }
    }
    for (word, bits) in REMOVED.iter().enumerate() {
        let mut bits = bits.swap(0, core::sync::atomic::Ordering::SeqCst);
        while bits != 0 {
            let vector = (word * 64) as u8 + bits.trailing_zeros() as u8;
            bits &= bits - 1;
            // SAFETY: making a gate present again, pointing at its own stub.
            unsafe { set_present(vector, true) };
        }
    }
}

/// # Safety
/// As `remove_gate`'s, when `present` is false.
unsafe fn set_present(vector: u8, present: bool) {
    // SAFETY: per the contract, nobody delivers through this gate meanwhile.
    let gate = unsafe { &mut (*IDT.0.get())[vector as usize] };
    if present {
        gate.type_attr |= PRESENT;
    } else {
        gate.type_attr &= !PRESENT;
    }
}
