//! The `syscall` instruction's entry and exit (Linux `entry_SYSCALL_64`,
//! `do_syscall_64`, `syscall_exit_to_user_mode`), and the MSRs that aim
//! it: `STAR` (selectors), `LSTAR` (the entry), `FMASK` (RFLAGS bits
//! cleared on entry), `EFER.SCE` (on).
//!
//! `syscall` changes no stack: RCX := user RIP, R11 := user RFLAGS,
//! CS/SS := 0x10/0x18, RFLAGS &= !FMASK — and RSP is still the *user*
//! stack. So the entry does by hand what the CPU does for an interrupt.

use core::arch::global_asm;
use core::sync::atomic::Ordering;

use ::x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use ::x86_64::registers::rflags::RFlags;
use ::x86_64::structures::gdt::SegmentSelector;
use ::x86_64::PrivilegeLevel;
use ::x86_64::VirtAddr;

use super::gdt::{KERNEL_CS, KERNEL_DS, USER32_CS, USER_CS, USER_DS};
use super::percpu::{this_cpu, KSTACK_OFFSET_OFFSET, TOP_OF_STACK_OFFSET, USER_RSP_SCRATCH_OFFSET};
use super::regs::{Regs, REGS_RAX};
use super::vectors::SYSCALL_FRAME;
use crate::user::abi::ENOSYS;

global_asm!(
    r#"
.section .text.entry, "ax"
.global tristack_entry_SYSCALL_64
// RSP: the user's on entry. swapgs; user RSP -> per-CPU scratch; RSP :=
// the thread stack top (gs:top_of_stack). Then a full frame, as an
// interrupt from user mode would have left it: SS, RSP, RFLAGS (R11), CS,
// RIP (RCX), orig_ax (RAX, in the error-code slot), the SYSCALL_FRAME
// vector word, the 15 registers with RAX preset to -ENOSYS: 176 bytes, so
// &Regs = top - 176. A zero fake frame ends the frame chain; then RSP
// moves down by the random offset (Linux `add_random_kstack_offset`:
// `kstack_offset & 0x3ff`, 16-aligned) and `do_syscall_64(&Regs)` runs.
// Back: RSP := &Regs; the used stack below it poisoned (STACKLEAK); SYSRET
// if `do_syscall_64` said it is safe, else IRET.
tristack_entry_SYSCALL_64:
    swapgs
    mov gs:[{scratch}], rsp
    mov rsp, gs:[{top}]
    push {user_ds}
    push qword ptr gs:[{scratch}]
    push r11
    push {user_cs}
    push rcx
    push rax
    push {syscall_frame}
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
    mov qword ptr [rsp + {regs_rax}], -{enosys}
    cld
    mov r12, rsp
    push 0
    push 0
    mov rbp, rsp
    mov eax, dword ptr gs:[{kstack_offset}]
    and eax, 0x3ff
    sub rsp, rax
    and rsp, -16
    mov rdi, r12
    call {do_syscall_64}
    mov rsp, r12
    movzx r12d, al
// Linux `STACKLEAK_ERASE_NOCLOBBER`: poison [lowest used, &Regs).
    call {stackleak_lowest}
    test rax, rax
    jz 1f
    mov rdi, rax
    mov rcx, rsp
    sub rcx, rdi
    shr rcx, 3
    mov rax, {poison}
    rep stosq
1:
    test r12b, r12b
    jz tristack_restore_and_iret_to_user
// SYSRET: RCX = RIP and R11 = RFLAGS were checked by do_syscall_64.
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
    // RSP: vector, orig_ax, RIP, CS, RFLAGS, RSP, SS. From here to sysretq
    // the kernel runs on the user stack with the user GS base: an NMI or
    // #MC here is why their entries check MSR_GS_BASE.
    mov rsp, [rsp + 40]
    swapgs
    sysretq
.type tristack_entry_SYSCALL_64, @function
.size tristack_entry_SYSCALL_64, . - tristack_entry_SYSCALL_64
.text
"#,
    scratch = const USER_RSP_SCRATCH_OFFSET,
    top = const TOP_OF_STACK_OFFSET,
    kstack_offset = const KSTACK_OFFSET_OFFSET,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    syscall_frame = const SYSCALL_FRAME,
    regs_rax = const REGS_RAX,
    enosys = const ENOSYS,
    do_syscall_64 = sym do_syscall_64,
    stackleak_lowest = sym super::usermode::stackleak_lowest,
    poison = const super::usermode::STACKLEAK_POISON,
);

