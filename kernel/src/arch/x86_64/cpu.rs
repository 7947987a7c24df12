//! Small CPU operations: halting, reading RSP/RBP, forcing a triple fault.

use core::arch::asm;

/// Stop this CPU for good (interrupts off, `hlt` in a loop).
pub fn halt_forever() -> ! {
    loop {
        ::x86_64::instructions::interrupts::disable();
        ::x86_64::instructions::hlt();
    }
}

/// The caller's frame pointer (RBP), the start of a frame-pointer walk.
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register; no memory or flags are touched.
    unsafe { asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) };
    rbp
}

/// The current stack pointer.
#[inline(always)]
pub fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: reads a register; no memory or flags are touched.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    rsp
}

/// Divide by zero: raise #DE (the `doublefault` demo, with #DE's gate
/// removed). CR2 is cleared first, so a stale fault address cannot pass for
/// a stack overflow in the #DF that follows.
pub fn divide_error() -> ! {
    // SAFETY: CR2 is only read by fault handlers; the division traps and
    // nothing after it runs.
    unsafe {
        asm!("mov cr2, {}", in(reg) 0u64, options(nostack));
        asm!("xor edx, edx", "xor eax, eax", "xor ecx, ecx", "div rcx", out("rax") _, out("rdx") _, out("rcx") _);
    }
    unreachable!("divide by zero returned")
}

/// Load an IDT with limit 0 and execute `int3`: the #BP gate is beyond the
/// limit → #GP, whose gate is beyond it too → #DF, likewise → triple fault,
/// and QEMU (`-no-reboot`) exits without the kernel reporting anything.
pub fn triple_fault() -> ! {
    let empty = ::x86_64::structures::DescriptorTablePointer { limit: 0, base: ::x86_64::VirtAddr::zero() };
    // SAFETY: deliberately fatal; nothing runs after the trap.
    unsafe {
        ::x86_64::instructions::tables::lidt(&empty);
        asm!("int3", options(nomem, nostack));
    }
    halt_forever()
}

/// Zero `bytes` (a multiple of 8) at `dst` with one `rep stosq` (Linux
/// `clear_page_rep`): 8 bytes a step, where the generic `memset` took about
/// five instructions per 8 bytes (docs/performance.md).
///
/// # Safety
/// `[dst, dst + bytes)` is mapped, writable and the caller's; `dst` is
/// 8-byte aligned.
pub unsafe fn clear_words(dst: *mut u8, bytes: usize) {
    // SAFETY: per the contract; RDI/RCX are clobbered, DF is clear (the
    // ABI's state, and every entry stub runs `cld`).
    unsafe {
        asm!("rep stosq", inout("rdi") dst => _, inout("rcx") bytes / 8 => _, in("rax") 0u64, options(nostack, preserves_flags))
    };
}

/// Drop this CPU's TLB entries for `[start, end)`. Kernel pages are global,
/// which a CR3 reload would not flush: `invlpg` each page, or for a large
/// range toggle CR4.PGE, which flushes everything (Linux `__flush_tlb_global`).
pub fn flush_tlb_range(start: u64, end: u64) {
    use ::x86_64::registers::control::{Cr4, Cr4Flags};
    const MAX_INVLPG_PAGES: u64 = 64;
    let page = crate::layout::PAGE_SIZE;
    if (end - start) / page <= MAX_INVLPG_PAGES {
        for va in (start..end).step_by(page as usize) {
            ::x86_64::instructions::tlb::flush(::x86_64::VirtAddr::new(va));
        }
    } else {
        ::x86_64::instructions::interrupts::without_interrupts(|| {
            let cr4 = Cr4::read();
            // SAFETY: clearing and restoring PGE only flushes the TLB.
            unsafe {
                Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
                Cr4::write(cr4);
            }
        });
    }
}

/// Which of the CPU's guards between kernel and user memory are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Protections {
    /// The kernel cannot execute user pages (CR4.SMEP).
    pub smep: bool,
    /// The kernel cannot read or write user pages through user addresses
    /// unless RFLAGS.AC is set (`stac` ... `clac`) (CR4.SMAP).
    pub smap: bool,
    /// User mode cannot read descriptor-table registers: `sgdt`, `sidt`,
    /// `sldt`, `smsw`, `str` raise #GP (CR4.UMIP).
    pub umip: bool,
}

impl core::fmt::Display for Protections {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let on = |b: bool| if b { "on" } else { "not supported" };
        write!(f, "SMEP {}, SMAP {}, UMIP {}", on(self.smep), on(self.smap), on(self.umip))
    }
}

/// Turn on SMEP, SMAP and UMIP where the CPU has them (Linux `setup_smep`,
/// `setup_smap`, `setup_umip`; QEMU's `-cpu max` has all three). tristack
/// never touches user memory through a user address: every copy goes
/// through the direct map after a page-table walk (`AddressSpace::read`
/// and `write`), so no `stac`/`clac` pair is needed anywhere — and SMAP
/// turns a kernel bug that does touch one into an oops.
pub fn enable_protections() {
    use ::x86_64::registers::control::{Cr4, Cr4Flags};
    // SAFETY: CPUID leaf 7 exists on every x86_64 CPU QEMU models (max
    // leaf >= 7); reading it has no side effects.
    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
    let mut flags = Cr4Flags::empty();
    flags.set(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION, leaf7.ebx & (1 << 7) != 0);
    flags.set(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION, leaf7.ebx & (1 << 20) != 0);
    flags.set(Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION, leaf7.ecx & (1 << 2) != 0);
    // SAFETY: the kernel runs from supervisor pages and reaches user memory
    // only through the direct map (above), so none of the three changes
    // what correct kernel code may do.
    unsafe { Cr4::update(|f| f.insert(flags)) };
}

/// What `enable_protections` turned on, on this CPU (read from CR4).
pub fn protections() -> Protections {
    use ::x86_64::registers::control::{Cr4, Cr4Flags};
    let cr4 = Cr4::read();
    Protections {
        smep: cr4.contains(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION),
        smap: cr4.contains(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION),
        umip: cr4.contains(Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION),
    }
}
