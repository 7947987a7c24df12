//! The entry layer: everything the CPU enters the kernel through. Here, the
//! stubs — the only assembly on the way into the kernel and back:
//! exceptions, interrupts, `syscall`, and the return to user mode — and,
//! in the submodules, the Rust handlers they call: `traps` (exceptions
//! that end in an oops, page faults), `syscall` (`do_syscall_64`, the MSRs),
//! `usermode` (`sync_regs`, the exit to user mode and its checks). They sit
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
    r#"
// Linux `STACKLEAK_ERASE`: RSP = &Regs (the user frame at the stack top);
// fill [stackleak_lowest(), RSP) with STACKLEAK_POISON. Clobbers RAX, RCX,
// RDI (restored from the frame right after).
.macro STACKLEAK_ERASE
    call {stackleak_lowest}
    test rax, rax
    jz 9f
    mov rdi, rax
    mov rcx, rsp
    sub rcx, rdi
    shr rcx, 3
    mov rax, {poison}
    rep stosq
9:
.endm

// RSP -= 120: the 15 general registers, RAX pushed first (highest), R15
// last (lowest), so RSP then points at a `Regs` (Linux `PUSH_REGS`).
.macro SAVE_REGS
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
.endm

// RSP += 120: the reverse of SAVE_REGS (Linux `POP_REGS`); RSP then points
// at the vector word the stub pushed.
.macro RESTORE_REGS
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
.endm

// RSP -= 16: fake frame so the handler's frame chain continues into the
// interrupted code. RSP stays 16-byte aligned.
.macro LINK_FRAME
    push qword ptr [rsp + {regs_rip}]
    push qword ptr [rsp + 8 + {regs_rbp}]
    mov rbp, rsp
.endm

// The way back into kernel mode from every exception that can land in NMI
// context. RSP = &Regs (the fake frame popped), GS the kernel's. Rust
// decides (`decide`: 0 = IRET, 1 = return without IRET, else an address to
// return through, see `debug_return`); the decision waits in the frame's
// error-code slot while the registers are restored (and, with \swap, the
// user GS base put back: EBX says whether PARANOID_GS swapped). RSP += 120
// + 16: at the hardware frame; then one of the three returns.
.macro RETURN_TO_KERNEL decide, swap
    mov rdi, rsp
    call \decide
    mov [rsp + {regs_error_code}], rax
.if \swap
    test ebx, ebx
    jz 1f
    swapgs
1:
.endif
    RESTORE_REGS
    add rsp, 8                      // vector; [rsp] = the decision
    cmp qword ptr [rsp], 1
    lea rsp, [rsp + 8]              // (lea keeps the flags of the cmp)
    je tristack_return_without_iret
    ja 2f
    iretq
// Deliver an event here: [decision] = a stack holding the stub's address
// above the event's hardware frame. RSP := it; `ret` enters the stub with
// RSP at the frame, as the CPU would have.
2:
    mov rsp, [rsp - 8]
    ret
.endm

// One stub per vector. RSP -= 8 or 16: optional dummy error code, vector.
.macro STUB vector, has_error_code, common
.global tristack_exc_\vector
tristack_exc_\vector:
.if \has_error_code == 0
    push 0
.endif
    push \vector
    jmp \common
.type tristack_exc_\vector, @function
.size tristack_exc_\vector, . - tristack_exc_\vector
.endm

// Linux `FENCE_SWAPGS_USER_ENTRY` / `FENCE_SWAPGS_KERNEL_ENTRY` (the SWAPGS
// variant of Spectre v1, CVE-2019-1125): where a conditional branch decides
// whether to `swapgs`, the CPU may speculate down the wrong side and load
// through the wrong GS base. On both sides, before the first GS-relative
// access, stop speculation. (demos/entry_sweep/fences.rs checks every site.)
.macro FENCE_SWAPGS
    lfence
.endm

// Linux `paranoid_entry`'s GS decision: a kernel GS base is negative (a
// kernel address); anything else is the user's, so swap, and remember in
// EBX (callee-saved: it survives the handler) to swap back on exit.
.macro PARANOID_GS
    mov ecx, {msr_gs_base}
    rdmsr
    xor ebx, ebx
    test edx, edx
    js 7f
    swapgs
    mov ebx, 1
