//! The register frame every exception entry saves (Linux `struct pt_regs`),
//! and the register block of an oops (Linux `__show_regs`).

use core::arch::asm;
use core::mem::{offset_of, size_of};

/// Saved by the entry stubs, lowest address first: general registers (pushed
/// by `SAVE_REGS`), the vector and error code (pushed by the per-vector stub;
/// a dummy 0 where the CPU pushes none), then the hardware frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Regs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    // The hardware frame (iretq pops these).
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

// Soundness: the entry stubs call Rust with RSP 16-byte aligned only because
// the frame (with vector and error code) is a multiple of 16 bytes plus the
// 8 the CPU's alignment leaves: 22 words = 176 bytes, 16 * 11.
const _: () = assert!(size_of::<Regs>().is_multiple_of(16));
// The stubs hard-code nothing: they take these offsets as `const` operands.
pub const REGS_RBP: usize = offset_of!(Regs, rbp);
pub const REGS_RIP: usize = offset_of!(Regs, rip);
pub const REGS_CS: usize = offset_of!(Regs, cs);
pub const REGS_RAX: usize = offset_of!(Regs, rax);
pub const REGS_ERROR_CODE: usize = offset_of!(Regs, error_code);
/// Bytes of a register frame: what an entry from user mode puts at the top
/// of the thread stack (Linux `sizeof(struct pt_regs)` + our vector word).
pub const REGS_SIZE: usize = size_of::<Regs>();

/// RFLAGS.RF: resume without re-triggering an instruction breakpoint.
pub const RFLAGS_RF: u64 = 1 << 16;
/// RFLAGS.IF: maskable interrupts enabled.
pub const RFLAGS_IF: u64 = 1 << 9;

impl Regs {
    /// Interrupted code ran in kernel mode (CPL 0).
    pub fn from_kernel(&self) -> bool {
        self.cs & 3 == 0
    }

    /// Interrupted code ran in user mode (CPL 3; Linux `user_mode(regs)`).
    pub fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

macro_rules! read_cr {
    ($cr:literal) => {{
        let v: u64;
        // SAFETY: reading a control register has no side effects.
        unsafe { asm!(concat!("mov {}, ", $cr), out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }};
}

pub fn read_cr0() -> u64 {
    read_cr!("cr0")
}
pub fn read_cr2() -> u64 {
    read_cr!("cr2")
}
pub fn read_cr3() -> u64 {
    read_cr!("cr3")
}
/// Load `cr3` (flushing every non-global TLB entry).
///
/// # Safety
/// `cr3` is a top-level table that maps the running code, stack and data.
pub unsafe fn write_cr3(cr3: u64) {
    // SAFETY: per the contract.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) cr3, options(nostack, preserves_flags)) };
}
pub fn read_cr4() -> u64 {
    read_cr!("cr4")
}

fn read_seg_ds_es() -> (u16, u16) {
    let (ds, es): (u16, u16);
    // SAFETY: reading segment selectors has no side effects.
    unsafe {
        asm!("mov {0:x}, ds", "mov {1:x}, es", out(reg) ds, out(reg) es, options(nomem, nostack, preserves_flags));
    }
    (ds, es)
}

/// The register block of an oops, in Linux's shape, line by line to
/// `line` (the oops prints them; the console is a layer above).
pub fn show_regs(r: &Regs, line: &mut dyn FnMut(core::fmt::Arguments)) {
    use ::x86_64::registers::model_specific::{FsBase, GsBase};
    line(format_args!("RSP: {:04x}:{:016x} EFLAGS: {:08x}", r.ss, r.rsp, r.rflags));
    line(format_args!("RAX: {:016x} RBX: {:016x} RCX: {:016x}", r.rax, r.rbx, r.rcx));
    line(format_args!("RDX: {:016x} RSI: {:016x} RDI: {:016x}", r.rdx, r.rsi, r.rdi));
    line(format_args!("RBP: {:016x} R08: {:016x} R09: {:016x}", r.rbp, r.r8, r.r9));
    line(format_args!("R10: {:016x} R11: {:016x} R12: {:016x}", r.r10, r.r11, r.r12));
    line(format_args!("R13: {:016x} R14: {:016x} R15: {:016x}", r.r13, r.r14, r.r15));
    line(format_args!("FS:  {:016x} GS: {:016x}", FsBase::read().as_u64(), GsBase::read().as_u64()));
    let (ds, es) = read_seg_ds_es();
    line(format_args!("CS:  {:04x} DS: {:04x} ES: {:04x} CR0: {:016x}", r.cs, ds, es, read_cr0()));
    line(format_args!("CR2: {:016x} CR3: {:016x} CR4: {:016x}", read_cr2(), read_cr3(), read_cr4()));
    if let Some([dr0, dr1, dr2, dr3, dr6, dr7]) = super::debug::in_use() {
        line(format_args!("DR0: {dr0:016x} DR1: {dr1:016x} DR2: {dr2:016x}"));
        line(format_args!("DR3: {dr3:016x} DR6: {dr6:016x} DR7: {dr7:016x}"));
    }
}

/// The frame an entry from user mode left at the top of the thread stack
/// ending at `top`, if that is what is there (user CS and SS in place).
pub fn user_frame_at(top: u64) -> Option<Regs> {
    let at = top - REGS_SIZE as u64;
    // SAFETY: `top` is the top of a mapped task stack (the unwinder's
    // `stack_of` said so); a frame-sized read inside it.
    let regs = unsafe { (at as *const Regs).read_volatile() };
    (regs.cs == u64::from(super::gdt::USER_CS) && regs.ss == u64::from(super::gdt::USER_DS)).then_some(regs)
}

/// The user registers at the end of a trace that came from user mode
/// (Linux `show_regs` → `__show_regs` of `task_pt_regs`): `ORIG_RAX` is
/// the syscall number for a syscall, the error code for an exception.
pub fn show_user_regs(r: &Regs, line: &mut dyn FnMut(core::fmt::Arguments)) {
    line(format_args!("RIP: {:04x}:0x{:x}", r.cs, r.rip));
    line(format_args!("RSP: {:04x}:{:016x} EFLAGS: {:08x} ORIG_RAX: {:016x}", r.ss, r.rsp, r.rflags, r.error_code));
    line(format_args!("RAX: {:016x} RBX: {:016x} RCX: {:016x}", r.rax, r.rbx, r.rcx));
    line(format_args!("RDX: {:016x} RSI: {:016x} RDI: {:016x}", r.rdx, r.rsi, r.rdi));
    line(format_args!("RBP: {:016x} R08: {:016x} R09: {:016x}", r.rbp, r.r8, r.r9));
    line(format_args!("R10: {:016x} R11: {:016x} R12: {:016x}", r.r10, r.r11, r.r12));
    line(format_args!("R13: {:016x} R14: {:016x} R15: {:016x}", r.r13, r.r14, r.r15));
}
