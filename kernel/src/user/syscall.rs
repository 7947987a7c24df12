//! The system calls (Linux `arch/x86/entry/syscall_64.c` and the calls
//! themselves). `dispatch` runs on the caller's thread stack, interrupts
//! on, below the syscall frame and the random offset. Every user pointer
//! goes through the address space's checked copies (`-EFAULT` on any
//! unmapped or non-user byte); unknown numbers get `-ENOSYS`.

use core::hint::black_box;

use super::abi::*;
use crate::arch::cpu::stack_pointer as rsp;
use crate::arch::regs::Regs;
use crate::mm::address_space::AddressSpace;
use crate::sched;

/// The calling thread's address space (every syscall comes from one).
fn mm() -> &'static AddressSpace {
    sched::current().and_then(|t| t.mm.as_deref()).expect("a syscall from a thread without an address space")
}

fn stack_top() -> u64 {
    sched::current().expect("a running thread").stack.top()
}

/// Call number `nr` with the caller's registers; returns RAX.
// Each handler keeps its own frame (`#[inline(never)]`, as the entries of
// Linux's `sys_call_table` are separate functions): inlined, `sys_write`'s
// buffer made every syscall's frame 376 bytes, all of it erased on the
// way out by STACKLEAK.
pub fn dispatch(nr: u64, regs: &mut Regs) -> i64 {
    let (a, b) = (regs.rdi, regs.rsi);
    match nr {
        SYS_WRITE => sys_write(a, b, regs.rdx),
        SYS_SCHED_YIELD => {
            sched::yield_now();
            0
        }
        SYS_NANOSLEEP => sys_nanosleep(a),
        SYS_GETPID => i64::from(sched::current_scheduled().map_or(0, |t| t.tgid)),
        SYS_GETTID => i64::from(sched::current().map_or(0, |t| t.pid)),
        SYS_EXIT => sched::exit(a as i64),
        SYS_EXIT_GROUP => {
            sched::kill_other_threads(a as i64);
            sched::exit(a as i64)
        }
        SYS_CLONE_THREAD => sys_clone_thread(a, b, regs.rdx),
        SYS_MUNMAP => sys_munmap(a, b),
        SYS_CLOCK_GETTIME => sys_clock_gettime(a, b),
        SYS_KSTACK_USE => sys_kstack_use(a),
        SYS_STACK_INFO => (stack_top() - rsp()) as i64,
        SYS_WATCH => sys_watch(a),
        SYS_STACKLEAK_PLANT => {
            stackleak_plant(a);
            0
        }
        SYS_STACKLEAK_FIND => stackleak_find(a),
        SYS_LKDTM_ACCESS_USERSPACE => lkdtm_access_userspace(a),
        SYS_LKDTM_EXEC_USERSPACE => lkdtm_exec_userspace(a),
        SYS_SET_RETURN_IP => {
            // Unchecked, as a careless sigreturn would: only the IRET to
            // user mode uses these, and if it faults the process gets the #GP.
            regs.rip = a;
            if b != 0 {
                regs.ss = b;
            }
            0
        }
        _ => -ENOSYS,
    }
}

#[inline(never)]
fn sys_write(fd: u64, buf: u64, len: u64) -> i64 {
    if fd != 1 && fd != 2 {
        return -EBADF;
    }
    if crate::mm::uaccess::user_range(buf, len).is_none() {
        return -EFAULT;
    }
    let mut chunk = [0u8; 256];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        if mm().read(buf + done, &mut chunk[..n]).is_err() {
            // Linux returns what it wrote before the fault, or -EFAULT.
            return if done > 0 { done as i64 } else { -EFAULT };
        }
        crate::print!("{}", alloc::string::String::from_utf8_lossy(&chunk[..n]));
        done += n as u64;
    }
    done as i64
}

fn read_timespec(addr: u64) -> Result<Timespec, i64> {
    let mut raw = [0u8; 16];
    mm().read(addr, &mut raw).map_err(|_| -EFAULT)?;
    let word = |i: usize| i64::from_le_bytes(raw[i..i + 8].try_into().expect("8 bytes"));
    Ok(Timespec { tv_sec: word(0), tv_nsec: word(8) })
}