7:
    FENCE_SWAPGS
.endm

.section .text.entry, "ax"

// Every exception from user mode, whatever its stub (Linux `error_entry`
// user branch + `sync_regs`). RSP = &Regs, on the thread stack (the CPU
// loaded RSP0) or on an IST stack. swapgs; RSP := the frame's copy at the
// thread stack top (a no-op move if it is there already); a zero fake frame
// ends the frame chain (user RBP/RIP are not kernel frames); the handler;
// then the way back to user mode.
tristack_exception_from_user:
    swapgs
    FENCE_SWAPGS
    mov rdi, rsp
    call {sync_regs}
    mov rsp, rax
// RSP = &Regs at the thread stack top, GS the kernel's: run the handler.
tristack_exception_user_body:
    push 0
    push 0
    mov rbp, rsp
    lea rdi, [rsp + 16]
    call {dispatch}
    add rsp, 16
    jmp tristack_return_to_user
.type tristack_exception_from_user, @function
.size tristack_exception_from_user, . - tristack_exception_from_user

// The `iretq` to user mode faulted (#GP: a non-canonical RIP in the IRET
// frame). RSP = &Regs of the #GP, taken in kernel mode on the thread stack
// just below the IRET frame, with the user's GS base. swapgs; then
// `fixup_bad_iret` builds the user's frame at the stack top (the IRET
// frame + these registers) and the fault is handled as one from user mode
// (Linux `.Lerror_bad_iret` + `fixup_bad_iret`).
tristack_bad_iret:
    swapgs
    FENCE_SWAPGS
    mov rdi, rsp
    call {fixup_bad_iret}
    mov rsp, rax
    jmp tristack_exception_user_body
.type tristack_bad_iret, @function
.size tristack_bad_iret, . - tristack_bad_iret

// The way back to user mode from an exception or interrupt (Linux
// `irqentry_exit_to_user_mode` + `swapgs_restore_regs_and_return_to_usermode`).
// RSP = &Regs at the top of the thread stack; exit work and checks in
// Rust, then RSP += 120 + 16 and iretq pops the last 40 bytes: the thread
// stack is empty again.
.global tristack_return_to_user
tristack_return_to_user:
    mov rdi, rsp
    call {exit_to_user_mode}
    STACKLEAK_ERASE
.global tristack_restore_and_iret_to_user
tristack_restore_and_iret_to_user:
    RESTORE_REGS
    add rsp, 16
    swapgs
.global tristack_iret_to_user
tristack_iret_to_user:
    iretq
.type tristack_return_to_user, @function
.size tristack_return_to_user, . - tristack_return_to_user

// `syscall` from user mode (Linux `entry_SYSCALL_64`). RSP: the user's on
// entry. swapgs; user RSP -> per-CPU scratch; RSP := the thread stack top
// (gs:top_of_stack). Then a full frame, as an interrupt from user mode
// would have left it: SS, RSP, RFLAGS (R11), CS, RIP (RCX), orig_ax (RAX,
// in the error-code slot), the SYSCALL_FRAME vector word, SAVE_REGS with
// RAX preset to -ENOSYS: 176 bytes, so &Regs = top - 176. A zero fake frame
// ends the frame chain; then RSP moves down by the random offset (Linux
// `add_random_kstack_offset`: `kstack_offset & 0x3ff`, 16-aligned) and
// `do_syscall_64(&Regs)` runs. Back: RSP := &Regs; the used stack below it
// poisoned (STACKLEAK_ERASE); SYSRET if `do_syscall_64` said it is safe,
// else IRET.
.global tristack_entry_SYSCALL_64
tristack_entry_SYSCALL_64:
    swapgs
    mov gs:[{user_rsp_scratch}], rsp
    mov rsp, gs:[{top_of_stack}]
