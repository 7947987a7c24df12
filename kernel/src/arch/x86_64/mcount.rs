//! `mcount`: the hook rustc's `-Z instrument-mcount` calls at the entry of
//! every kernel function, just after its prologue (Linux's `mcount` /
//! `ftrace_caller` in `arch/x86/kernel/ftrace_64.S`, without the
//! run-time patching of dynamic ftrace: see docs/stack-tools.md for the
//! cost of the call while the tracer is off).
//!
//! It serves two users: the stack tracer (a hook called at every entry)
//! and stack erasing (STACKLEAK), for which it keeps the lowest RSP the
//! running thread reached since its last erase — what Linux's compiler
//! plugin inserts `stackleak_track_stack()` calls for. Erasing then clears
//! only what was used (`stackleak.rs`).
//!
//! Assembly because Rust code is instrumented too: a Rust `mcount` would
//! call itself. It is a normal System V call (LLVM inserts an ordinary
//! `call`), so it may clobber the caller-saved registers.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use super::percpu::{STACKLEAK_BOTTOM_OFFSET, STACKLEAK_LOWEST_OFFSET, TRACER_BUSY_OFFSET};

/// What `mcount` does, read before anything else (one byte, RIP-relative:
/// valid before GS is set up): 0 nothing, else `TRACK` and/or `TRACER`.
static MODE: AtomicU8 = AtomicU8::new(0);
/// Keep the lowest RSP for stack erasing.
const TRACK: u8 = 1;
/// Call the stack tracer's hook.
const TRACER: u8 = 2;
/// What `mcount` calls while the tracer is on (its hook, registered from
/// above): `hook(frame pointer, RSP at the call, return address)`.
static HOOK: AtomicUsize = AtomicUsize::new(0);

pub type McountHook = extern "C" fn(fp: u64, sp: u64, ip: u64);

/// Turn tracing on with `hook`, or off (`None`).
pub fn set(hook: Option<McountHook>) {
    match hook {
        Some(hook) => {
            HOOK.store(hook as usize, Ordering::SeqCst);
            MODE.fetch_or(TRACER, Ordering::SeqCst);
        }
        None => {
            MODE.fetch_and(!TRACER, Ordering::SeqCst);
        }
    }
}

/// Whether `mcount` calls the hook.
pub fn is_on() -> bool {
    MODE.load(Ordering::SeqCst) & TRACER != 0
}

/// Keep (or stop keeping) the lowest RSP per CPU. Only once every CPU
/// that runs kernel code has its GS base (APs get theirs from the
/// trampoline, before their first Rust function).
pub fn set_tracking(on: bool) {
    if on {
        MODE.fetch_or(TRACK, Ordering::SeqCst);
    } else {
        MODE.fetch_and(!TRACK, Ordering::SeqCst);
    }
}

// RSP: entered at 8 mod 16 (the call pushed the return address); one push
// realigns it for the Rust hook, popped before `ret`. Off: three
// instructions (`cmp`, `jne` not taken, `ret`), as before tracking: the
// configuration compared with Linux (`./x bench --vs-linux`, STACKLEAK off
// as in Debian's kernel) pays nothing for it. Tracking only (the default:
// STACKLEAK on, tracer off): seven when RSP is not a new low (a second
// compare of the mode, then one of RSP). A new low within
// the running thread's stack is stored (an RSP below its bottom is on
// another stack: IRQ, IST or extra). The RSP kept is mcount's own, 8 below
// the function's frame: what the function itself uses is above it.
// Tracer on: GS is this CPU's (the flag is set only long after every CPU
// set GS; every entry stub fixes GS before calling Rust), and `tracer_busy`
// keeps the hook, and what it calls, from re-entering on this CPU — in an
// NMI that interrupted it too.
global_asm!(
    ".globl mcount",
    ".type mcount, @function",
    "mcount:",
    "    cmp byte ptr [rip + {mode}], 0",
    "    jne 1f",
    "    ret",
    "1:",
    "    cmp byte ptr [rip + {mode}], {track}",
    "    jne 4f",
    "    cmp rsp, qword ptr gs:[{lowest}]",
    "    jb 3f",
    "    ret",
    // Tracer on, maybe tracking too.
    "4:",
    "    test byte ptr [rip + {mode}], {track}",
    "    jz 5f",
    "    cmp rsp, qword ptr gs:[{lowest}]",
    "    jae 5f",
    "    cmp rsp, qword ptr gs:[{bottom}]",
    "    jb 5f",
    "    mov qword ptr gs:[{lowest}], rsp",
    "5:",
    "    cmp byte ptr gs:[{busy}], 0",
    "    jne 2f",
    "    mov byte ptr gs:[{busy}], 1",
    "    push rbp",
    "    mov rdi, rbp",          // the entered function's frame pointer
    "    lea rsi, [rsp + 16]",   // its RSP at the `call mcount`
    "    mov rdx, [rsp + 8]",    // the return address: inside it
    "    call qword ptr [rip + {hook}]",
    "    pop rbp",
    "    mov byte ptr gs:[{busy}], 0",
    "2:",
    "    ret",
    // Tracking only: a lower RSP than any since the last erase.
    "3:",
    "    cmp rsp, qword ptr gs:[{bottom}]",
    "    jb 2b",
    "    mov qword ptr gs:[{lowest}], rsp",
    "    ret",
    ".size mcount, . - mcount",
    mode = sym MODE,
    track = const TRACK,
    busy = const TRACER_BUSY_OFFSET,
    lowest = const STACKLEAK_LOWEST_OFFSET,
    bottom = const STACKLEAK_BOTTOM_OFFSET,
    hook = sym HOOK,
);