/// The longest sleep one `nanosleep` does (a day): longer requests are
/// cut, as the tick arithmetic would overflow far beyond it.
const MAX_SLEEP_MS: u64 = 24 * 3600 * 1000;

#[inline(never)]
fn sys_nanosleep(req: u64) -> i64 {
    let ts = match read_timespec(req) {
        Ok(ts) => ts,
        Err(e) => return e,
    };
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return -EINVAL;
    }
    let ms = (ts.tv_sec as u64).saturating_mul(1000).saturating_add((ts.tv_nsec as u64).div_ceil(1_000_000));
    sched::sleep_ms(ms.min(MAX_SLEEP_MS));
    0
}

#[inline(never)]
fn sys_clock_gettime(clock: u64, tp: u64) -> i64 {
    if clock != CLOCK_MONOTONIC {
        return -EINVAL;
    }
    let per_ms = crate::time::tsc_per_ms().max(1);
    let tsc = crate::time::rdtsc();
    let ms = tsc / per_ms;
    let ns = (tsc % per_ms) * 1_000_000 / per_ms;
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&((ms / 1000) as i64).to_le_bytes());
    raw[8..].copy_from_slice(&(((ms % 1000) * 1_000_000 + ns) as i64).to_le_bytes());
    match mm().write(tp, &raw) {
        Ok(()) => 0,
        Err(_) => -EFAULT,
    }
}

/// Bytes of stack each level of `kstack_use` takes (about; the compiler
/// adds its saves).
const KSTACK_FRAME: usize = 256;

/// Recurse until `want` bytes below `top` are in use; track the deepest.
#[inline(never)]
fn kstack_recurse(top: u64, want: u64, deepest: &mut u64) {
    let frame = black_box([0u8; KSTACK_FRAME]);
    let depth = top - rsp();
    *deepest = (*deepest).max(depth);
    if depth < want {
        kstack_recurse(top, want, deepest);
    }
    black_box(&frame);
}

/// `kstack_use(bytes)`: past THREAD_SIZE this runs into the guard page —
/// a kernel stack overflow from a syscall (oops; only this process dies).
#[inline(never)]
fn sys_kstack_use(bytes: u64) -> i64 {
    if bytes & KSTACK_GIVE_BACK != 0 {
        // Below this syscall's frames (1 KiB down) nothing is live.
        let below = rsp() - 1024;
        if let Some(me) = sched::current().filter(|t| t.stack.dynamic() && below > t.stack.bottom) {
            crate::stacks::dynamic::give_back_below(me.stack.bottom, me.stack.top(), below);
        }
    }
    let mut deepest = 0;
    kstack_recurse(stack_top(), bytes & !KSTACK_GIVE_BACK, &mut deepest);
    deepest as i64
}

#[inline(never)]
fn sys_watch(addr: u64) -> i64 {
    if !addr.is_multiple_of(8) {
        return -EINVAL;
    }
    if mm().translate(addr, true).is_none() {
        return -EFAULT;
    }
    sched::set_user_watch(addr);
    0
}

/// Bytes of filler between the syscall's frames and the planted secret:
/// more than the largest random offset, so the next syscall's own frames
/// (wherever its offset puts them) stay above the secret.
const PLANT_DEPTH: usize = 1536;

/// What is planted is the secret XOR this, so the value looked for never
/// travels in a register the user controls: an interrupt during either
/// syscall saves the caller's registers on the thread stack, and they hold
/// the raw secret (it is the argument) — which would be "found" without
/// anything having leaked.
const PLANT_KEY: u64 = 0x5a5a_1357_9bdf_2468;

/// A careless syscall: leave `secret ^ PLANT_KEY` in a local that dies on
/// return.
#[inline(never)]
fn stackleak_plant(secret: u64) {
    let pad = black_box([0u8; PLANT_DEPTH]);
    plant_here(secret ^ PLANT_KEY);
    black_box(&pad);
}

#[inline(never)]
fn plant_here(value: u64) {
    let words = black_box([value; 32]);
    black_box(&words);
}