// Up to here RSP was the user's (see `user_rsp_code`).
.global tristack_syscall_kernel_rsp
tristack_syscall_kernel_rsp:
    push {user_ds}
    push qword ptr gs:[{user_rsp_scratch}]
    push r11
    push {user_cs}
    push rcx
    push rax
    push {syscall_frame}
    SAVE_REGS
    mov qword ptr [rsp + {regs_rax}], -{enosys}
    cld
    mov r12, rsp
    push 0
    push 0
    mov rbp, rsp
    mov eax, dword ptr gs:[{kstack_offset}]
    and eax, {kstack_offset_mask}
    sub rsp, rax
    and rsp, -16
    mov rdi, r12
    call {do_syscall_64}
    mov rsp, r12
    movzx r12d, al                  // SYSRET allowed (R12 comes back from the frame)
    STACKLEAK_ERASE
    test r12b, r12b
    jz tristack_restore_and_iret_to_user
// SYSRET: RCX = RIP and R11 = RFLAGS were checked by do_syscall_64.
    RESTORE_REGS
    // RSP: vector, orig_ax, RIP, CS, RFLAGS, RSP, SS. From here to sysretq
    // the kernel runs on the user stack with the user GS base: an NMI or
    // #MC here is why their entries check MSR_GS_BASE.
    mov rsp, [rsp + 40]
// From here RSP is the user's again (see `user_rsp_code`).
.global tristack_sysret_user_rsp
tristack_sysret_user_rsp:
    swapgs
    sysretq
.global tristack_entry_SYSCALL_64_end
tristack_entry_SYSCALL_64_end:
.type tristack_entry_SYSCALL_64, @function
.size tristack_entry_SYSCALL_64, . - tristack_entry_SYSCALL_64

// Every exception but #DB/#BP and the paranoid ones (Linux `idtentry` +
// `error_entry`). From user mode: above. From kernel mode: RSP -= 120
// (registers) + 16 (fake frame); all restored before iretq (or, back into
// an NMI handler, before the IRET-less return below).
tristack_exception_common:
    SAVE_REGS
    cld
    test byte ptr [rsp + {regs_cs}], 3
    jnz tristack_exception_from_user
    FENCE_SWAPGS
// Kernel mode, but the fault is the `iretq` to user mode itself (a
// non-canonical RIP): GS is already the user's. Linux `.Lerror_bad_iret`.
    lea rax, [rip + tristack_iret_to_user]
    cmp [rsp + {regs_rip}], rax
    je tristack_bad_iret
    LINK_FRAME
    lea rdi, [rsp + 16]
    call {dispatch}
    add rsp, 16
    RETURN_TO_KERNEL {kernel_return}, 0
.type tristack_exception_common, @function
.size tristack_exception_common, . - tristack_exception_common

// Returning into NMI context (an #MC or #DB inside an NMI, in its stubs or
// its handler: `stacks::nmi_return` decides): IRET would unblock NMIs while
// the NMI stack is still live, and a pending NMI would start over at its
// IST top, on the live frame. Linux avoids that with its nested-NMI
// protocol (`repeat_nmi`); tristack returns without IRET, which a
// same-privilege return allows: RIP, RFLAGS, RBX and RAX go just below the
// interrupted RSP (this kernel has no red zone), then RSP := that - 32;
// pop rax; pop rbx; popfq; ret — RSP ends where the exception found it.
// Frame here: [rsp] RIP, CS, RFLAGS, RSP, SS. GS is already the
// interrupted code's.
tristack_return_without_iret:
    push rbx
    push rax
    mov rax, [rsp + 16 + 24]        // the interrupted RSP
    mov rbx, [rsp + 16]             // RIP
    mov [rax - 8], rbx
    mov rbx, [rsp + 16 + 16]        // RFLAGS
    mov [rax - 16], rbx
    mov rbx, [rsp + 8]              // the caller's RBX
    mov [rax - 24], rbx
    mov rbx, [rsp]                  // the caller's RAX
    mov [rax - 32], rbx
    lea rsp, [rax - 32]
    pop rax
    pop rbx
    popfq
    ret
.type tristack_return_without_iret, @function
.size tristack_return_without_iret, . - tristack_return_without_iret

