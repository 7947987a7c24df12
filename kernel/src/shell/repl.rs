//! Running commands: from the kernel command line, and at the prompt.

use super::commands;
use super::line::{Event, LineEditor};
use crate::cmd::cmdline::{self, Command};
use crate::cmd::{CmdError, Spec};
use alloc::string::String;
use alloc::vec::Vec;

use crate::arch::percpu;
use crate::console;
use crate::{print, println, sched};

pub const PROMPT: &str = "tristack> ";

/// Run one command; false if it failed (the error has been printed).
fn execute(cmd: &Command) -> bool {
    // Like init, the shell reaps the threads it started that have ended.
    crate::sched::reap_children();
    let Some(spec) = commands::find(cmd.name) else {
        println!("error: unknown command '{}'; valid commands: {}", cmd.name, commands::names());
        return false;
    };
    let (cpu, args) = match cmdline::split_cpu_option(&cmd.args) {
        Ok(split) => split,
        Err(e) => {
            println!("error: {}", e.render(spec.name, spec.usage));
            return false;
        }
    };
    match cpu {
        None => run(spec, &args),
        Some(cpu) => run_on_cpu(spec, &args, cpu as usize),
    }
}

fn run(spec: &Spec, args: &[&str]) -> bool {
    match (spec.run)(args) {
        Ok(()) => true,
        Err(CmdError::Usage(e)) => {
            println!("error: {}", e.render(spec.name, spec.usage));
            false
        }
        Err(CmdError::Failed(why)) => {
            println!("error: {}: {why}", spec.name);
            false
        }
    }
}

/// A command to run on another CPU, and how it went.
struct Job {
    spec: &'static Spec,
    args: Vec<String>,
}

fn job_main(arg: u64) -> i64 {
    // SAFETY: `run_on_cpu` passes a `Job` it keeps alive until it has joined us.
    let job = unsafe { &*(arg as *const Job) };
    let args: Vec<&str> = job.args.iter().map(String::as_str).collect();
    if run(job.spec, &args) {
        0
    } else {
        1
    }
}

/// `COMMAND ... --cpu C`: run the command in a thread pinned to CPU C (the
/// threads it starts stay there too) and wait for it.
fn run_on_cpu(spec: &'static Spec, args: &[&str], cpu: usize) -> bool {
    if !percpu::is_online(cpu) {
        let online: Vec<String> = percpu::online_cpus().map(|c| alloc::format!("{c}")).collect();
        println!("error: {}: CPU {cpu} is not online; online CPUs: {}", spec.name, online.join(" "));
        return false;
    }
    let job = alloc::boxed::Box::new(Job { spec, args: args.iter().map(|a| String::from(*a)).collect() });
    let name = alloc::format!("{}/{cpu}", spec.name);
    let pid = match sched::spawn_on(&name, job_main, &*job as *const Job as u64, sched::Placement::Pinned(cpu)) {
        Ok(pid) => pid,
        Err(e) => {
            println!("error: {}: cannot start a thread on CPU {cpu}: {e}", spec.name);
            return false;
        }
    };
    match sched::join(pid) {
        Ok(sched::Ended::Exited(0)) => true,
        Ok(sched::Ended::Exited(_)) => false,
        Ok(sched::Ended::Killed) if crate::cmd::oops_was_intended(pid) => {
            println!(
                "{}: (expected oops) its thread on CPU {cpu} ({name}, pid {pid}) died of it; the shell goes on",
                spec.name
            );
            true
        }
        Ok(sched::Ended::Killed) => {
            println!("error: {}: its thread on CPU {cpu} ({name}, pid {pid}) was killed by an oops", spec.name);
            false
        }
        Err(e) => {
            println!("error: {}: join: {e}", spec.name);
            false
        }
    }
}

/// Run one line as if typed after `prompt` (echoed so the log reads like a
/// session); false (after printing why) at the first error.
pub fn run_line(prompt: &str, line: &str) -> bool {
    let cmds = match cmdline::parse(line.as_bytes()) {
        Ok(cmds) => cmds,
        Err(e) => {
            println!("error: {e}");
            return false;
        }
    };
    println!("{prompt}{line}");
    cmds.iter().all(execute)
}

/// Run the boot command line; false (after printing why) at the first error.
pub fn run_command_line(bytes: &[u8]) -> bool {
    let cmds = match cmdline::parse(bytes) {
        Ok(cmds) => cmds,
        Err(e) => {
            println!("error: {e}");
            return false;
        }
    };
    for cmd in &cmds {
        // Echo as if typed, so a boot log reads like a session.
        println!("{PROMPT}{}{}{}", cmd.name, if cmd.args.is_empty() { "" } else { " " }, cmd.args.join(" "));
        if !execute(cmd) {
            return false;
        }
    }
    true
}

/// The interactive shell on the serial port. Never returns.
pub fn interactive() -> ! {
    let mut editor = LineEditor::new(PROMPT);
    crate::tty::set_at_prompt(true);
    print!("{PROMPT}");
    loop {
        // Sleeps until the COM1 receive interrupt brings a byte.
        let byte = crate::tty::read_byte();
        match editor.feed(byte, console::write_bytes) {
            Event::None => continue,
            Event::Cancelled => {}
            Event::Line(line) => match cmdline::parse(line.as_bytes()) {
                Ok(cmds) => {
                    crate::tty::set_at_prompt(false);
                    for cmd in &cmds {
                        if !execute(cmd) {
                            break;
                        }
                    }
                }
                Err(e) => println!("error: {e}"),
            },
        }
        crate::tty::set_at_prompt(true);
        print!("{PROMPT}");
    }
}
