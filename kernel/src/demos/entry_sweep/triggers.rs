//! What makes a path run on the target CPU while the sweep waits for an
//! instruction: kernel threads pinned there that loop through the path
//! (checking their registers after each pass), or a user program pinned
//! there that loops on `syscall`, with NMIs sent to it when the path is an
//! entry from user mode.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::regcheck::{int_keeps_registers, REG_NAMES};
use crate::arch::vectors::{BENCH_NOSWITCH_VECTOR, BENCH_SWITCH_VECTOR, X86_TRAP_MC, X86_TRAP_NMI};
use crate::layout::{estack_range, EStack};
use crate::sched::{self, Ended, Placement};
use crate::user::process;
use crate::{println, smp};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `int V` from a kernel thread, registers checked (NMI, #MC, IRQs).
    Int(u8),
    /// `int $2`, and an #MC delivered in its exit stub after the handler
    /// (a carrier breakpoint): an #MC in NMI context, which returns
    /// without IRET.
    NmiMce,
    /// Two kernel threads yield to each other: `switch_to`.
    Yield,
    /// A kernel thread calls a function on an extra stack.
    CallOnStack,
    /// `attack syscall-rsp-loop` with RSP = the target's NMI stack bottom
    /// (its registers checked by the program); with `nmis`, NMIs sent to it
    /// all the while, so entries from user mode happen.
    SyscallLoop { nmis: bool },
    /// `sysret badss` started again and again: a syscall whose IRET back to
    /// user mode faults (a bad SS), so `fixup_bad_iret` turns the #GP into
    /// one from user mode, which ends the process.
    BadIret,
    /// A kernel thread on a dynamic stack stores onto a page of its stack
    /// that is not backed (registers checked), then gives the page back.
    Grow,
    /// `kstack 12000 ROUNDS`: syscalls that each give the lower pages of
    /// the program's dynamic kernel stack back and use 12000 bytes of it,
    /// growing it again.
    SyscallGrow,
}

impl Trigger {
    /// NMIs drive this path, so NMIs are blocked on all of it (until the
    /// NMI's IRET) and the sweep delivers no NMI of its own there. (Also,
    /// a real NMI arriving while one the #DB handler delivered is in flight
    /// would land on its frame: a delivered NMI does not block NMIs.) The
    /// sweep decides this from the path, not by asking the kernel's own
    /// `returns_into_nmi`, which is under test.
    pub fn is_nmi(self) -> bool {
        matches!(self, Trigger::Int(X86_TRAP_NMI) | Trigger::NmiMce | Trigger::SyscallLoop { nmis: true })
    }

    fn sends_nmis(self) -> bool {
        self == Trigger::SyscallLoop { nmis: true }
    }

    pub fn in_user_mode(self) -> bool {
        matches!(self, Trigger::SyscallLoop { .. } | Trigger::BadIret | Trigger::SyscallGrow)
    }

    /// Runs a program again and again, each run one pass of the path.
    fn reruns(self) -> bool {
        self == Trigger::BadIret
    }

    /// How it is shown in the sweep's lines.
    pub fn describe(self) -> String {
        match self {
            Trigger::Int(v) => alloc::format!("int ${v:#x} from a kernel thread"),
            Trigger::NmiMce => "int $2, an #MC delivered in its exit stub".into(),
            Trigger::Yield => "two kernel threads yielding".into(),
            Trigger::CallOnStack => "call_on_extra_stack from a kernel thread".into(),
            Trigger::SyscallLoop { nmis: false } => "a user syscall loop, RSP on the NMI stack".into(),
            Trigger::SyscallLoop { nmis: true } => "a user syscall loop, RSP on the NMI stack, NMIs sent".into(),
            Trigger::BadIret => "sysret badss, again and again".into(),
            Trigger::Grow => "a kernel thread storing onto a page of its dynamic stack not backed yet".into(),
            Trigger::SyscallGrow => "kstack 12000 growing its dynamic kernel stack in every syscall".into(),
        }
    }
}

const SIGSEGV: i64 = 11;