// NMI and #MC (Linux `asm_exc_nmi` / `idtentry_mce_db`), on their IST
// stacks. From user mode: moved to the thread stack (above). From kernel
// mode: the paranoid GS check, the handler on the IST stack, GS swapped
// back if it was the user's; into an NMI handler without IRET.
tristack_paranoid_common:
    SAVE_REGS
    cld
    test byte ptr [rsp + {regs_cs}], 3
    jnz tristack_exception_from_user
// #DF enters here: kernel or user, it stays on its IST stack.
tristack_paranoid_kernel:
    PARANOID_GS
    LINK_FRAME
    lea rdi, [rsp + 16]
    call {dispatch}
    add rsp, 16
// Decided with the kernel GS base, then the interrupted one put back: an
// #MC can hit the NMI stub before its own PARANOID_GS swapped, and must
// not IRET there either.
    RETURN_TO_KERNEL {kernel_return}, 1
.type tristack_paranoid_common, @function
.size tristack_paranoid_common, . - tristack_paranoid_common

// #DF (Linux `idtentry_df`): always paranoid, never moved.
tristack_df_common:
    SAVE_REGS
    cld
    jmp tristack_paranoid_kernel
.type tristack_df_common, @function
.size tristack_df_common, . - tristack_df_common

// #DB and #BP (Linux `idtentry_mce_db` / `paranoid_entry` with shift_ist).
// From user mode: moved to the thread stack (above), no shift. From kernel
// mode: same frame as above; additionally TSS IST[DB] moves down one stack
// for the handler's lifetime, so a nested #DB lands on DB1 and a third on
// the unmapped DB2 hole.
tristack_debug_common:
    SAVE_REGS
    cld
    test byte ptr [rsp + {regs_cs}], 3
    jnz tristack_exception_from_user
    PARANOID_GS
    sub qword ptr gs:[{tss_ist_db}], {db_stack_offset}
    LINK_FRAME
    lea rdi, [rsp + 16]
    call {dispatch}
    add rsp, 16
    add qword ptr gs:[{tss_ist_db}], {db_stack_offset}
// Into NMI context without IRET, like every paranoid exit; or onward into
// an event the #DB handler delivers at the interrupted instruction (the
// entry sweep).
    RETURN_TO_KERNEL {debug_return}, 1
.type tristack_debug_common, @function
.size tristack_debug_common, . - tristack_debug_common

STUB 0, 0, tristack_exception_common
STUB 1, 0, tristack_debug_common
STUB 2, 0, tristack_paranoid_common
STUB 3, 0, tristack_debug_common
STUB 4, 0, tristack_exception_common
STUB 5, 0, tristack_exception_common
STUB 6, 0, tristack_exception_common
STUB 7, 0, tristack_exception_common
STUB 8, 1, tristack_df_common
STUB 9, 0, tristack_exception_common
STUB 10, 1, tristack_exception_common
STUB 11, 1, tristack_exception_common
STUB 12, 1, tristack_exception_common
STUB 13, 1, tristack_exception_common
STUB 14, 1, tristack_exception_common
STUB 15, 0, tristack_exception_common
STUB 16, 0, tristack_exception_common
STUB 17, 1, tristack_exception_common
STUB 18, 0, tristack_paranoid_common
STUB 19, 0, tristack_exception_common
STUB 20, 0, tristack_exception_common
STUB 21, 1, tristack_exception_common
STUB 22, 0, tristack_exception_common
STUB 23, 0, tristack_exception_common
STUB 24, 0, tristack_exception_common
STUB 25, 0, tristack_exception_common
STUB 26, 0, tristack_exception_common
STUB 27, 0, tristack_exception_common
STUB 28, 0, tristack_exception_common
STUB 29, 1, tristack_exception_common
STUB 30, 1, tristack_exception_common
STUB 31, 0, tristack_exception_common

