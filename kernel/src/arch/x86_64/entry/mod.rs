//! The entry layer: everything the CPU enters the kernel through. Here, the
//! stubs — the only assembly on the way into the kernel and back, one file
//! per purpose: `macros.s` (SAVE_REGS, the exits' decision, STACKLEAK),
//! `from_user.s` (exceptions from user mode, the way back), `syscall_64.s`,
//! `exceptions.s` (kernel mode, IST stubs), `irq.s` — and,
//! in the submodules, the Rust handlers they call: `traps` (exceptions
//! that end in an oops, page faults), `syscall` (`do_syscall_64`, the MSRs),
//! `usermode` (`sync_regs`, the exit to user mode and its checks); where
//! the erase on the way out starts is `arch::stackleak`. They sit
//! above every subsystem they call into (see `layering`); the registries
//! those subsystems use (vectors, NMI handlers, debug hooks) are below, in
//! `arch`.
//!
//! Protocol (Linux `arch/x86/entry/entry_64.S`, `idtentry` macros):
//!
//! 1. The CPU switches stacks if the gate names an IST entry (RSP := TSS
//!    IST[n]), aligns RSP to 16, pushes SS, RSP, RFLAGS, CS, RIP and, for
//!    some vectors, an error code.
//! 2. The per-vector stub pushes a dummy error code where the CPU pushed none
//!    (Linux `idtentry` with `has_error_code=0`), then the vector number.
//! 3. `SAVE_REGS` pushes the general registers, completing a `Regs` frame.
//! 4. A fake frame `{interrupted RBP, interrupted RIP}` is pushed and RBP
//!    pointed at it (Linux `ENCODE_FRAME_POINTER`'s purpose): a frame-pointer
//!    walk from the handler continues into the interrupted code.
//! 5. The Rust dispatcher gets `&mut Regs` in RDI, with RSP 16-byte aligned.
//! 6. On return, everything is popped in reverse and `iretq` resumes.
//!
//! Stack at the call (higher addresses first):
//! ```text
//!   SS, RSP, RFLAGS, CS, RIP       hardware frame
//!   error code (or 0), vector      stub
//!   RAX ... R15                    SAVE_REGS        <- &Regs
//!   interrupted RIP, RBP           fake frame       <- RBP, RSP
//! ```
//!
//! #DB and #BP take `debug_common`, which also shifts TSS IST[DB] down by
//! `DB_STACK_OFFSET` around the handler (Linux 5.2–5.7 `paranoid_entry` with
//! `shift_ist`), so a #DB inside the handler lands on the next stack down.
//! Linux shifts only for #DB: its #BP has no IST at all. tristack gives #BP
//! the #DB stack and the same shift (see `idt::ist_of`).
//!
//! From user mode (saved CS has RPL 3; Linux `error_entry`'s user branch):
//! `swapgs` first, then `sync_regs` moves the frame to the top of the
//! thread stack if it is not there already (NMI, #DB, #BP and #MC arrived on
//! their IST stacks); the handler runs there, in process context, and the
//! way out is `tristack_return_to_user` (exit work, checks, `swapgs`,
//! `iretq`). NMI, #DB, #BP, #MC and #DF can also arrive in kernel mode with
//! the *user* GS base loaded (between the exit path's `swapgs` and its
//! `iretq`/`sysretq`), so their kernel branch reads `MSR_GS_BASE` instead of
//! trusting CS (Linux `paranoid_entry`). #DF never moves: its frame stays on
//! its IST stack even from user mode (Linux `idtentry_df`).

pub mod debug;
pub mod irq;
pub mod mce;
pub mod nmi;
pub mod page_fault;
pub mod syscall;
pub mod traps;
pub mod usermode;

use core::arch::global_asm;
use core::ops::Range;

use crate::arch::gdt::{USER_CS, USER_DS};
use crate::arch::percpu::{
    IRQ_COUNT_OFFSET, IRQ_STACK_TOP_OFFSET, KSTACK_OFFSET_OFFSET, TOP_OF_STACK_OFFSET, TSS_IST_DB_OFFSET,
    USER_RSP_SCRATCH_OFFSET,
};
use crate::arch::regs::{REGS_CS, REGS_RAX, REGS_RBP, REGS_RIP};
use crate::arch::vectors::{FIRST_EXTERNAL_VECTOR, NR_EXCEPTIONS, SYSCALL_FRAME};
use crate::layout::DB_STACK_OFFSET;
use usermode::MSR_GS_BASE;