/// Kernel trigger threads loop while this is set.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// The trigger raises #MC on purpose (its handler stays quiet).
static SOFTWARE_MCE: AtomicBool = AtomicBool::new(false);
/// Passes whose registers came back changed.
pub static REGS_CHANGED: AtomicU64 = AtomicU64::new(0);

/// The #MCs a trigger raises on purpose are not reported one by one.
pub fn claims_mce() -> bool {
    SOFTWARE_MCE.load(Ordering::Relaxed)
}

fn check(changed: u32) {
    if changed != 0 && REGS_CHANGED.fetch_add(1, Ordering::Relaxed) < 3 {
        let names: Vec<&str> = (0..14).filter(|i| changed & 1 << i != 0).map(|i| REG_NAMES[i]).collect();
        println!("entry-sweep: registers changed across the path: {}", names.join(" "));
    }
}

fn int_loop(vector: u64) -> i64 {
    let vector = vector as u8;
    while RUNNING.load(Ordering::Relaxed) {
        super::engine::rearm_carrier();
        check(match vector {
            X86_TRAP_NMI => int_keeps_registers::<X86_TRAP_NMI>(),
            X86_TRAP_MC => int_keeps_registers::<X86_TRAP_MC>(),
            BENCH_SWITCH_VECTOR => int_keeps_registers::<BENCH_SWITCH_VECTOR>(),
            BENCH_NOSWITCH_VECTOR => int_keeps_registers::<BENCH_NOSWITCH_VECTOR>(),
            _ => unreachable!("no trigger for vector {vector}"),
        });
    }
    0
}

/// Each pass: give back every page below RSP - 1 KiB (under this loop's
/// own frames), then store onto the top word of the page below that: a
/// growth fault, registers checked across it.
fn grow_loop(_: u64) -> i64 {
    use crate::layout::PAGE_SIZE;
    let me = sched::current().expect("a thread");
    while RUNNING.load(Ordering::Relaxed) {
        let keep = (crate::arch::cpu::stack_pointer() - 1024) & !(PAGE_SIZE - 1);
        crate::stacks::dynamic::give_back_below(me.stack.bottom, me.stack.top(), keep);
        crate::stacks::dynamic::refill();
        check(crate::arch::regcheck::store_keeps_registers(keep - 8));
    }
    0
}

fn yield_loop(_: u64) -> i64 {
    while RUNNING.load(Ordering::Relaxed) {
        sched::yield_now();
    }
    0
}

fn call_on_stack_loop(_: u64) -> i64 {
    while RUNNING.load(Ordering::Relaxed) {
        let r = crate::sched::task_stack::call_on_extra_stack(|| 0x5eed);
        check(if r == Ok(0x5eed) { 0 } else { 1 });
    }
    0
}

/// A trigger running on the target CPU; `stop` ends it and says whether
/// it ended as it should.
pub struct Running {
    trigger: Trigger,
    target: usize,
    pids: Vec<u32>,
    last_feed: u64,
    /// `BadIret`: runs of `sysret badss` so far, and how many ended with
    /// the #GP's SIGSEGV as they must.
    runs: u64,
    segv: u64,
}

/// `sysret badss` on `target`.
fn start_bad_iret(target: usize) -> Result<u32, String> {
    process::run("sysret", "badss", Placement::Pinned(target)).map_err(|e| alloc::format!("entry-sweep: sysret: {e}"))
}

