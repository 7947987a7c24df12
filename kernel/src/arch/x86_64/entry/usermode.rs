//! The user/kernel boundary in Rust (Linux `arch/x86/entry/common.c`,
//! `traps.c:sync_regs`, `randomize_kstack.h`): moving a
//! frame off an IST stack, the work and checks of every return to user
//! mode, the random stack offset (stack erasing is `stackleak.rs`), and the
//! first entry into a new program. The assembly is in `entry.rs` and `syscall.rs`.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::percpu::this_cpu;
use crate::arch::process::user_frame_slot;
use crate::arch::regs::Regs;
use crate::arch::vectors::X86_TRAP_NMI;
use crate::layout::{cea_base, EStack};

pub use crate::arch::percpu::MSR_GS_BASE;

/// Per-syscall random stack offset (Linux `randomize_kstack_offset=on`).
static RANDOMIZE_KSTACK_OFFSET: AtomicBool = AtomicBool::new(true);

pub fn set_randomize_kstack_offset(on: bool) {
    RANDOMIZE_KSTACK_OFFSET.store(on, Ordering::SeqCst);
    if !on {
        for cpu in crate::arch::percpu::online_cpus() {
            crate::arch::percpu::of(cpu).kstack_offset.store(0, Ordering::SeqCst);
        }
    }
}
pub fn randomize_kstack_offset() -> bool {
    RANDOMIZE_KSTACK_OFFSET.load(Ordering::Relaxed)
}

/// Linux `sync_regs`: an exception from user mode that arrived on an IST
/// stack moves its frame to the thread stack, where the handler then runs
/// as ordinary process context (it may sleep or schedule; the IST stack is
/// free again at once). Called by the entry with the frame's address;
/// returns the new one.
///
/// # Safety
/// `eregs` is the complete frame of an entry from user mode (so the
/// running thread's stack holds nothing live).
pub unsafe extern "C" fn sync_regs(eregs: *mut Regs) -> *mut Regs {
    crate::entry::enter_from_user_mode();
    let regs = user_frame_slot();
    if regs != eregs {
        // SAFETY: per the contract the thread stack's top frame slot is
        // dead and the frame complete; an IST frame never overlaps it.
        unsafe { core::ptr::copy_nonoverlapping(eregs, regs, 1) };
        this_cpu().user.moved_off_ist.fetch_add(1, Ordering::Relaxed);
    }
    regs
}

/// The `iretq` to user mode faulted: make it a fault *from user mode* at
/// the address the IRET was going to (Linux `fixup_bad_iret`). `gp` is the
/// #GP's frame; its RSP points at the IRET frame (RIP, CS, RFLAGS, RSP,
/// SS) the user was to get. Builds that frame, with the registers, at the
/// top of the thread stack and returns it.
///
/// # Safety
/// `gp` is the complete frame of a #GP raised by `tristack_iret_to_user`.
pub unsafe extern "C" fn fixup_bad_iret(gp: *const Regs) -> *mut Regs {
    // SAFETY: per the contract; copied out first, as the new frame's slot
    // may overlap the #GP frame (both lie just below the stack top).
    let mut regs = unsafe { gp.read() };
    // SAFETY: the IRET frame the #GP interrupted, five words on this stack.
    let iret = unsafe { (regs.rsp as *const [u64; 5]).read() };
    regs.rip = iret[0];
    regs.cs = iret[1];
    regs.rflags = iret[2];
    regs.rsp = iret[3];
    regs.ss = iret[4];
    this_cpu().user.bad_iret.fetch_add(1, Ordering::Relaxed);
    let slot = user_frame_slot();
    // SAFETY: the thread's user frame slot; nothing else is live there
    // (the syscall or exception that was returning is over).
    unsafe { slot.write(regs) };
    slot
}

/// The way back to user mode from an exception or interrupt (the entry
/// code's `tristack_return_to_user`; it IRETs afterwards).
pub extern "C" fn exit_to_user_mode(regs: &mut Regs) {
    prepare_exit(regs);
    this_cpu().user.iret.fetch_add(1, Ordering::Relaxed);
}

/// Everything between the handler and the return instruction (Linux
/// `exit_to_user_mode_prepare` + `arch_exit_to_user_mode_prepare` +
/// `stackleak_erase`): pending work (a kill), then, with interrupts off,
/// the check that nothing stays on any kernel stack, a new random offset,
/// (The erasing of what this entry left on the thread stack follows in the
/// entry code, once every Rust frame has returned: `STACKLEAK_ERASE`.)
// Not traced, as Linux's `noinstr` exit to user mode: on every return to
// user, after the work that is (the handlers).
#[instrument_fn = "off"]
pub fn prepare_exit(regs: &mut Regs) {
    // An NMI returns at once (Linux's NMI from user does no exit work: it
    // must not schedule while NMIs are blocked until its IRET).
    if regs.vector != u64::from(X86_TRAP_NMI) {
        crate::entry::exit_to_user_mode_loop();
    }
    ::x86_64::instructions::interrupts::disable();
    check_user_return(regs);
    if randomize_kstack_offset() {
        // Linux `choose_random_kstack_offset(rdtsc())`: ror32(offset, 5) ^ rand.
        // SAFETY: reading the TSC has no side effects.
        let tsc = unsafe { core::arch::x86_64::_rdtsc() } as u32;
        let cpu = this_cpu();
        let old = cpu.kstack_offset.load(Ordering::Relaxed);
        cpu.kstack_offset.store(old.rotate_right(5) ^ tsc, Ordering::Relaxed);
    }
    crate::entry::exit_to_user_mode();
}

/// The rule of the user boundary, checked at every return (Linux has it
/// spread over lockdep and `DEBUG_ENTRY` assertions): the frame being
/// returned through sits exactly at the thread stack's top (nothing else
/// is live on it), this CPU is in no interrupt (`irq_count == -1`) and in
/// no NMI/#MC/#DB handler, and IST[DB] is unshifted. Violations are
/// counted (must stay 0) and the first few printed.
fn check_user_return(regs: &Regs) {
    let cpu = this_cpu();
    let at_top = core::ptr::eq(regs, user_frame_slot());
    let irq_count = cpu.irq_count.load(Ordering::Relaxed);
    let nmi = cpu.nmi_depth();
    let db = crate::arch::debug::DB_DEPTH.this().load(Ordering::Relaxed);
    // IST[DB] unshifted: the #DB stack's top (an offset worked out at
    // compile time; `estack_range` walks the layout table at run time).
    const DB_TOP: u64 = EStack::DB.offset() + EStack::DB.desc().size;
    let db_top = cea_base(cpu.id()) + DB_TOP;
    let ist_db = cpu.ist(crate::layout::Ist::DB);
    if at_top && irq_count == -1 && nmi == 0 && db == 0 && ist_db == db_top {
        return;
    }
    report_bad_user_return(regs, irq_count, nmi, db, ist_db);
}

/// Out of line: its formatting would otherwise widen `prepare_exit`'s
/// frame on every return to user (all of which STACKLEAK then erases).
#[cold]
#[inline(never)]
fn report_bad_user_return(regs: &Regs, irq_count: i64, nmi: u32, db: u32, ist_db: u64) {
    let cpu = this_cpu();
    let n = cpu.user.violations.fetch_add(1, Ordering::Relaxed);
    if n < 3 {
        crate::println!(
            "BUG: return to user with a live kernel stack on CPU {}: frame {:016x} (expected {:016x}), irq_count {irq_count}, nmi {nmi}, db {db}, IST[DB] {ist_db:016x}",
            cpu.id(),
            regs as *const Regs as u64,
            user_frame_slot() as u64
        );
    }
}