unsafe extern "C" {
    fn tristack_entry_SYSCALL_64();
}

/// RFLAGS bits `syscall` clears (Linux's `SYSCALL_MASK`): interrupts stay
/// off until the frame is saved; no single-step, string direction, AC or
/// nested-task state leaks into the kernel.
const FMASK: RFlags = RFlags::INTERRUPT_FLAG
    .union(RFlags::TRAP_FLAG)
    .union(RFlags::DIRECTION_FLAG)
    .union(RFlags::IOPL_HIGH)
    .union(RFlags::IOPL_LOW)
    .union(RFlags::ALIGNMENT_CHECK)
    .union(RFlags::NESTED_TASK);

/// Aim `syscall` at the entry above, on this CPU (Linux `syscall_init`).
pub fn init() {
    let sel = |index: u16, rpl| SegmentSelector::new(index >> 3, rpl);
    // STAR: SYSRET bases its selectors on USER32_CS (CS = +16, SS = +8);
    // SYSCALL on KERNEL_CS (CS, SS = +8). The crate checks that layout.
    Star::write(
        sel(USER_CS, PrivilegeLevel::Ring3),
        sel(USER_DS, PrivilegeLevel::Ring3),
        sel(KERNEL_CS, PrivilegeLevel::Ring0),
        sel(KERNEL_DS, PrivilegeLevel::Ring0),
    )
    .expect("GDT order fits SYSCALL/SYSRET");
    debug_assert_eq!(USER32_CS + 16, USER_CS);
    LStar::write(VirtAddr::new(tristack_entry_SYSCALL_64 as *const () as u64));
    SFMask::write(FMASK);
    // SAFETY: enabling SYSCALL/SYSRET, now that LSTAR and STAR are set.
    unsafe { Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}

/// Whether `sysretq` may return to `regs` (Linux `do_syscall_64`'s
/// checks): RCX and R11 must still be the return RIP and RFLAGS, the
/// selectors the user ones, RF and TF clear (SYSRET cannot restore RF, and
/// TF would trap on the kernel side on some CPUs), and RIP canonical —
/// on Intel, `sysretq` to a non-canonical RIP raises #GP *in ring 0 on the
/// user's stack* (CVE-2012-0217). Otherwise IRET.
pub fn sysret_ok(regs: &Regs) -> bool {
    let canonical = regs.rip < (1 << 47);
    regs.rcx == regs.rip
        && regs.r11 == regs.rflags
        && regs.cs == u64::from(USER_CS)
        && regs.ss == u64::from(USER_DS)
        && regs.rflags & (RFlags::RESUME_FLAG | RFlags::TRAP_FLAG).bits() == 0
        && canonical
}

/// Called by the entry with the frame, on the thread stack below the random
/// offset. Returns whether SYSRET may be used for the way back.
extern "C" fn do_syscall_64(regs: &mut Regs) -> bool {
    let cpu = this_cpu();
    cpu.user.syscalls.fetch_add(1, Ordering::Relaxed);
    crate::sched::set_in_user(false);
    ::x86_64::instructions::interrupts::enable();
    let nr = regs.error_code; // orig_ax
    regs.rax = crate::user::syscall::dispatch(nr, regs) as u64;
    super::usermode::prepare_exit(regs);
    let sysret = sysret_ok(regs);
    if sysret {
        cpu.user.sysret.fetch_add(1, Ordering::Relaxed);
    } else {
        cpu.user.iret.fetch_add(1, Ordering::Relaxed);
        cpu.user.syscall_iret.fetch_add(1, Ordering::Relaxed);
    }
    sysret
}