pub fn start(trigger: Trigger, target: usize) -> Result<Running, String> {
    RUNNING.store(true, Ordering::SeqCst);
    SOFTWARE_MCE.store(matches!(trigger, Trigger::Int(X86_TRAP_MC) | Trigger::NmiMce), Ordering::SeqCst);
    let on = Placement::Pinned(target);
    let kthread = |name: &str, entry: sched::Entry, arg: u64| {
        sched::spawn_on(name, entry, arg, on).map_err(|e| alloc::format!("entry-sweep: {name}: {e}"))
    };
    let pids = match trigger {
        Trigger::Int(v) => alloc::vec![kthread("sweep-int", int_loop, u64::from(v))?],
        Trigger::NmiMce => {
            super::engine::set_carrier(Some(super::paths::nmi_exit_after_handler()));
            alloc::vec![kthread("sweep-int", int_loop, u64::from(X86_TRAP_NMI))?]
        }
        Trigger::Yield => alloc::vec![kthread("sweep-yield", yield_loop, 0)?, kthread("sweep-yield", yield_loop, 1)?],
        Trigger::CallOnStack => alloc::vec![kthread("sweep-extra", call_on_stack_loop, 0)?],
        Trigger::SyscallLoop { .. } => {
            let (bottom, _) = estack_range(target, EStack::NMI);
            let args = alloc::format!("syscall-rsp-loop {bottom:x}");
            alloc::vec![process::run("attack", &args, on).map_err(|e| alloc::format!("entry-sweep: attack: {e}"))?]
        }
        Trigger::BadIret => alloc::vec![start_bad_iret(target)?],
        Trigger::SyscallGrow => {
            // Its process gets a dynamic stack: the default while it starts.
            let was = crate::stacks::dynamic::default_on();
            crate::stacks::dynamic::set_default(true);
            let pid = process::run("kstack", "12000 1000000000", on);
            crate::stacks::dynamic::set_default(was);
            alloc::vec![pid.map_err(|e| alloc::format!("entry-sweep: kstack: {e}"))?]
        }
        Trigger::Grow => {
            let stack = sched::StackRequest { size: crate::layout::THREAD_SIZE, limit: None, dynamic: true };
            let pid = sched::spawn_with_stack("sweep-grow", grow_loop, 0, on, stack)
                .map_err(|e| alloc::format!("entry-sweep: sweep-grow: {e}"))?;
            alloc::vec![pid]
        }
    };
    Ok(Running { trigger, target, pids, last_feed: 0, runs: 1, segv: 0 })
}

impl Running {
    /// Called while the sweep waits, acting at most once per 20 us of TSC
    /// (so the target still makes progress): an NMI for triggers that send
    /// them, the next run for `BadIret`.
    pub fn feed(&mut self) {
        let now = crate::time::rdtsc();
        if now.wrapping_sub(self.last_feed) <= crate::time::tsc_per_ms() / 50 {
            return;
        }
        self.last_feed = now;
        if self.trigger.sends_nmis() {
            smp::send_nmi(self.target);
        }
        // Each run passes the path once: start the next when it is over.
        if self.trigger.reruns() && self.pids.len() == 1 {
            let pid = self.pids[0];
            if sched::snapshot().iter().any(|t| t.pid == pid && t.state.ended()) {
                self.segv += u64::from(sched::join(pid) == Ok(Ended::Exited(-SIGSEGV)));
                self.pids.clear();
                if let Ok(pid) = start_bad_iret(self.target) {
                    self.pids.push(pid);
                    self.runs += 1;
                }
            }
        }
    }

    /// Stop the trigger; true if every thread or program ended as expected
    /// (kernel threads returned, the user program was still looping and
    /// died only by the kill).
    pub fn stop(self) -> bool {
        RUNNING.store(false, Ordering::SeqCst);
        if self.trigger == Trigger::NmiMce {
            super::engine::set_carrier(None);
        }
        let mut ok = true;
        if self.trigger.reruns() {
            // Every finished run ended by its #GP (the last may be cut short).
            for pid in self.pids {
                let _ = sched::kill(pid);
                let _ = sched::join(pid);
            }
            sched::reap_children();
            return self.segv + 1 >= self.runs;
        }
        for pid in self.pids {
            if self.trigger.in_user_mode() {
                ok &= sched::kill(pid).is_ok();
                ok &= sched::join(pid) == Ok(Ended::Exited(crate::sched::KILLED_BY_SIGKILL));
            } else {
                ok &= sched::join(pid) == Ok(Ended::Exited(0));
            }
        }
        sched::reap_children();
        SOFTWARE_MCE.store(false, Ordering::SeqCst);
        ok
    }
}