/// Scan the dead part of this thread's stack (below this frame) for what
/// `stackleak_plant(secret)` left. Interrupts stay off meanwhile, so no
/// interrupt frame lands below RSP while the value is in a register.
#[inline(never)]
fn stackleak_find(secret: u64) -> i64 {
    let Some((bottom, _)) = sched::current_stack_range() else { return 0 };
    let top = stack_top();
    x86_64::instructions::interrupts::without_interrupts(|| {
        let want = black_box(secret) ^ PLANT_KEY;
        let below = rsp();
        // Of a dynamic stack only the backed part (the rest holds nothing,
        // and reading it would back it).
        let backed = sched::current().map_or(bottom, |t| t.stack.resident_bottom());
        let mut at = (bottom + 8).max(backed);
        while at + 8 <= below {
            // SAFETY: reading this thread's own stack below RSP: mapped, dead.
            if unsafe { (at as *const u64).read_volatile() } == want {
                return (top - at) as i64;
            }
            at += 8;
        }
        0
    })
}

/// The planted bug of `SYS_LKDTM_ACCESS_USERSPACE`: a direct read through
/// a user address (only the range is checked, so a kernel address cannot
/// be named). SMAP turns it into an oops.
fn lkdtm_access_userspace(addr: u64) -> i64 {
    if crate::mm::uaccess::user_range(addr, 8).is_none() || !addr.is_multiple_of(8) {
        return -EINVAL;
    }
    // SAFETY: none — this is the bug on purpose (Linux lkdtm). Without SMAP
    // the page is the caller's own (its page tables are loaded) or the
    // read faults like any bad kernel access; with SMAP it always faults.
    unsafe { (addr as *const i64).read_volatile() }
}

/// The planted bug of `SYS_LKDTM_EXEC_USERSPACE`: a call into user code
/// in ring 0. SMEP turns it into an oops.
fn lkdtm_exec_userspace(addr: u64) -> i64 {
    if crate::mm::uaccess::user_range(addr, 1).is_none() {
        return -EINVAL;
    }
    // SAFETY: none — this is the bug on purpose (Linux lkdtm). With SMEP
    // the fetch faults before the user's code runs.
    let f: extern "C" fn() -> i64 = unsafe { core::mem::transmute(addr as usize) };
    f()
}

#[inline(never)]
fn sys_clone_thread(entry: u64, stack_top: u64, arg: u64) -> i64 {
    // Every value is the user's: checked arithmetic only (a panic here
    // would be a user-triggered kernel crash).
    let user = |va: u64| crate::mm::uaccess::user_range(va, 8).is_some();
    let below_top = stack_top.checked_sub(8);
    if !user(entry) || !below_top.is_some_and(user) || !stack_top.is_multiple_of(16) {
        return -EINVAL;
    }
    match super::process::spawn_thread(entry, stack_top, arg) {
        Ok(tid) => i64::from(tid),
        // Linux: EAGAIN when a thread limit is reached, ENOMEM without memory.
        Err(super::process::RunError::TooManyThreads) => -EAGAIN,
        // The caller is being killed and never sees this (Linux: -EINTR).
        Err(super::process::RunError::KillPending) => -EINTR,
        Err(_) => -ENOMEM,
    }
}

/// Linux `munmap`: unmap, shoot down the TLBs of every CPU that has this
/// address space loaded, and only then free the frames (a CPU still
/// holding a translation would otherwise read or write a reused frame).
#[inline(never)]
fn sys_munmap(addr: u64, len: u64) -> i64 {
    use crate::layout::PAGE_SIZE;
    if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
        return -EINVAL;
    }
    let Some(end) = len.checked_next_multiple_of(PAGE_SIZE).and_then(|len| crate::mm::uaccess::user_range(addr, len))
    else {
        return -EINVAL;
    };
    let mm = mm();
    let frames = mm.unmap(addr, end);
    crate::smp::tlb::flush_tlb_mm_range(mm.cpu_mask(), addr, end);
    AddressSpace::free_frames(frames);
    0
}
