//! Events at every instruction boundary of the entry code
//! (docs/entry-sweep.md). QEMU's TCG checks for interrupts only between
//! translated blocks, so an NMI never lands between two instructions of an
//! entry stub unless the runner's `--singlestep` makes every instruction a
//! block of its own. `entry-sweep` puts an event on each instruction of
//! each entry and exit path in turn (`engine`: an execute breakpoint whose
//! #DB makes the event pending); `nmi-user-rsp` is the race that found the
//! NMI return trusting a user-controlled RSP.

mod engine;
pub mod fences;
mod paths;
mod triggers;
mod user_rsp;

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use engine::{Event, Outcome};
use paths::PATHS;
pub use user_rsp::nmi_user_rsp;

use crate::arch::percpu;
use crate::cmd::cmdline::ArgError;
use crate::cmd::{CmdError, CmdResult};
use crate::{debug, println};

pub fn init() {
    engine::init();
    user_rsp::init();
}

/// What to sweep, from the command's words.
fn parse(args: &[&str]) -> Result<(Vec<Event>, bool, bool), ArgError> {
    let (mut events, mut from) = (Event::ALL.to_vec(), "both");
    let mut words = args.iter();
    while let Some(&word) = words.next() {
        match word {
            "all" => events = Event::ALL.to_vec(),
            "--from" => {
                from = match words.next() {
                    Some(&m @ ("user" | "kernel" | "both")) => m,
                    Some(other) => {
                        return Err(ArgError::Invalid(alloc::format!(
                            "--from takes user, kernel or both, not '{other}'"
                        )))
                    }
                    None => return Err(ArgError::Invalid("--from needs user, kernel or both".into())),
                }
            }
            other => match Event::ALL.into_iter().find(|e| e.name() == other) {
                Some(e) => events = alloc::vec![e],
                None => return Err(ArgError::Wrong(alloc::format!("unknown event '{other}'"))),
            },
        }
    }
    Ok((events, from != "user", from != "kernel"))
}

/// Per event: delivered, masked (a real CPU could not take it there), lost.
#[derive(Default, Clone, Copy)]
struct Counts {
    delivered: u64,
    masked: u64,
    lost: u64,
}

/// `entry-sweep [nmi|irq|mce|all] [--from user|kernel|both]`.
pub fn entry_sweep(args: &[&str]) -> CmdResult {
    let (events, kernel, user) = parse(args)?;
    let me = percpu::current_cpu_id();
    let Some(target) = percpu::online_cpus().find(|&c| c != me) else {
        return Err(CmdError::Failed("entry-sweep: needs 2 CPUs (runner --smp 2 or more)".into()));
    };
    engine::set_target(target);
    let cpu = percpu::of(target);
    let oops0 = debug::oops::oops_count();
    let reentered0 = crate::arch::nmi::NMI_STACK_REENTERED.of(cpu.id()).load(Ordering::SeqCst);
    let violations0 = cpu.user.violations.load(Ordering::SeqCst);
    let (stray0, changed0) = (engine::STRAY_IRQS.load(Ordering::SeqCst), triggers::REGS_CHANGED.load(Ordering::SeqCst));
    let names: Vec<&str> = events.iter().map(|e| e.name()).collect();
    println!("entry-sweep: a breakpoint on each instruction on CPU {target}, then {} there", names.join(", "));
    let (mut insns, mut reached, mut delivered, mut lost, mut failed_paths) = (0, 0, 0, 0, Vec::new());
    for path in PATHS.iter().filter(|p| if p.trigger.in_user_mode() { user } else { kernel }) {
        if path.arms {
            crate::demos::dynamic_stacks::arm()?;
        }
        let code = paths::instructions(path)
            .map_err(|sym| CmdError::Failed(alloc::format!("entry-sweep: no symbol {sym} (renamed or inlined?)")))?;
        let mut running = triggers::start(path.trigger, target).map_err(CmdError::Failed)?;
        let mut counts = [Counts::default(); 3];
        let mut hit = 0;
        let swept: Vec<Event> =
            events.iter().copied().filter(|&e| !(e == Event::Nmi && path.trigger.is_nmi())).collect();
        for &x in &code {
            for &event in &swept {
                let c = &mut counts[event as usize - 1];
                // Reached by the first event: the others may wait longer.
                let wait = if event == swept[0] { engine::WAIT_MS } else { engine::WAIT_AGAIN_MS };
                match engine::trial(x, event, wait, || running.feed()) {
                    Outcome::NotReached => break,
                    Outcome::Delivered => c.delivered += 1,
                    Outcome::Masked => c.masked += 1,
                    Outcome::Lost => c.lost += 1,
                }
                if event == swept[0] {
                    hit += 1;
                }
            }
        }
        let ok = running.stop();
        let mut line = String::new();
        for &event in &events {
            let c = counts[event as usize - 1];
            if !swept.contains(&event) {
                line += &alloc::format!("; {}: the path itself", event.name());
                continue;
            }
            line += &alloc::format!("; {} {} delivered, {} masked", event.name(), c.delivered, c.masked);
            if c.lost > 0 {
                line += &alloc::format!(", {} LOST", c.lost);
            }
            delivered += c.delivered;
            lost += c.lost;
        }
        println!(
            "entry-sweep: {} (from {}: {}): {} instructions, {hit} reached{line}; {}",
            path.name,
            if path.trigger.in_user_mode() { "user" } else { "kernel" },
            path.trigger.describe(),
            code.len(),
            if ok { "survived" } else { "the trigger did not end as it should" }
        );
        if !ok {
            failed_paths.push(path.name);
        }
        insns += code.len();
        reached += hit;
    }
    let oopses = debug::oops::oops_count() - oops0;
    let reentered = crate::arch::nmi::NMI_STACK_REENTERED.of(cpu.id()).load(Ordering::SeqCst) - reentered0;
    let violations = cpu.user.violations.load(Ordering::SeqCst) - violations0;
    let stray = engine::STRAY_IRQS.load(Ordering::SeqCst) - stray0;
    let changed = triggers::REGS_CHANGED.load(Ordering::SeqCst) - changed0;
    println!(
        "entry-sweep: {insns} instructions, {reached} reached, {delivered} events delivered at their instruction, {lost} lost; \
         oopses {oopses}, NMI stack re-entered {reentered}, return-to-user violations {violations}, \
         IRQs off their instruction {stray}, passes with registers changed {changed}"
    );
    if u64::from(oopses) + reentered + violations + stray + changed + lost > 0 || !failed_paths.is_empty() {
        return Err(CmdError::Failed("entry-sweep: the entry code did not hold".into()));
    }
    Ok(())
}
