//! The shell's one built-in, `help`, and the command table it reads: the
//! demos export every other command (`demos::COMMANDS`, the foundation's
//! first). What a command is lives in `cmd`.

use alloc::string::String;
use alloc::vec::Vec;

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

/// `help`'s table fits this many columns.
const HELP_WIDTH: usize = 100;
/// The command column; a longer form gets a line of its own.
const HELP_LEFT: usize = 30;

/// One command as `help` shows it: `  name usage   what it does`, the
/// description wrapped at `HELP_WIDTH` and aligned after the command column.
pub fn help_lines(c: &Spec) -> Vec<String> {
    let left = alloc::format!("{} {}", c.name, c.usage);
    let left = left.trim_end();
    let indent = 2 + HELP_LEFT + 2;
    let mut lines = Vec::new();
    let mut line = if left.len() <= HELP_LEFT {
        alloc::format!("  {left:<HELP_LEFT$}  ")
    } else {
        lines.push(alloc::format!("  {left}"));
        " ".repeat(indent)
    };
    let mut empty = true;
    for word in c.help.split(' ') {
        if !empty && line.len() + 1 + word.len() > HELP_WIDTH {
            lines.push(core::mem::replace(&mut line, " ".repeat(indent)));
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    lines.push(line);
    lines
}

fn help(args: &[&str]) -> CmdResult {
    let show = |c: &Spec| help_lines(c).iter().for_each(|l| println!("{l}"));
    match args {
        [] => {
            println!("  {:<HELP_LEFT$}  what it does (`help COMMAND` for one)", "command");
            all().for_each(show)
        }
        [name] => show(
            find(name)
                .ok_or_else(|| ArgError::Invalid(alloc::format!("no command '{name}'; commands: {}", names())))?,
        ),
        [_, extra, ..] => return Err(ArgError::Unexpected((*extra).into()).into()),
    }
    Ok(())
}
