//! The shell's one built-in, `help`, and the command table it reads: the
//! demos export every other command (`demos::COMMANDS`, the foundation's
//! first). What a command is lives in `cmd`.

use alloc::string::String;

use crate::cmd::cmdline::ArgError;
use crate::cmd::{CmdResult, Spec};
use crate::println;

pub static BUILTINS: &[Spec] =
    &[Spec { name: "help", usage: "[COMMAND]", help: "list commands, or show one", run: help }];

/// Every command: the built-ins, then the demos' table.
pub fn all() -> impl Iterator<Item = &'static Spec> {
    BUILTINS.iter().chain(crate::demos::COMMANDS)
}

pub fn find(name: &str) -> Option<&'static Spec> {
    all().find(|c| c.name == name)
}

/// "help, echo, ..." for error messages.
pub fn names() -> String {
    let mut s = String::new();
    for (i, c) in all().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(c.name);
    }
    s
}

fn help(args: &[&str]) -> CmdResult {
    let show = |c: &Spec| {
        let left = alloc::format!("{} {}", c.name, c.usage);
        println!("  {:<24} {}", left.trim_end(), c.help);
    };
    match args {
        [] => all().for_each(show),
        [name] => show(
            find(name)
                .ok_or_else(|| ArgError::Invalid(alloc::format!("no command '{name}'; commands: {}", names())))?,
        ),
        [_, extra, ..] => return Err(ArgError::Unexpected((*extra).into()).into()),
    }
    Ok(())
}
