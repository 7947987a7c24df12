//! The `syscall` instruction's entry and exit (Linux `entry_SYSCALL_64`,
//! `do_syscall_64`, `syscall_exit_to_user_mode`), and the MSRs that aim
//! it: `STAR` (selectors), `LSTAR` (the entry), `FMASK` (RFLAGS bits
//! cleared on entry), `EFER.SCE` (on).
//!
//! `syscall` changes no stack: RCX := user RIP, R11 := user RFLAGS,
//! CS/SS := 0x10/0x18, RFLAGS &= !FMASK — and RSP is still the *user*
//! stack. So the entry stub (`tristack_entry_SYSCALL_64`, with the other
//! entry stubs in `entry.rs`) does by hand what the CPU does for an
//! interrupt, then calls `do_syscall_64` below.

use core::sync::atomic::Ordering;

use ::x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use ::x86_64::registers::rflags::RFlags;
use ::x86_64::structures::gdt::SegmentSelector;
use ::x86_64::PrivilegeLevel;
use ::x86_64::VirtAddr;

use crate::arch::gdt::{KERNEL_CS, KERNEL_DS, USER32_CS, USER_CS, USER_DS};
use crate::arch::percpu::this_cpu;
use crate::arch::regs::Regs;

unsafe extern "C" {
    /// The entry stub (`entry.rs`), LSTAR's target.
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
    assert_eq!(USER32_CS + 16, USER_CS);
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
// Not traced (Linux `__visible noinstr`): the tracer sees the handlers.
#[instrument_fn = "off"]
pub extern "C" fn do_syscall_64(regs: &mut Regs) -> bool {
    let cpu = this_cpu();
    cpu.user.syscalls.fetch_add(1, Ordering::Relaxed);
    crate::entry::syscall_enter_from_user_mode();
    ::x86_64::instructions::interrupts::enable();
    let nr = regs.error_code; // orig_ax
    regs.rax = crate::entry::syscall(nr, regs) as u64;
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