// External interrupts (Linux `common_interrupt` + `call_on_irqstack`,
// `irq_64.c`). The frame is saved on the interrupted stack as above; then:
//   1. `incl irq_count`; if it became 0 this CPU was not in an interrupt:
//      RSP := top of the IRQ stack, and the interrupted RSP (= &Regs) goes
//      into its top word, where unwinders find the way back.
//      Nested (count now > 0): stay on the current (IRQ) stack, and push a
//      dummy word instead so RSP stays 16-byte aligned.
//   2. push the interrupted RSP again: the backlink this code returns by.
//   3. fake frame into the interrupted code (as LINK_FRAME), call Rust.
//   4. `pop rsp` (back via the backlink), `decl irq_count`; if it is -1
//      again we are back on a thread's stack: the place to preempt.
// From user mode the CPU already switched to the thread stack (RSP0), and
// `swapgs` comes first (before any gs: access) and last; the way out is
// `tristack_return_to_user`. The handler still runs on the IRQ stack.
// First level: RSP = irq top -> top-8 (saved RSP) -> top-16 (backlink)
// -> top-32 (fake frame). Nested: RSP = &Regs - 32.
.macro IRQ_COMMON name, switch
\name:
    SAVE_REGS
    cld
    test byte ptr [rsp + {regs_cs}], 3
    jz 8f
    swapgs
8:
    FENCE_SWAPGS
    mov rsi, rsp
    inc qword ptr gs:[{irq_count}]
.if \switch
    jnz 1f
    mov rsp, qword ptr gs:[{irq_stack_top}]
1:
.endif
    push rsi
    push rsi
    push qword ptr [rsi + {regs_rip}]
    push qword ptr [rsi + {regs_rbp}]
    mov rbp, rsp
    mov rdi, rsi
    call {irq_dispatch}
    add rsp, 16
    pop rsp
    dec qword ptr gs:[{irq_count}]
    jns 2f
    mov rdi, rsp
    call {irq_exit_to_thread}
    test byte ptr [rsp + {regs_cs}], 3
    jnz tristack_return_to_user
2:
    RESTORE_REGS
    add rsp, 16
    iretq
.type \name, @function
.size \name, . - \name
.endm

IRQ_COMMON tristack_irq_common, 1

// `bench irq` only: the same path minus the stack switch (irq_count is still
// counted), so the difference between the two is what the switch costs.
// RSP: as tristack_irq_common nested — everything stays on the
// interrupted stack (&Regs - 32 at the call). No Linux counterpart.
IRQ_COMMON tristack_irq_noswitch_common, 0
.global tristack_irq_noswitch_stub
// BENCH_NOSWITCH_VECTOR's gate. RSP -= 16: dummy error code, vector.
tristack_irq_noswitch_stub:
    push 0
    push {bench_noswitch_vector}
    jmp tristack_irq_noswitch_common

// Vectors 32..255: one 16-byte stub each, so stub address =
// tristack_irq_stubs + (vector - 32) * 16. RSP -= 16: dummy error code, vector.
.balign 16
.global tristack_irq_stubs
tristack_irq_stubs:
.set tristack_vector, 32
.rept 224
.balign 16
    push 0
    push tristack_vector
    jmp tristack_irq_common
.set tristack_vector, tristack_vector + 1
.endr

.section .rodata
.balign 8
.global tristack_exception_stubs
tristack_exception_stubs:
.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad tristack_exc_\v
.endr
.text
"#,
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
    stackleak_lowest = sym usermode::stackleak_lowest,
    poison = const usermode::STACKLEAK_POISON,
    msr_gs_base = const MSR_GS_BASE,
    irq_count = const IRQ_COUNT_OFFSET,
    irq_stack_top = const IRQ_STACK_TOP_OFFSET,
    bench_noswitch_vector = const crate::arch::vectors::BENCH_NOSWITCH_VECTOR,
    regs_rip = const REGS_RIP,
    regs_rbp = const REGS_RBP,
    regs_cs = const REGS_CS,
    tss_ist_db = const TSS_IST_DB_OFFSET,
    db_stack_offset = const DB_STACK_OFFSET,
);

unsafe extern "C" {
    /// Addresses of the 32 exception stubs, by vector.
    static tristack_exception_stubs: [u64; NR_EXCEPTIONS];
    /// The first of 224 16-byte interrupt stubs (vectors 32..256).
    fn tristack_irq_stubs();
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
}

/// Address of the entry stub of exception `vector` (0..32).
pub fn exception_stub(vector: usize) -> u64 {
    // SAFETY: a read-only table emitted above, 32 entries.
    unsafe { tristack_exception_stubs[vector] }
}