global_asm!(
    include_str!("macros.s"),
    include_str!("from_user.s"),
    include_str!("syscall_64.s"),
    include_str!("exceptions.s"),
    include_str!("irq.s"),
    dispatch = sym traps::exception_dispatch,
    irq_dispatch = sym irq::irq_dispatch,
    irq_exit_to_thread = sym irq::irq_exit_to_thread,
    sync_regs = sym usermode::sync_regs,
    kernel_return = sym nmi::kernel_return,
    debug_return = sym debug::debug_return,
    regs_error_code = const crate::arch::regs::REGS_ERROR_CODE,
    fixup_bad_iret = sym usermode::fixup_bad_iret,
    exit_to_user_mode = sym usermode::exit_to_user_mode,
    do_syscall_64 = sym syscall::do_syscall_64,
    user_rsp_scratch = const USER_RSP_SCRATCH_OFFSET,
    top_of_stack = const TOP_OF_STACK_OFFSET,
    kstack_offset = const KSTACK_OFFSET_OFFSET,
    kstack_offset_mask = const crate::layout::KSTACK_OFFSET_MASK,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    syscall_frame = const SYSCALL_FRAME,
    regs_rax = const REGS_RAX,
    enosys = const crate::user::abi::ENOSYS,
    stackleak_erase_start = sym crate::arch::stackleak::erase_start,
    stackleak_on = sym crate::arch::stackleak::STACKLEAK,
    poison = const crate::arch::stackleak::STACKLEAK_POISON,
    msr_gs_base = const MSR_GS_BASE,
    irq_count = const IRQ_COUNT_OFFSET,
    irq_stack_top = const IRQ_STACK_TOP_OFFSET,
    bench_noswitch_vector = const crate::arch::vectors::BENCH_NOSWITCH_VECTOR,
    regs_rip = const REGS_RIP,
    regs_rbp = const REGS_RBP,
    regs_cs = const REGS_CS,
    tss_ist_db = const TSS_IST_DB_OFFSET,
    db_stack_offset = const DB_STACK_OFFSET,
    tss_ist_pf = const crate::arch::percpu::TSS_IST_PF_OFFSET,
    pf_stack_offset = const crate::layout::PF_STACK_OFFSET,
    pf_entry = sym page_fault::pf_entry,
    kernel_ds = const crate::arch::gdt::KERNEL_DS,
);

unsafe extern "C" {
    /// Addresses of the 32 exception stubs, by vector.
    static tristack_exception_stubs: [u64; NR_EXCEPTIONS];
    /// The first of 224 16-byte interrupt stubs (vectors 32..256).
    fn tristack_irq_stubs();
    /// The same for the gates of armed dynamic stacks (`page_fault::arm_dynamic_stacks`).
    fn tristack_irq_replay_stubs();
    /// `bench irq`'s stub that does not switch stacks.
    fn tristack_irq_noswitch_stub();
}

unsafe extern "C" {
    fn tristack_entry_SYSCALL_64();
    fn tristack_syscall_kernel_rsp();
    fn tristack_sysret_user_rsp();
    fn tristack_entry_SYSCALL_64_end();
}

/// The kernel instructions that run in ring 0 on the *user's* RSP: the
/// SYSCALL entry before it loads the thread stack, and the SYSRET exit
/// after it restored the user's RSP. An NMI, #MC or #DB landing there sees
/// CS = kernel and an RSP the user chose (`stacks::nmi_return`).
pub fn user_rsp_code() -> [Range<u64>; 2] {
    let at = |f: unsafe extern "C" fn()| f as *const () as u64;
    [
        at(tristack_entry_SYSCALL_64)..at(tristack_syscall_kernel_rsp),
        at(tristack_sysret_user_rsp)..at(tristack_entry_SYSCALL_64_end),
    ]
}

/// Address of the no-switch stub (for BENCH_NOSWITCH_VECTOR's gate).
pub fn irq_noswitch_stub() -> u64 {
    tristack_irq_noswitch_stub as *const () as u64
}

/// Bytes per interrupt stub (`.balign 16` above).
const IRQ_STUB_SIZE: u64 = 16;

/// Address of the entry stub of external vector `vector` (32..256).
pub fn irq_stub(vector: usize) -> u64 {
    let first = FIRST_EXTERNAL_VECTOR as usize;
    assert!((first..256).contains(&vector));
    tristack_irq_stubs as *const () as u64 + (vector - first) as u64 * IRQ_STUB_SIZE
}

/// Address of the replaying entry stub of external vector `vector`.
pub fn irq_replay_stub(vector: usize) -> u64 {
    irq_stub(vector) - tristack_irq_stubs as *const () as u64 + tristack_irq_replay_stubs as *const () as u64
}

/// Point every gate of the IDT at its stub (once, on the boot CPU, before
/// any CPU loads the IDT).
pub fn init_idt() {
    use crate::arch::idt::set_gate;
    // SAFETY: the boot CPU, before `idt::load` on any CPU.
    unsafe {
        for vector in 0..NR_EXCEPTIONS as u8 {
            set_gate(vector, exception_stub(usize::from(vector)));
        }
        for vector in FIRST_EXTERNAL_VECTOR..=u8::MAX {
            set_gate(vector, irq_stub(usize::from(vector)));
        }
        set_gate(crate::arch::vectors::BENCH_NOSWITCH_VECTOR, irq_noswitch_stub());
    }
    crate::stacks::dynamic::set_arm_hook(page_fault::arm_dynamic_stacks);
}

/// Address of the entry stub of exception `vector` (0..32).
pub fn exception_stub(vector: usize) -> u64 {
    // SAFETY: a read-only table emitted above, 32 entries.
    unsafe { tristack_exception_stubs[vector] }
}
